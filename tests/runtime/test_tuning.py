"""``import minigan`` changes nothing; :func:`minigan.tune_cpu` applies its settings whatever the import order."""
import os
import subprocess
import sys

import pytest

CHILD = """
import json, os
before = dict(os.environ)
{first}
import minigan
after_import = dict(os.environ)
from minigan.runtime.tuning import openblas_library
lib = openblas_library()
timeout = lambda: lib.openblas_thread_timeout() if lib is not None else None
was = timeout()
done = minigan.tune_cpu()
import numba
from numba.np.ufunc import parallel
print(json.dumps({{"import_changed": before != after_import, "tune_changed": after_import != dict(os.environ),
                  "timeout_before": was, "timeout_after": timeout(), "done": done,
                  "numba_started": bool(getattr(parallel, "_is_initialized", False))}}))
"""


def _child(first=""):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY") and not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", CHILD.format(first=first)], env=env, capture_output=True,
                         text=True, check=True).stdout
    import json

    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize("first", ["", "import numpy"], ids=["minigan-first", "numpy-first"])
def test_tune_cpu_acts_whatever_the_import_order_and_leaves_the_environment(first):
    r = _child(first)
    assert not r["import_changed"] and not r["tune_changed"]
    if r["timeout_before"] is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    assert r["timeout_before"] == 0 and r["timeout_after"] == 20
    assert r["numba_started"] and "passive" in r["done"]["openmp"]


def test_the_users_own_settings_win(monkeypatch):
    env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT="4", OMP_WAIT_POLICY="ACTIVE")
    out = subprocess.run([sys.executable, "-c", "import minigan, json; print(json.dumps(minigan.tune_cpu()))"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert "user's OPENBLAS_THREAD_TIMEOUT" in out and "user's OMP_WAIT_POLICY" in out


def test_the_cpu_kernels_warn_once_without_the_settings():
    code = ("import warnings, numpy as np; warnings.simplefilter('always'); from minigan import nn\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    for _ in range(3): nn.LeakyReLU().forward(np.ones((2, 2), np.float32))\n"
            "print(sum('tune_cpu' in str(x.message) for x in w))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == "1"

"""How the CPU kernels are compiled: cached on disk, and checked with Numba's bounds checking.

An out-of-bounds write in a Numba kernel does not fail a test: it corrupts memory,
and the interpreter may crash later, or not at all.  With ``NUMBA_BOUNDSCHECK=1``
every array access is checked and raises ``IndexError``.  Numba's on-disk cache
does not record whether a kernel was compiled with bounds checks, so a
bounds-checked run gets a cache folder of its own (``NUMBA_CACHE_DIR``): pytest's
cache folder for this checkout (``.pytest_cache/d/numba-boundscheck``), or a
temporary one with ``-p no:cacheprovider``.  The first run there compiles every
kernel (some 15 s); later runs load them.

Numba checks no bounds inside a parallel loop (``prange`` under ``parallel=True``),
so the checks reach the serial twins (:func:`minigan.runtime.cpu._serial`), which
run the same code and are what the kernel tests run at their sizes.
"""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from minigan.runtime import cpu

ROOT = pathlib.Path(__file__).resolve().parents[2]
BOUNDS_CHECKED = ["tests/runtime/test_cpu.py", "tests/nn/test_columns.py",
                  "tests/runtime/test_compilation.py::test_an_out_of_bounds_write_raises"]


def _env(cache_dir, **extra):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT), **extra)
    env.setdefault("HYPOTHESIS_PROFILE", "ci")
    return env


def test_serial_twins_are_cached_on_disk(tmp_path):
    """Small work runs a kernel's serial twin; it is compiled once per machine, as the
    parallel kernel is, not once per process."""
    code = "import numpy as np; from minigan.runtime import cpu; cpu.leaky_relu(np.ones(3, np.float32), 0.2)"
    subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), check=True, timeout=300)
    cached = [p.name for p in tmp_path.rglob("*.nbi")]
    assert any("_leaky_relu_serial" in name for name in cached), cached


def test_kernels_are_cached_in_the_minigan_home_not_the_package(tmp_path):
    """Without NUMBA_CACHE_DIR the compiled kernels go to $MINIGAN_HOME/numba/<version>-<key>/,
    and nothing is written inside the package (an installed copy stays as pip wrote it)."""
    code = ("import numpy as np; from minigan.runtime import cpu, numba_cache; "
            "cpu.leaky_relu(np.ones(3, np.float32), 0.2); print(numba_cache.kernel_cache_dir())")
    env = {k: v for k, v in _env(tmp_path).items() if k != "NUMBA_CACHE_DIR"}
    env["MINIGAN_HOME"] = str(tmp_path / "home")
    before = set((ROOT / "minigan").rglob("*.nb[ic]"))
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300,
                         capture_output=True, text=True).stdout.strip()
    folder = pathlib.Path(out)
    assert folder.parent == tmp_path / "home" / "numba"
    assert any("_leaky_relu_serial" in p.name for p in folder.rglob("*.nbi"))
    assert set((ROOT / "minigan").rglob("*.nb[ic]")) == before


def test_the_kernel_cache_is_keyed_by_install_and_version(monkeypatch, tmp_path):
    from minigan.runtime import numba_cache

    monkeypatch.setenv("MINIGAN_HOME", str(tmp_path))
    here = numba_cache.kernel_cache_dir()
    monkeypatch.setattr(numba_cache, "PACKAGE_DIR", tmp_path / "another" / "minigan")
    assert numba_cache.kernel_cache_dir() != here
    assert here.name.startswith(numba_cache.__version__ + "-")


if os.environ.get("NUMBA_BOUNDSCHECK") == "1":  # only there: unchecked, it would corrupt memory
    def test_an_out_of_bounds_write_raises():
        """Run by the test below, under bounds checking: a serial twin writing one element past
        its output raises IndexError (were it loaded from an unchecked build, it would not)."""
        x = np.ones(8, np.float32)
        with pytest.raises(IndexError):
            cpu._serial(cpu._leaky_relu)(x, np.float32(0.2), np.empty(7, np.float32))


def test_kernel_tests_pass_with_bounds_checking(request, tmp_path):
    """The kernel tests and the column tests again, in a process with every access checked
    (and the check above that it is on: pytest fails on a test id it cannot find)."""
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("numba-boundscheck") if cache is not None else tmp_path
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-rs", "-p", "no:cacheprovider",
                          *BOUNDS_CHECKED], cwd=ROOT, env=_env(folder, NUMBA_BOUNDSCHECK="1"),
                         capture_output=True, text=True, timeout=900)
    tail = res.stdout[-3000:] + res.stderr[-2000:]
    assert res.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail, tail


def _fresh_kernel(module):
    """A new Numba function whose Python function claims to live in ``module``: its first call
    compiles (nothing of it is in any cache)."""
    from numba import njit  # noqa: PLC0415

    def twice(x):
        return 2 * x
    twice.__module__ = module
    return njit(twice)


def test_the_first_compilation_of_a_minigan_kernel_is_announced_once():
    from minigan.runtime.numba_cache import announce_compilation  # noqa: PLC0415

    said = []
    mine, theirs = _fresh_kernel("minigan.runtime.fake"), _fresh_kernel("elsewhere")
    with announce_compilation(said.append):
        theirs(1.0)  # another package's compilation: not ours to announce
        assert said == []
        mine(1.0)
        mine(2.0)  # compiled already: nothing to say
        mine(np.float32(1))  # a second signature compiles, but it was said once
    assert len(said) == 1 and "compiling the CPU kernels" in said[0], said
    _fresh_kernel("minigan.runtime.fake")(1.0)  # outside the block: the listener is gone
    assert len(said) == 1


def test_minigan_train_announces_compilation_above_its_progress_bar(tmp_path, monkeypatch, capsys):
    from minigan.cli import main  # noqa: PLC0415
    from minigan.gan.trainer import Trainer  # noqa: PLC0415

    fit = Trainer.fit

    def fit_that_compiles(self, *a, **kw):  # as a fresh install's first step would
        _fresh_kernel("minigan.runtime.fake")(1.0)
        return fit(self, *a, **kw)
    monkeypatch.setattr(Trainer, "fit", fit_that_compiles)
    assert main(["train", "--dataset", "ring", "--epochs", "1", "--limit", "200", "--batch-size", "50",
                 "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert capsys.readouterr().out.count("compiling the CPU kernels for this install") == 1
    monkeypatch.setattr(Trainer, "fit", fit)  # kernels loaded or compiled already: no line
    assert main(["train", "--dataset", "ring", "--epochs", "1", "--limit", "200", "--batch-size", "50",
                 "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert "compiling the CPU kernels" not in capsys.readouterr().out

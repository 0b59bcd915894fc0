"""Every CuPy function and array method the GPU path calls exists in the installed CuPy and takes
the keywords it is called with.

The list is not written by hand: the GPU stand-in records each ``xp`` function and array method
called through it (:data:`minigan.gpu_standin.USED`) while the GPU path trains a conditional
DCGAN and a packed 2-D mixture two steps, writes a log row and a checkpoint, resumes and samples; a scan of the source
adds every ``xp.NAME(`` it spells.  Importing CuPy needs no GPU, so this runs wherever CuPy is
installed (CI: in the venv of the gpu-cu12 extra); elsewhere it skips.
"""
import inspect
import os
import re

import pytest
from conftest import gpu
from test_gpu_training import FAMILIES, IDS, SMALL_BN_POINTS, _trainer

cupy = pytest.importorskip("cupy")

import minigan  # noqa: E402

pytestmark = pytest.mark.gpu

PACKAGE = os.path.dirname(os.path.abspath(minigan.__file__))
STANDIN_ONLY = {"kernel_arg"}  # the stand-in's own hand-over of a buffer to the simulator


def _accepts(fn, kw) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a Cython function: its embedded signature is its doc's first line
        params = None
    if params is not None:
        return kw in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if isinstance(fn, cupy.ufunc):
        return kw in ("out", "dtype", "casting")
    first = (getattr(fn, "__doc__", None) or "").strip().splitlines()[:1]
    return bool(first) and re.search(rf"\b{kw}\b", first[0]) is not None


def _scanned():
    """``xp.NAME(`` (and ``xp.A.B(``) as spelled anywhere in the package."""
    names = set()
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py") and f != "gpu_standin.py":
                text = open(os.path.join(folder, f), encoding="utf-8").read()
                names |= set(re.findall(r"\bxp\.([A-Za-z_][\w.]*)\(", text))
    return names


@pytest.fixture(scope="module")
def used(tmp_path_factory):
    dev = gpu()
    if dev.xp.__name__ != "minigan.testing.gpu_standin.xp":
        pytest.skip("a real GPU is here: the stand-in does not run")
    from minigan.testing import gpu_standin
    from minigan.gan.sampler import sample
    from minigan.gan import averaging
    from minigan.gan.trainer import CHECKPOINT

    gpu_standin.USED.clear()
    with pytest.MonkeyPatch.context() as patch:  # the average's BatchNorm estimate on few points
        patch.setattr(averaging, "BN_POINTS", SMALL_BN_POINTS)
        tmp = tmp_path_factory.mktemp("api")
        # the conditional DCGAN (conv, transposed conv, BatchNorm, dropout, labels, the EMA) and a
        # 2-D mixture with packing: between them every kernel and array operation of the GPU path
        for i, family in enumerate([FAMILIES[IDS.index("cdcgan")], FAMILIES[IDS.index("ring-pack2")]]):
            t = _trainer(tmp, f"f{i}", "gpu", g_ema=0.9, **family)
            os.makedirs(t.config.out, exist_ok=True)
            order = t.device.asarray(t.batch_indices(0))
            for step in range(2):
                t.window.add(t.train_step(*t.step_inputs(order[step])))
                t.step_in_epoch += 1
            t.log_row(0.0)
            t.save()
            again = _trainer(tmp, f"f{i}", "gpu", **family)
            again.restore()
            if family.get("model") == "dcgan" and not family.get("dataset"):
                sample(str(tmp / f"f{i}" / CHECKPOINT), n=4, seed=1, device="gpu")
    return set(gpu_standin.USED)


def test_the_recording_saw_the_gpu_path(used):
    names = {name for _, name, _ in used}
    assert {"zeros", "empty", "reshape", "astype", "ascontiguousarray"} <= names, sorted(names)


def test_every_function_and_method_exists_in_cupy_with_its_keywords(used):
    problems = []
    for kind, name, kwargs in sorted(used):
        if name in STANDIN_ONLY:
            continue
        owner = cupy if kind == "xp" else cupy.ndarray
        fn = getattr(owner, name, None)
        if fn is None:
            problems.append(f"cupy{'' if kind == 'xp' else '.ndarray'}.{name} does not exist")
            continue
        problems += [f"{kind}.{name} takes no keyword {kw!r}" for kw in kwargs if not _accepts(fn, kw)]
    assert not problems, problems


def test_every_xp_call_spelled_in_the_source_exists_in_cupy():
    missing = []
    for dotted in sorted(_scanned()):
        obj = cupy
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(dotted)
    assert not missing, missing
    assert callable(cupy.cuda.Device.synchronize)  # the stand-in's xp.cuda.Device().synchronize

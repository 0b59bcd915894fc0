"""Shared fixtures: hypothesis profiles and the backend parametrisation.

``HYPOTHESIS_PROFILE=ci`` (the default) draws a fixed, derandomised set of
examples so CI is repeatable; ``HYPOTHESIS_PROFILE=dev`` draws more, at
random, for local runs; ``HYPOTHESIS_PROFILE=mutations`` draws ci's examples
and stops at the first failure without shrinking it (tests/mutations.py only
asks whether a test fails).
"""
import os
import shutil

# Without a GPU the GPU kernel table runs under numba-cuda's simulator; numba reads
# this when it is first imported, so it is set before anything imports numba.
if shutil.which("nvidia-smi") is None:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import minigan  # noqa: E402

minigan.tune_cpu()  # the settings every minigan command makes (and without which the CPU kernels warn)

import numpy as np  # noqa: E402
import pytest
from hypothesis import HealthCheck, Phase, settings

from minigan.runtime import devices

settings.register_profile("ci", derandomize=True, max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("mutations", settings.get_profile("ci"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DEVICES = ["cpu", "gpu"]
ENGINES = ["reference", "im2col", "spectral", "winograd"]
GPU_ENGINES = ["reference", "im2col", "winograd"]  # the spectral engine runs on the CPU only


def gpu():
    """The GPU device: CuPy's where it sees a GPU, else the strict stand-in
    (:mod:`minigan.testing.gpu_standin`) with the GPU kernels under numba-cuda's simulator."""
    if devices.cupy_module() is None:
        from minigan.testing import gpu_standin

        gpu_standin.install()
    return devices.device("gpu")


def _case(device, *rest):
    marks = [pytest.mark.gpu] if device == "gpu" else []
    return pytest.param(device, *rest, marks=marks, id="-".join((device,) + rest))


def pytest_generate_tests(metafunc):
    """``device`` runs every test on the CPU and the GPU (a real one, or the stand-in where there is
    none: nothing skips); ``engine`` runs it on every conv engine the device has."""
    names = metafunc.fixturenames
    if "device" in names and "engine" in names:
        metafunc.parametrize("device,engine", [_case(d, e) for d in DEVICES
                                               for e in (ENGINES if d == "cpu" else GPU_ENGINES)],
                             indirect=True, scope="session")
    elif "device" in names:
        metafunc.parametrize("device", [_case(d) for d in DEVICES], indirect=True, scope="session")
    elif "engine" in names:
        metafunc.parametrize("engine", ENGINES, indirect=True, scope="session")


# Under numba-cuda's simulator every GPU kernel runs as Python, a thousand times slower than
# NumPy: the GPU cases there draw fewer hypothesis examples and check gradients along a few
# random directions (every entry of tensors up to 8), the same checks on a smaller budget.
SIMULATED_GPU_EXAMPLES = 3


def _simulated_gpu():
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and devices.cupy_module() is None


def pytest_collection_modifyitems(config, items):
    import types

    if not _simulated_gpu():
        return
    for item in items:
        fn = getattr(item, "obj", None)
        if item.get_closest_marker("gpu") is None or not hasattr(fn, "hypothesis"):
            continue
        # a copy of the test function, so that its CPU cases keep their own settings
        copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
        copy.__dict__.update(fn.__dict__)
        copy.__wrapped__ = fn
        base = fn._hypothesis_internal_use_settings
        copy._hypothesis_internal_use_settings = settings(
            base, max_examples=min(base.max_examples, SIMULATED_GPU_EXAMPLES))
        item.obj = copy


@pytest.fixture(autouse=True)
def _gradcheck_budget(request, monkeypatch):
    if _simulated_gpu() and request.node.get_closest_marker("gpu") is not None:
        from minigan import gradcheck

        monkeypatch.setattr(gradcheck, "MAX_ELEMENTS", 8)
        monkeypatch.setattr(gradcheck, "DIRECTIONS", 3)


@pytest.fixture(scope="session")
def device(request):
    """``"cpu"`` or ``"gpu"``."""
    if request.param == "gpu":
        gpu()
    return request.param


@pytest.fixture(scope="session")
def engine(request):
    """The conv engine a test's layers are forced onto (see :mod:`minigan.nn.conv`)."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

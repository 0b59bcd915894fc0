"""Shared fixtures: hypothesis profiles and the backend parametrisation.

``HYPOTHESIS_PROFILE=ci`` (the default) draws a fixed, derandomised set of
examples so CI is repeatable; ``HYPOTHESIS_PROFILE=dev`` draws more, at
random, for local runs.
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
from hypothesis import HealthCheck, settings

from minigan import backend

settings.register_profile("ci", derandomize=True, max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


@pytest.fixture(params=BACKENDS, scope="session")
def device(request):
    """``"cpu"`` or ``"gpu"``; the GPU case skips where CuPy or a GPU is missing."""
    if request.param == "cupy":
        if not backend.gpu_available():
            pytest.skip("CuPy or a GPU is not available")
        return "gpu"
    return "cpu"


@pytest.fixture(params=["reference", "im2col", "spectral"], scope="session")
def engine(request):
    """The conv engine a test's layers are forced onto (see :mod:`minigan.nn.conv_fft`)."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

"""Process-level settings: :func:`minigan.tune_cpu` makes them, ``import minigan`` does not."""
import os
import platform
import subprocess
import sys

import pytest

from minigan.runtime import tuning

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="mallopt is glibc's")

# Minor page faults per warm MLP GAN train step, measured in a fresh interpreter
# (the test process's heap has its own history).
FAULTS_PER_STEP = """
import resource
import minigan
minigan.tune_cpu()
from minigan.cli import bench
step = bench.setup("mlp", 64).step
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_step(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout
    return float(out.split()[-1])


@glibc
def test_a_training_step_reuses_freed_memory():
    """Once warm, the MLP GAN's step finds every array it allocates in freed memory.

    The control keeps glibc's 128 KiB mmap threshold (which the user's own
    setting does, and which stops minigan from changing it): then each array
    of that size or more is its own mmap, unmapped on free, and the step faults
    in about 120 fresh 4 KiB pages.
    """
    assert _faults_per_step() < 5
    assert _faults_per_step(MALLOC_MMAP_THRESHOLD_="131072") > 50


def test_user_malloc_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert tuning.retain_freed_memory() is False

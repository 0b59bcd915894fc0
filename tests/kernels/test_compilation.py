"""How the CPU kernels are compiled: each kernel and its serial twin cached on disk."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _env(cache_dir, **extra):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT), **extra)
    env.setdefault("HYPOTHESIS_PROFILE", "ci")
    return env


def test_serial_twins_are_cached_on_disk(tmp_path):
    """Small work runs a kernel's serial twin; it is compiled once per machine, as the
    parallel kernel is, not once per process."""
    code = "import numpy as np; from minigan.kernels import cpu; cpu.leaky_relu(np.ones(3, np.float32), 0.2)"
    subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), check=True, timeout=300)
    cached = [p.name for p in tmp_path.rglob("*.nbi")]
    assert any("_leaky_relu_serial" in name for name in cached), cached

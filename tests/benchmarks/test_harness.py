"""The benchmark harness of benchmarks/ runs; its figures are never asserted (timings live there)."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import harness as bench  # noqa: E402

from minigan.cli.bench import setup  # noqa: E402


def test_step_flops_count_the_gemms_of_the_step():
    s = setup("mlp", 8)
    # G: 100->128->784; D: 784->128->1; batch 8, every GEMM is 2*8*in*out
    g = 2 * 8 * (100 * 128 + 128 * 784)
    d = 2 * 8 * (784 * 128 + 128 * 1)
    g_first_dx, d_first_dx = 2 * 8 * 100 * 128, 2 * 8 * 784 * 128
    expected = 3 * g - g_first_dx + 3 * d + 3 * d - 2 * d_first_dx + 2 * d
    assert bench.step_flops(s.G, s.D, s.z, s.real) == expected


def test_performed_flops_count_the_spectral_products():
    """A layer on the spectral engine counts its per-frequency products and transforms."""
    layer = bench.Conv2DTranspose(256, 128, 5, 1, "same")
    x = np.zeros((64, 256, 7, 7), np.float32)
    layer.forward(x)
    im2col = bench.layer_flops(layer, x.shape)
    done = bench.performed_flops(layer, x.shape)
    product = 8 * 41 * 64 * 128 * 256  # 41 frequencies of (64 x 128) @ (128 x 256), complex
    assert all(product < d < i for d, i in zip(done, im2col))
    layer.engine = "im2col"
    layer.forward(x)
    assert bench.performed_flops(layer, x.shape) == im2col


def test_the_harness_prints_its_tables():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--models", "mlp",
                          "--batch", "8", "--repeats", "1", "--no-torch", "--no-layers", "--kernels",
                          "numba"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "| mlp | 8 |" in out.stdout and "GFLOP/s" in out.stdout


def test_pytorch_runs_apart_from_minigan():
    """The reference step runs in a child that never imports minigan (its process settings stay out)."""
    pytest.importorskip("torch")
    child = bench.TorchProcess(threads=1)
    try:
        assert child.info["minigan_imported"] is False
        times = child.step_block("mlp", 8)(2, 1)
        assert len(times) == 2 and all(t > 0 for t in times)
    finally:
        child.close()

"""The im2col engine's two ways of running its products, each against the reference engine.

Where a sample has at least ``PER_SAMPLE_MIN_PIXELS`` (128) output pixels the
engine runs one GEMM per sample, and sums the weight gradient over chunks of
samples (``SUM_CHUNK`` elements of per-sample parts at a time); below that, one
GEMM over the whole batch.  The small images of the other conv tests take the
second way only, so here each way is forced, on drawn geometries of both conv
layers, and compared with the reference engine: the output, dL/dx, dW and db.
"""
from contextlib import contextmanager

import numpy as np
import pytest
from helpers import on, use_engine
from hypothesis import given
from test_layers_grad import conv_cases, convT_cases

from minigan import nn
from minigan.nn.conv import im2col as im2col_engine
from minigan.runtime import devices

PATHS = {
    "batched": dict(PER_SAMPLE_MIN_PIXELS=10**9),
    "per-sample": dict(PER_SAMPLE_MIN_PIXELS=0),
    "per-sample, one sample a chunk": dict(PER_SAMPLE_MIN_PIXELS=0, SUM_CHUNK=1),
}


@contextmanager
def _path(name):
    saved = {k: getattr(im2col_engine, k) for k in PATHS[name]}
    for k, v in PATHS[name].items():
        setattr(im2col_engine, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(im2col_engine, k, v)


def _compare(make, c, device, path):
    ref, fast = make().astype(np.float64), make().astype(np.float64)
    rng = np.random.default_rng(c["seed"])
    for k in ref.params:
        ref.params[k][...] = rng.standard_normal(ref.params[k].shape)
        fast.params[k][...] = ref.params[k]
    use_engine(ref, "reference").to(device), use_engine(fast, "im2col").to(device)
    x = on(device, rng.standard_normal((c["N"], c["C"], c["H"], c["W"])))
    out = {}
    with _path(path):
        for name, layer in (("reference", ref), ("im2col", fast)):
            y = layer.forward(x)
            dy = on(device, np.random.default_rng(c["seed"] + 1).standard_normal(y.shape))
            layer.zero_grad()
            dx = layer.backward(dy)
            out[name] = [devices.to_numpy(a) for a in (y, dx, *(layer.grads[k] for k in sorted(layer.grads)))]
    for what, want, got in zip(["y", "dx"] + sorted(ref.grads), out["reference"], out["im2col"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{what} on the {path} path")


@pytest.mark.parametrize("path", list(PATHS))
@given(c=conv_cases())
def test_conv2d_im2col_paths(device, path, c):
    _compare(lambda: nn.Conv2D(c["C"], c["O"], c["k"], c["s"], c["padding"], bias=c["bias"]), c, device, path)


@pytest.mark.parametrize("path", list(PATHS))
@given(c=convT_cases())
def test_conv2d_transpose_im2col_paths(device, path, c):
    _compare(lambda: nn.Conv2DTranspose(c["C"], c["O"], c["k"], c["s"], c["padding"], c["op"], bias=c["bias"]),
             c, device, path)

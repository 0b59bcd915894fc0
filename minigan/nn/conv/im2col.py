"""The fast im2col engine: the reference engine's maps, with per-sample GEMMs and kept buffers.

It computes what :mod:`.reference` computes, in the same column layout
``cols (K, N, P)`` (see :class:`.geometry.ConvGeom`), but:

* im2col and col2im are the device's kernels (:mod:`minigan.runtime.registry`: on
  the CPU, Numba gathers with the padding fused and every pixel written once);
* sample n's columns ``cols[:, n]`` are a ``(K, P)`` matrix whose rows lie
  ``N*P`` apart, which BLAS takes as it is, so ``y[n] = Wm @ cols[:, n]`` is
  sample n's output ``(O, P)`` already in NCHW: the products read and write
  the layer's arrays as they lie, as batched GEMMs (on the CPU, a run of
  samples per BLAS thread).  Where a sample has few output pixels
  (:data:`PER_SAMPLE_MIN_PIXELS`) one GEMM over the batch runs instead,
  with the small side copied to ``(O, N, P)``; the columns are never copied;
* the column matrices (tens of MB for the DCGAN) live in buffers the engine
  keeps between calls, so a step does not fault in fresh pages.
"""
from __future__ import annotations

import math

from ...runtime.arrays import get_xp
from ...runtime.registry import reference
from .reference import col2im, im2col

# A sample's products are (O x K) @ (K x P): with few output pixels P they are
# too thin for BLAS, and one GEMM over the whole batch, with the small side
# copied to (O, N, P), runs faster (G's 7x7 layer forced onto im2col, P = 49:
# forward about 27 % faster); with many (D's first conv, P = 196) the per-sample
# products win (benchmarks/HISTORY.md, the column layout's runs).
PER_SAMPLE_MIN_PIXELS = 128
# the per-sample weight-gradient parts held at once: (samples, O, K) under this
# many elements (D's first conv: all 128 samples at once)
SUM_CHUNK = 1 << 22


@reference("batched_matmul")
def batched_matmul(a, b, out=None):
    """``a (F, m, k) @ b (F, k, n) -> (F, m, n)``; either operand may be one 2-D matrix
    that all F products share.  ``out`` may be a strided view."""
    if out is None:
        return get_xp(a).matmul(a, b)
    out[...] = get_xp(a).matmul(a, b)
    return out


def _per_sample(cols):
    """``(K, N, P)`` columns as ``N`` matrices ``(K, P)``: a view, no copy."""
    return cols.transpose(1, 0, 2)


class Im2colEngine:
    """The engine methods of :class:`.reference.ReferenceEngine`, with columns ``(K, N, P)``
    and output-side arrays ``(N, O, P)``; one instance per layer and device."""

    name = "im2col"

    def __init__(self, device):
        self.device, self.xp = device, device.xp
        self._im2col, self._col2im = device.kernel(im2col), device.kernel(col2im)
        self._bmm = device.kernel(batched_matmul)
        self._buffers = {}

    def buffer(self, name, shape, dtype):
        """A scratch array kept between calls (refilled every time; never handed out), as
        large as the largest request so far: D sees 2N samples in its own step and N in
        G's, and a store sized to the last request was made anew twice a step."""
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self._buffers[name] = self.xp.zeros(size, dtype=dtype)
        return buf[:size].reshape(shape)

    def weights(self, W, g):
        return W.reshape(W.shape[0], -1)

    def image_side(self, x, g):
        return self._im2col(x, g, out=self.buffer("image", (g.K, x.shape[0], g.P), x.dtype))

    def output_side(self, y, g):
        N, O = y.shape[:2]
        return self.xp.ascontiguousarray(y).reshape(N, O, g.P)

    def to_output(self, Wm, cols, g):
        """``y[n] = Wm @ cols[:, n]``: ``(N, O, Ho, Wo)``."""
        K, N, P = cols.shape
        if P >= PER_SAMPLE_MIN_PIXELS:
            y = self._bmm(Wm, _per_sample(cols))
        else:
            y = self.xp.ascontiguousarray((Wm @ cols.reshape(K, N * P)).reshape(-1, N, P).transpose(1, 0, 2))
        return y.reshape(N, -1, g.Ho, g.Wo)

    def to_image(self, Wm, dY, g):
        """``col2im(adjoint_columns(Wm, dY))``: ``(N, C, H, W)``."""
        return self._col2im(self.adjoint_columns(Wm, dY, g), g)

    def adjoint_columns(self, Wm, dY, g):
        """``dcols[:, n] = Wm^T @ dY[n]``, ``(K, N, P)``, into a kept buffer."""
        N, O, P = dY.shape
        dcols = self.buffer("adjoint", (g.K, N, P), dY.dtype)
        WmT = self.xp.ascontiguousarray(Wm.T)
        if P >= PER_SAMPLE_MIN_PIXELS:
            self._bmm(WmT, dY, out=_per_sample(dcols))
        else:
            self.xp.matmul(WmT, _batch_major(dY), out=dcols.reshape(g.K, -1))
        return dcols

    def weight_grad(self, cols, dY, g):
        """``sum_n dY[n] @ cols[:, n]^T``, as ``(O, C, kh, kw)``.

        Few pixels a sample: one GEMM over the batch.  Many: the per-sample
        products, in chunks of samples whose ``(O, K)`` parts are summed (D's
        first conv at batch 128: 0.7-1.0 ms, against 1.9 ms for the one GEMM,
        whose inner dimension N*P is long and outer ones are 64 and 25, plus
        1.6 ms to copy ``dY``).
        """
        N, O, P = dY.shape
        K = cols.shape[0]
        if P < PER_SAMPLE_MIN_PIXELS:
            dW = _batch_major(dY) @ cols.reshape(K, -1).T
        else:
            step = max(1, min(N, SUM_CHUNK // (O * K)))
            dW = None
            for n0 in range(0, N, step):
                part = self._bmm(dY[n0:n0 + step], _per_sample(cols)[n0:n0 + step].transpose(0, 2, 1))
                dW = part.sum(axis=0) if dW is None else dW + part.sum(axis=0)
        return dW.reshape(O, g.C, g.kh, g.kw)


def _batch_major(y):
    """``(N, O, P) -> (O, N*P)``, a copy: the output side as one matrix over the batch."""
    N, O, P = y.shape
    return get_xp(y).ascontiguousarray(y.transpose(1, 0, 2)).reshape(O, N * P)

"""Numba kernels for the CPU: the conv engine's data movement and the elementwise passes.

Each public function here has a twin of the same name and signature in
:mod:`numpy_ref` (the readable reference, which the tests compare against);
:mod:`minigan.kernels` picks one.  All kernels are ``parallel=True`` (the
threads split the outermost loop, so no two threads write the same element)
and ``cache=True`` (compiled once per machine, not once per process).

* ``im2col`` is parallel over rows of output pixels ``(n, oh)``; every column
  entry is written once, out-of-range taps as zero (padding is fused: no
  padded copy of the image is made).
* ``col2im`` is a *gather*, parallel over image rows ``(n, h)``: each input
  pixel sums the column entries that read it, so every output element is
  written exactly once, with no atomics and no zero-filled scratch image.
  The taps that reach a pixel are worked out from precomputed ranges, not
  by dividing inside the loop (integer division was most of the cost of
  the first version), and the channel loop is innermost so one pass over a
  column row serves every channel.
* The elementwise kernels (LeakyReLU, the NCHW <-> rows transposes, Adam)
  fuse what NumPy does in several passes with temporaries into one pass.

Scalars that enter float32 arithmetic are passed as ``x.dtype.type(...)``
so Numba keeps the arithmetic in the array's precision, as NumPy does.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

_jit = dict(parallel=True, cache=True, nogil=True)

# Below this many elements of work a kernel runs on the calling thread alone.
# Each parallel launch is a barrier: on a shared machine a descheduled worker
# stalls the call for a scheduler tick (a 64x128 LeakyReLU: 5 us median, 4 ms
# worst).  Elementwise passes (<= ~1e6 elements here, memory-bound, ~0.1 ms)
# gain little from a second thread; the conv engine's column matrices (5e6 to
# 1e7 elements) do.  Measured on 2 busy cores, DCGAN step: 1.3 s with a
# threshold of 2^16, 0.92 s with 2^20.
PARALLEL_MIN = 1 << 20


def _launch(kernel, work, *args):
    """Run ``kernel(*args)``, in parallel only if ``work`` (elements) is large enough."""
    if work >= PARALLEL_MIN:
        return kernel(*args)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(threads)


# -- the conv engine ------------------------------------------------------------

@njit(**_jit)
def _im2col(x, kh, kw, sh, sw, pt, pl, Ho, Wo, cols):
    N, C, H, W = x.shape
    for r in prange(N * Ho):
        n = r // Ho
        oh = r - n * Ho
        for ow in range(Wo):
            row = r * Wo + ow
            w0 = ow * sw - pl
            for c in range(C):
                for i in range(kh):
                    h = oh * sh + i - pt
                    base = (c * kh + i) * kw
                    if h < 0 or h >= H:
                        for j in range(kw):
                            cols[row, base + j] = 0
                    else:
                        for j in range(kw):
                            w = w0 + j
                            if w >= 0 and w < W:
                                cols[row, base + j] = x[n, c, h, w]
                            else:
                                cols[row, base + j] = 0


@njit(cache=True)
def _reach(H, k, s, p, Ho):
    """For each input coordinate h: the output coordinates ``lo[h] <= o < hi[h]`` whose
    window (taps ``i = h + p - o*s`` in ``[0, k)``) covers it."""
    lo = np.empty(H, np.int64)
    hi = np.empty(H, np.int64)
    for h in range(H):
        t = h + p
        lo[h] = max(0, (t - k) // s + 1)
        hi[h] = max(lo[h], min(t // s, Ho - 1) + 1)
    return lo, hi


@njit(**_jit)
def _col2im(cols, N, C, H, W, kh, kw, sh, sw, pt, pl, Ho, Wo, out):
    oh_lo, oh_hi = _reach(H, kh, sh, pt, Ho)
    ow_lo, ow_hi = _reach(W, kw, sw, pl, Wo)
    kk = kh * kw
    for r in prange(N * H):
        n = r // H
        h = r - n * H
        acc = np.zeros((W, C), cols.dtype)  # one image row, every channel
        for oh in range(oh_lo[h], oh_hi[h]):
            i = h + pt - oh * sh
            for w in range(W):
                a = acc[w]
                for ow in range(ow_lo[w], ow_hi[w]):
                    src = cols[(n * Ho + oh) * Wo + ow]  # 1-D views keep the inner loop lean
                    t = i * kw + w + pl - ow * sw        # tap (i, j) as i*kw + j
                    for c in range(C):
                        a[c] += src[c * kk + t]
        for c in range(C):
            for w in range(W):
                out[n, c, h, w] = acc[w, c]


def im2col(x, g, out=None):
    x = np.ascontiguousarray(x)
    N = x.shape[0]
    if out is None:
        out = np.empty((N * g.Ho * g.Wo, g.K), dtype=x.dtype)
    _launch(_im2col, out.size, x, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.Ho, g.Wo, out)
    return out


def col2im(cols, N, g, out=None):
    cols = np.ascontiguousarray(cols)
    if out is None:
        out = np.empty((N, g.C, g.H, g.W), dtype=cols.dtype)
    _launch(_col2im, cols.size, cols, N, g.C, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl,
            g.Ho, g.Wo, out)
    return out


# -- layouts around the GEMMs ------------------------------------------------------

@njit(**_jit)
def _to_rows(a, out):
    N, C, H, W = a.shape
    for r in prange(N * H):
        n = r // H
        h = r - n * H
        for w in range(W):
            o = r * W + w
            for c in range(C):
                out[o, c] = a[n, c, h, w]


@njit(**_jit)
def _from_rows(m, N, H, W, bias, out):
    C = m.shape[1]
    for q in prange(N * C):
        n = q // C
        c = q - n * C
        b = bias[c]
        base = n * H * W
        for h in range(H):
            for w in range(W):
                out[n, c, h, w] = m[base + h * W + w, c] + b


def to_rows(a):
    N, C, H, W = a.shape
    out = np.empty((N * H * W, C), dtype=a.dtype)
    _launch(_to_rows, out.size, a, out)
    return out


def from_rows(m, N, H, W, bias=None):
    C = m.shape[1]
    out = np.empty((N, C, H, W), dtype=m.dtype)
    if bias is None:
        bias = np.zeros(C, dtype=m.dtype)
    _launch(_from_rows, out.size, np.ascontiguousarray(m), N, H, W, bias, out)
    return out


# -- elementwise ---------------------------------------------------------------------

@njit(**_jit)
def _leaky_relu(x, slope, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if v > 0 else v * slope


@njit(**_jit)
def _leaky_relu_grad(dy, x, slope, dx):
    for i in prange(x.size):
        d = dy[i]
        dx[i] = d if x[i] > 0 else d * slope


def leaky_relu(x, slope):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _launch(_leaky_relu, x.size, x.reshape(-1), x.dtype.type(slope), y.reshape(-1))
    return y


def leaky_relu_grad(dy, x, slope):
    dy = np.ascontiguousarray(dy)
    dx = np.empty_like(dy)
    _launch(_leaky_relu_grad, dy.size, dy.reshape(-1), np.ascontiguousarray(x).reshape(-1),
            dy.dtype.type(slope), dx.reshape(-1))
    return dx


@njit(**_jit)
def _adam(p, g, m, v, b1, a1, b2, a2, step, c2, eps):
    for i in prange(p.size):
        gi = g[i]
        mi = b1 * m[i] + a1 * gi
        vi = b2 * v[i] + a2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (math.sqrt(vi / c2) + eps)


def adam_update(p, g, m, v, lr, b1, b2, eps, t):
    """One Adam step in place on contiguous ``p``, ``m``, ``v`` (see :mod:`minigan.optim`)."""
    f = p.dtype.type
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    _launch(_adam, p.size, p.reshape(-1), np.ascontiguousarray(g).reshape(-1), m.reshape(-1),
            v.reshape(-1), f(b1), f(1 - b1), f(b2), f(1 - b2), f(lr / c1), f(c2), f(eps))


# -- dropout ---------------------------------------------------------------------------
# The mask is a hash of (seed, element index) -- SplitMix64's finaliser -- so it
# is generated in parallel, in one pass with the multiply, and does not depend
# on the thread count.  The seed is one draw from minigan's global generator,
# so a seed (and a checkpoint's RNG state) still fixes every mask.

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(**_jit)
def _dropout(x, seed, threshold, scale, y, keep):
    for i in prange(x.size):
        z = seed + np.uint64(i) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
        k = (z >> np.uint64(40)) >= threshold  # u = top 24 bits / 2^24; keep if u >= p
        keep[i] = k
        y[i] = x[i] * scale if k else 0


@njit(**_jit)
def _dropout_grad(dy, keep, scale, dx):
    for i in prange(dy.size):
        dx[i] = dy[i] * scale if keep[i] else 0


def dropout(x, p):
    from .. import backend  # noqa: PLC0415

    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    keep = np.empty(x.shape, dtype=np.bool_)
    seed = np.uint64(backend.global_rng().integers(0, 2**63))
    threshold = np.uint64(math.ceil(p * 2**24))
    _launch(_dropout, x.size, x.reshape(-1), seed, threshold, x.dtype.type(1.0 / (1.0 - p)),
            y.reshape(-1), keep.reshape(-1))
    return y, keep


def dropout_grad(dy, keep, p):
    dy = np.ascontiguousarray(dy)
    dx = np.empty_like(dy)
    _launch(_dropout_grad, dy.size, dy.reshape(-1), keep.reshape(-1), dy.dtype.type(1.0 / (1.0 - p)),
            dx.reshape(-1))
    return dx

"""Numba kernels for the conv engine on the CPU.

``im2col`` is parallel over rows of output pixels; ``col2im`` is a *gather*,
parallel over ``(n, c)`` image planes: each input pixel sums the column
entries that read it, so every output element is written exactly once, with
no atomics and no zero-filled scratch image.  Padding is fused: out-of-range
taps read zero (im2col) or are skipped (col2im); no padded copy is made.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
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


@njit(parallel=True, cache=True, nogil=True)
def _col2im(cols, N, C, H, W, kh, kw, sh, sw, pt, pl, Ho, Wo, out):
    for r in prange(N * C):
        n = r // C
        c = r - n * C
        for h in range(H):
            for w in range(W):
                acc = cols.dtype.type(0)
                for i in range(kh):
                    t = h + pt - i
                    if t < 0:
                        break
                    oh = t // sh
                    if oh * sh != t or oh >= Ho:
                        continue
                    for j in range(kw):
                        u = w + pl - j
                        if u < 0:
                            break
                        ow = u // sw
                        if ow * sw != u or ow >= Wo:
                            continue
                        acc += cols[(n * Ho + oh) * Wo + ow, (c * kh + i) * kw + j]
                out[n, c, h, w] = acc


def im2col(x, g, out=None):
    x = np.ascontiguousarray(x)
    N = x.shape[0]
    if out is None:
        out = np.empty((N * g.Ho * g.Wo, g.K), dtype=x.dtype)
    _im2col(x, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.Ho, g.Wo, out)
    return out


def col2im(cols, N, g, out=None):
    cols = np.ascontiguousarray(cols)
    if out is None:
        out = np.empty((N, g.C, g.H, g.W), dtype=cols.dtype)
    _col2im(cols, N, g.C, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.Ho, g.Wo, out)
    return out

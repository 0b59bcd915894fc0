"""Reference im2col / col2im: ``kh * kw`` strided slices, no loops over pixels.

This is the readable version of the conv engine's data movement and the
oracle that the fast kernels are tested against.  It is written against
``xp`` so it runs unchanged on CuPy.  It pads explicitly (the fast kernels
fuse the padding instead).
"""
from __future__ import annotations

from ..backend import get_xp


def _tap(g, i, j):
    """The slice of the padded image that kernel tap ``(i, j)`` reads."""
    return (
        slice(None),
        slice(None),
        slice(i, i + g.sh * (g.Ho - 1) + 1, g.sh),
        slice(j, j + g.sw * (g.Wo - 1) + 1, g.sw),
    )


def im2col(x, g, out=None):
    xp = get_xp(x)
    N = x.shape[0]
    xpad = xp.pad(x, ((0, 0), (0, 0), (g.pt, g.pb), (g.pl, g.pr)))
    # cols6[n, oh, ow, c, i, j]: one strided slice of x per kernel tap.
    cols6 = xp.empty((N, g.Ho, g.Wo, g.C, g.kh, g.kw), dtype=x.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            cols6[..., i, j] = xpad[_tap(g, i, j)].transpose(0, 2, 3, 1)
    cols = cols6.reshape(N * g.Ho * g.Wo, g.K)
    if out is not None:
        out[...] = cols
        return out
    return cols


def col2im(cols, N, g, out=None):
    xp = get_xp(cols)
    cols6 = cols.reshape(N, g.Ho, g.Wo, g.C, g.kh, g.kw)
    xpad = xp.zeros((N, g.C, g.H + g.pt + g.pb, g.W + g.pl + g.pr), dtype=cols.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            xpad[_tap(g, i, j)] += cols6[..., i, j].transpose(0, 3, 1, 2)
    x = xpad[:, :, g.pt : g.pt + g.H, g.pl : g.pl + g.W]
    if out is not None:
        out[...] = x
        return out
    return xp.ascontiguousarray(x)

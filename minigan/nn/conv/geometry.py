"""The shapes of one 2-D convolution, and the padding rules that fix them.

A convolution maps an *image side* ``(N, C, H, W)`` to an *output side*
``(N, O, Ho, Wo)``.  The transposed convolution is its adjoint and maps
the other way over the same geometry, so one :class:`ConvGeom` serves both.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConvGeom:
    """Shape bookkeeping of one convolution ``(N, C, H, W) -> (N, ?, Ho, Wo)``.

    ``pt, pb, pl, pr`` are the zero paddings at the top, bottom, left and
    right; they may differ ("same" padding puts the odd pixel at the bottom
    and right).  ``Ho = (H + pt + pb - kh) // sh + 1`` and likewise ``Wo``.

    The column layout of the im2col engines (:mod:`minigan.nn.conv.reference`)::

        cols[(c, i, j), n, (oh, ow)] = x_pad[n, c, oh*sh + i, ow*sw + j]
        cols.shape == (C*kh*kw, N, Ho*Wo) == (K, N, P)
    """

    C: int
    H: int
    W: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int

    @property
    def Ho(self) -> int:
        return (self.H + self.pt + self.pb - self.kh) // self.sh + 1

    @property
    def Wo(self) -> int:
        return (self.W + self.pl + self.pr - self.kw) // self.sw + 1

    @property
    def K(self) -> int:
        """Column rows per sample: ``C * kh * kw``."""
        return self.C * self.kh * self.kw

    @property
    def P(self) -> int:
        """Output pixels per sample: ``Ho * Wo``."""
        return self.Ho * self.Wo


def pair(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def check_padding(padding):
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be an int, a pair, 'same' or 'valid'; got {padding!r}")
        return padding
    p = pair(padding, "padding")
    if min(p) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return p


def same_padding(size: int, k: int, s: int):
    """(before, after) zero padding of TensorFlow's "same" rule along one axis."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def pads(padding, H, W, kh, kw, sh, sw):
    """``(pt, pb, pl, pr)`` of a conv with ``padding`` on an ``H x W`` image."""
    if padding == "same":
        return same_padding(H, kh, sh) + same_padding(W, kw, sw)
    if padding == "valid":
        return 0, 0, 0, 0
    ph, pw = padding
    return ph, ph, pw, pw

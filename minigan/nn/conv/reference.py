"""The textbook convolution: im2col, one GEMM, col2im.  The engine a student reads.

With ``K = C*kh*kw`` and ``P = Ho*Wo``, a convolution with weight
``W (O, C, kh, kw)`` is one matrix product over the columns of its input::

    cols = im2col(x)           (K, N*P)   cols[(c,i,j), (n,p)] = x_pad[n, c, p's row*sh + i, p's col*sw + j]
    Wm   = W.reshape(O, K)     (O, K)
    Y    = Wm @ cols           (O, N*P)   y[n, o, p] = Y[o, (n, p)]

and, with ``dY`` the upstream gradient laid out like ``Y``, its backward is::

    dW = dY @ cols^T           (O, K)     each weight sums what it multiplied
    dx = col2im(Wm^T @ dY)     (N, C, H, W)  each pixel sums the column entries that copied it

col2im is the adjoint of im2col, so ``x -> Y`` and ``dY -> dx`` are adjoint
maps: the transposed convolution runs this same engine the other way round
(:class:`minigan.nn.Conv2DTranspose`).  Every engine has these six methods;
the others compute the same maps faster (:mod:`.im2col`, :mod:`.spectral`).
"""
from __future__ import annotations

from ...runtime.arrays import get_xp
from ...runtime.registry import reference


class ReferenceEngine:
    name = "reference"

    def weights(self, W, g):
        """``W (O, C, kh, kw) -> Wm (O, K)``, a view."""
        return W.reshape(W.shape[0], -1)

    def image_side(self, x, g):
        """``x (N, C, H, W) -> cols (K, N*P)``."""
        return im2col(x, g).reshape(g.K, -1)

    def output_side(self, y, g):
        """``y (N, O, Ho, Wo) -> Y (O, N*P)``."""
        N, O = y.shape[:2]
        return y.reshape(N, O, g.P).transpose(1, 0, 2).reshape(O, N * g.P)

    def to_output(self, Wm, cols, g):
        """The convolution: ``Y = Wm @ cols``, returned as ``y (N, O, Ho, Wo)``."""
        Y = (Wm @ cols).reshape(Wm.shape[0], -1, g.Ho, g.Wo)
        return get_xp(Y).ascontiguousarray(Y.transpose(1, 0, 2, 3))

    def to_image(self, Wm, dY, g):
        """The adjoint: ``dx = col2im(Wm^T @ dY)``, ``(N, C, H, W)``."""
        return col2im((Wm.T @ dY).reshape(g.K, -1, g.P), g)

    def weight_grad(self, cols, dY, g):
        """``dW = dY @ cols^T``, returned as ``(O, C, kh, kw)``."""
        return (dY @ cols.T).reshape(-1, g.C, g.kh, g.kw)


# -- the data movement: kh*kw strided slices, no loop over pixels ----------------------

def _tap(g, i, j):
    """The slice of the padded image that kernel tap ``(i, j)`` reads."""
    return (slice(None), slice(None),
            slice(i, i + g.sh * (g.Ho - 1) + 1, g.sh),
            slice(j, j + g.sw * (g.Wo - 1) + 1, g.sw))


@reference("im2col")
def im2col(x, g, out=None):
    """``x (N, C, H, W) -> cols (K, N, P)``; padding is read as zeros.  ``out``, if
    given, is a C-contiguous array of that shape to write into."""
    xp = get_xp(x)
    N = x.shape[0]
    xpad = xp.pad(x, ((0, 0), (0, 0), (g.pt, g.pb), (g.pl, g.pr)))
    if out is None:
        out = xp.empty((g.K, N, g.P), dtype=x.dtype)
    cols6 = out.reshape(g.C, g.kh, g.kw, N, g.Ho, g.Wo)  # cols6[c, i, j, n, oh, ow]
    for i in range(g.kh):
        for j in range(g.kw):
            cols6[:, i, j] = xpad[_tap(g, i, j)].transpose(1, 0, 2, 3)
    return out


@reference("col2im")
def col2im(cols, g, out=None):
    """The adjoint of :func:`im2col`: ``cols (K, N, P) -> (N, C, H, W)``; every pixel
    sums the column entries that read it (entries that read padding are dropped)."""
    xp = get_xp(cols)
    N = cols.shape[1]
    cols6 = cols.reshape(g.C, g.kh, g.kw, N, g.Ho, g.Wo)
    xpad = xp.zeros((N, g.C, g.H + g.pt + g.pb, g.W + g.pl + g.pr), dtype=cols.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            xpad[_tap(g, i, j)] += cols6[:, i, j].transpose(1, 0, 2, 3)
    x = xpad[:, :, g.pt:g.pt + g.H, g.pl:g.pl + g.W]
    if out is not None:
        out[...] = x
        return out
    return xp.ascontiguousarray(x)

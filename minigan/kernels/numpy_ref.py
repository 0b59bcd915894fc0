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
    if out is None:
        out = xp.empty((g.K, N, g.Ho * g.Wo), dtype=x.dtype)
    # cols6[c, i, j, n, oh, ow]: one strided slice of x per kernel tap
    cols6 = out.reshape(g.C, g.kh, g.kw, N, g.Ho, g.Wo)
    for i in range(g.kh):
        for j in range(g.kw):
            cols6[:, i, j] = xpad[_tap(g, i, j)].transpose(1, 0, 2, 3)
    return out


def col2im(cols, g, out=None):
    xp = get_xp(cols)
    N = cols.shape[1]
    cols6 = cols.reshape(g.C, g.kh, g.kw, N, g.Ho, g.Wo)
    xpad = xp.zeros((N, g.C, g.H + g.pt + g.pb, g.W + g.pl + g.pr), dtype=cols.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            xpad[_tap(g, i, j)] += cols6[:, i, j].transpose(1, 0, 2, 3)
    x = xpad[:, :, g.pt : g.pt + g.H, g.pl : g.pl + g.W]
    if out is not None:
        out[...] = x
        return out
    return xp.ascontiguousarray(x)


def split_phases(x, sh: int, sw: int, Hp: int, Wp: int):
    """``x (N, C, H, W) -> (N, C, sh, sw, Hp, Wp)``: ``[.., a, b, m, l] = x[.., sh*m + a, sw*l + b]``,
    zero where that lies past the image."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    if (Hp * sh, Wp * sw) != (H, W):
        padded = xp.zeros((N, C, Hp * sh, Wp * sw), dtype=x.dtype)
        padded[:, :, :H, :W] = x
        x = padded
    return xp.ascontiguousarray(x.reshape(N, C, Hp, sh, Wp, sw).transpose(0, 1, 3, 5, 2, 4))


def merge_phases(r, H: int, W: int):
    """The adjoint of :func:`split_phases`: ``(N, C, sh, sw, Hp, Wp) -> (N, C, H, W)``."""
    N, C, sh, sw, Hp, Wp = r.shape
    x = r.transpose(0, 1, 4, 2, 5, 3).reshape(N, C, Hp * sh, Wp * sw)[:, :, :H, :W]
    return get_xp(r).ascontiguousarray(x)


def rows_to_spectrum(r):
    """Real rows ``(B, 2F)``, each the real and imaginary parts of F values in turn,
    -> complex ``(F, B)``, C-contiguous (the transpose)."""
    xp = get_xp(r)
    z = xp.empty((r.shape[1] // 2, r.shape[0]), dtype=xp.result_type(r.dtype, xp.complex64))
    z.real[...] = r[:, 0::2].T
    z.imag[...] = r[:, 1::2].T
    return z


def spectrum_to_rows(z):
    """Inverse of :func:`rows_to_spectrum`: complex ``(F, B)`` -> real rows ``(B, 2F)``."""
    xp = get_xp(z)
    r = xp.empty((z.shape[1], 2 * z.shape[0]), dtype=z.real.dtype)
    r[:, 0::2] = z.real.T
    r[:, 1::2] = z.imag.T
    return r


# -- elementwise ---------------------------------------------------------------------

def leaky_relu(x, slope):
    """``y = x if x > 0 else slope * x``."""
    return get_xp(x).where(x > 0, x, x * x.dtype.type(slope))


def leaky_relu_grad(dy, x, slope):
    """``dx = dy if x > 0 else slope * dy``."""
    return get_xp(dy).where(x > 0, dy, dy * dy.dtype.type(slope))


def adam_update(ps, gs, ms, vs, lr, b1, b2, eps, t, memo=None):
    """One Adam step in place over the lists ``ps``, ``gs``, ``ms``, ``vs``, step count ``t``
    (see :mod:`minigan.optim` for the math).  ``memo`` is unused here."""
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    for p, g, m, v in zip(ps, gs, ms, vs):
        xp = get_xp(p)
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        denom = xp.sqrt(v / c2)
        denom += eps
        p -= (lr / c1) * m / denom


def ema_update(avgs, thetas, weight, memo=None):
    """``avg += weight * (theta - avg)`` in place for each pair (the difference in the
    average's dtype).  ``memo`` is unused here."""
    for avg, theta in zip(avgs, thetas):
        diff = theta - avg  # promotes to avg's dtype (float64 average of float32 weights)
        diff *= weight
        avg += diff


def dropout(x, p):
    """Inverted dropout: ``keep ~ Bernoulli(1 - p)`` from the global generator,
    ``y = x * keep / (1 - p)``.  Returns ``(y, keep)``."""
    from .. import backend  # noqa: PLC0415

    keep = backend.uniform(get_xp(x), x.shape, x.dtype) >= p
    return x * (keep * x.dtype.type(1.0 / (1.0 - p))), keep


def dropout_grad(dy, keep, p):
    """``dx = dy * keep / (1 - p)``."""
    return dy * (keep * dy.dtype.type(1.0 / (1.0 - p)))


# -- batch normalisation: x is (N, C) or (N, C, H, W), statistics per channel c ----------

def _bn_axes(x):
    """The axes every channel's statistics run over, and the shape of a per-channel view."""
    return ((0,), (1, -1)) if x.ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))


def batchnorm_stats(x):
    """Per-channel mean and biased variance: ``(mu (C,), var (C,))``."""
    axes, v = _bn_axes(x)
    mu = x.mean(axis=axes)
    xc = x - mu.reshape(v)
    return mu, (xc * xc).mean(axis=axes)


def batchnorm_apply(x, mu, inv_std, gamma, beta):
    """``xh = (x - mu) * inv_std``, ``y = gamma * xh + beta``; returns ``(y, xh)``."""
    _, v = _bn_axes(x)
    xh = x - mu.reshape(v)
    xh *= inv_std.reshape(v)
    return xh * gamma.reshape(v) + beta.reshape(v), xh


def batchnorm_grad(dy, xh, gamma, inv_std, training):
    """``(dx, dgamma, dbeta)`` with ``dbeta = sum dy``, ``dgamma = sum dy * xh`` and
    ``dx = gamma * inv_std * (dy - dbeta/m - xh * dgamma/m)`` (training; without the two
    mean terms in eval mode, where mu and var are constants)."""
    axes, v = _bn_axes(dy)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xh).sum(axis=axes)
    scale = (gamma * inv_std).reshape(v)
    if not training:
        return dy * scale, dgamma, dbeta
    m = dy.size // dy.shape[1]
    dx = xh * (dgamma / m).reshape(v)
    dx += (dbeta / m).reshape(v)
    dx = dy - dx
    dx *= scale
    return dx, dgamma, dbeta


# -- losses ------------------------------------------------------------------------

def bce_with_logits(z, t):
    """``(sum of the losses, dL/dz without the 1/n)`` of binary cross-entropy on logits ``z``
    against targets ``t`` (a float, or an array shaped like ``z``)::

        loss = max(z, 0) - z t + log(1 + exp(-|z|)),   dloss/dz = sigmoid(z) - t
    """
    xp = get_xp(z)
    e = xp.exp(-xp.abs(z))
    total = float((xp.maximum(z, 0) - z * t + xp.log1p(e)).sum(dtype=xp.float64))
    return total, xp.where(z >= 0, 1 / (1 + e), e / (1 + e)) - t

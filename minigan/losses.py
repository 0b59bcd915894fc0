"""Losses.  Each returns ``(value, grad)``: the loss and dL/d(input).

The value is a 0-d value on the input's device: a NumPy scalar on the CPU,
a 0-d array on a GPU, where it stays until something reads it (``float(value)``
is then a synchronisation, which a training step avoids until it writes a log
row).

Every loss is a mean over all elements of its input (for a discriminator
output of shape (N, 1) that is the mean over the batch), so each gradient
carries a factor 1/n, with n the number of elements.

GAN losses, written for the discriminator output ``d`` (logits unless said
otherwise) on real and fake batches:

==========  ===================================  ===============================
loss        discriminator                        generator
==========  ===================================  ===============================
bce         bce(d_real, 1) + bce(d_fake, 0)      bce(d_fake, 1)  (non-saturating)
lsgan       mse(d_real, 1) + mse(d_fake, 0)      mse(d_fake, 1)  (Mao et al. 2017)
hinge       mean relu(1 - d_real)                -mean d_fake   (Lim & Ye 2017)
            + mean relu(1 + d_fake)
==========  ===================================  ===============================
"""
from __future__ import annotations

import numpy as np

from .runtime import devices
from .runtime.arrays import get_xp
from .runtime.registry import reference


def _n(x):
    return max(int(x.size), 1)


def _target(xp, x, target, probability=False):
    """``target`` as a scalar of ``x``'s dtype or an array shaped like ``x`` on its device.

    ``probability``: the target of a cross-entropy must lie in [0, 1].  Numbers and host
    arrays are checked; an array already on a GPU is not (reading it would be a
    synchronisation)."""
    if isinstance(target, (int, float, np.number)):
        if probability and not 0.0 <= float(target) <= 1.0:
            raise ValueError(f"a cross-entropy target must lie in [0, 1], got {target}")
        return x.dtype.type(target)
    if probability and isinstance(target, (np.ndarray, list, tuple)):
        host = np.asarray(target, dtype=np.float64)
        if not ((host >= 0) & (host <= 1)).all():
            bad = host[~((host >= 0) & (host <= 1))]
            raise ValueError(f"a cross-entropy target must lie in [0, 1]; {bad.size} do not "
                             f"(the first: {bad.flat[0]})")
    t = xp.asarray(target, dtype=x.dtype)
    if t.shape != x.shape:
        t = t.reshape(x.shape)
    return t


@reference("bce_with_logits_sum")
def bce_with_logits_sum(z, t):
    """``(sum of the losses, sigmoid(z) - t)``: binary cross-entropy on logits ``z`` against
    targets ``t`` (a float, or an array shaped like ``z``), summed in float64 (a 0-d value on
    z's device: reading it on the host is left to the caller)::

        loss = max(z, 0) - z t + log(1 + exp(-|z|)),   dloss/dz = sigmoid(z) - t
    """
    xp = get_xp(z)
    e = xp.exp(-xp.abs(z))
    total = (xp.maximum(z, 0) - z * t + xp.log1p(e)).sum(dtype=xp.float64)
    return total, xp.where(z >= 0, 1 / (1 + e), e / (1 + e)) - t


def bce_with_logits(z, target):
    """Binary cross-entropy on logits, stable for any |z|.

    L = mean( max(z, 0) - z*t + log(1 + exp(-|z|)) ),   dL/dz = (sigmoid(z) - t) / n
    """
    dev = devices.device_of(z)
    total, grad = dev.kernel(bce_with_logits_sum)(z, _target(dev.xp, z, target, probability=True))
    grad /= z.dtype.type(_n(z))
    return total / _n(z), grad


def bce(p, target, eps: float = 1e-7):
    """Binary cross-entropy on probabilities p in (0, 1), clipped to [eps, 1 - eps].

    L = -mean( t log p + (1 - t) log(1 - p) ),   dL/dp = (p - t) / (p (1 - p)) / n
    Prefer :func:`bce_with_logits`: a sigmoid followed by this loses precision.
    """
    xp = get_xp(p)
    t = _target(xp, p, target, probability=True)
    pc = xp.clip(p, eps, 1 - eps)
    value = -(t * xp.log(pc) + (1 - t) * xp.log1p(-pc)).mean()
    return value, (pc - t) / (pc * (1 - pc)) / p.dtype.type(_n(p))


def mse(x, target):
    """Mean squared error: L = mean((x - t)^2),  dL/dx = 2 (x - t) / n."""
    xp = get_xp(x)
    diff = x - _target(xp, x, target)
    return (diff * diff).mean(), diff * x.dtype.type(2.0 / _n(x))


def hinge(z, sign):
    """Hinge loss for a critic: L = mean(relu(1 - sign*z)), sign = +1 real, -1 fake.

    dL/dz = -sign * [1 - sign*z > 0] / n
    """
    if sign not in (1, -1):
        raise ValueError(f"hinge: sign must be +1 (real) or -1 (fake), got {sign!r}")
    margin = 1 - sign * z
    active = margin > 0
    return (margin * active).mean(), active * z.dtype.type(-sign / _n(z))


def generator_nonsaturating(z):
    """Goodfellow et al.'s non-saturating generator loss: -mean log sigmoid(z) = bce(z, 1)."""
    return bce_with_logits(z, 1.0)


def mean_negated(z):
    """L = -mean(z), dL/dz = -1/n: the hinge (and WGAN) generator loss."""
    xp = get_xp(z)
    return -z.mean(), xp.full_like(z, -1.0 / _n(z))


def softmax(logits, axis=-1):
    xp = get_xp(logits)
    e = xp.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_cross_entropy(logits, labels):
    """Cross-entropy of softmax(logits) (N, K) against integer labels (N,) or one-hot (N, K).

    L = -mean_n log softmax(z_n)[y_n],   dL/dz = (softmax(z) - onehot(y)) / N
    """
    xp = get_xp(logits)
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (N, K), got {logits.shape}")
    N, K = logits.shape
    labels = xp.asarray(labels)
    if labels.ndim == 1:
        if labels.shape[0] != N:
            raise ValueError(f"softmax_cross_entropy: {labels.shape[0]} labels for {N} rows")
        onehot = xp.zeros_like(logits)
        onehot[xp.arange(N), labels.astype(xp.int64)] = 1
    else:
        onehot = labels.astype(logits.dtype)
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    value = -(onehot * logp).sum() / N
    return value, (xp.exp(logp) - onehot) / logits.dtype.type(N)


class GANLoss:
    """The three GAN objectives by name: ``"bce"``, ``"lsgan"`` or ``"hinge"``.

    ``d_real(out)``, ``d_fake(out)`` and ``g(out)`` each return ``(value, grad)``
    for the discriminator's output on a real or fake batch.
    """

    NAMES = ("bce", "lsgan", "hinge")

    def __init__(self, name: str = "bce"):
        if name not in self.NAMES:
            raise ValueError(f"unknown GAN loss {name!r}; choose from {self.NAMES}")
        self.name = name

    def d_real(self, out):
        if self.name == "bce":
            return bce_with_logits(out, 1.0)
        if self.name == "lsgan":
            return mse(out, 1.0)
        return hinge(out, +1)

    def d_fake(self, out):
        if self.name == "bce":
            return bce_with_logits(out, 0.0)
        if self.name == "lsgan":
            return mse(out, 0.0)
        return hinge(out, -1)

    def g(self, out):
        if self.name == "bce":
            return generator_nonsaturating(out)
        if self.name == "lsgan":
            return mse(out, 1.0)
        return mean_negated(out)

    def __repr__(self):
        return f"GANLoss({self.name!r})"

"""Dropout, Flatten and Reshape: layers with no parameters and no arithmetic to speak of."""
from __future__ import annotations

import math

from ..runtime import devices
from ..runtime.arrays import get_xp
from ..runtime.randomness import hashes
from ..runtime.registry import reference
from .layer import Layer

def keep_mask(xp, size: int, seed: int, p: float):
    """Which of ``size`` elements dropout keeps: ``u_i >= p`` with ``u_i`` uniform in [0, 1).

    ``u_i`` is the top 24 bits of element i's counter-based hash of ``seed``
    (:func:`minigan.runtime.randomness.hashes`), over 2^24: element i's draw depends on
    (seed, i) alone, so every device and kernel computes the same mask, in any
    order, in parallel.
    """
    return (hashes(xp, size, seed) >> xp.uint64(40)) >= xp.uint64(math.ceil(p * 2**24))


@reference("dropout")
def dropout(x, p, seed):
    """Inverted dropout in training mode: ``(y, keep)`` with ``y = x * keep / (1 - p)`` and
    ``keep = keep_mask(seed)`` shaped like ``x``."""
    xp = get_xp(x)
    keep = keep_mask(xp, x.size, seed, p).reshape(x.shape)
    return xp.where(keep, x * x.dtype.type(1.0 / (1.0 - p)), x.dtype.type(0)), keep


@reference("dropout_grad")
def dropout_grad(dy, keep, p):
    """``dL/dx = dy * keep / (1 - p)``."""
    xp = get_xp(dy)
    return xp.where(keep, dy * dy.dtype.type(1.0 / (1.0 - p)), dy.dtype.type(0))


class Dropout(Layer):
    """Inverted dropout: in training, ``y = x * mask / (1 - p)`` with ``mask ~ Bernoulli(1 - p)``.

    ``dL/dx = dy * mask / (1 - p)``.  In eval mode it is the identity.  Each
    forward draws one seed from :func:`minigan.runtime.devices.global_rng` (so a seed
    fixes every mask) and the mask is a hash of (seed, element index)
    (:func:`keep_mask`): the same on every device and kernel.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must lie in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x):
        self._check_float(x)
        if not self.training or self.p == 0.0:
            self._cache = (None, x.shape)
            return x
        seed = int(devices.global_rng().integers(0, 2**63))
        y, keep = self.device.kernel(dropout)(x, self.p, seed)
        self._cache = (keep, x.shape)
        return y

    def backward(self, dy):
        keep, shape = self._need_cache()
        self._check_dy(dy, shape)
        return dy if keep is None else self.device.kernel(dropout_grad)(dy, keep, self.p)

    def __repr__(self):
        return f"Dropout({self.p})"


class Flatten(Layer):
    """``(N, d1, d2, ...) -> (N, d1*d2*...)``; backward reshapes back."""

    def forward(self, x):
        if x.ndim < 2:
            raise self._bad_input(x, "(N, ...) with at least two dimensions")
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        shape = self._need_cache()
        self._check_dy(dy, (shape[0], math.prod(shape[1:])))
        return dy.reshape(shape)


class Reshape(Layer):
    """``(N, prod(shape)) -> (N, *shape)``; backward flattens back."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x):
        size = math.prod(self.shape)
        if x.ndim < 1 or math.prod(x.shape[1:]) != size:
            raise self._bad_input(x, f"(N, ...) with {size} values per sample")
        self._cache = x.shape
        return x.reshape((x.shape[0],) + self.shape)

    def backward(self, dy):
        shape = self._need_cache()
        self._check_dy(dy, (shape[0],) + self.shape)
        return dy.reshape(shape)

    def __repr__(self):
        return f"Reshape({self.shape})"

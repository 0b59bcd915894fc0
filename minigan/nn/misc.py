"""Dropout, Flatten and Reshape: layers with no parameters and no arithmetic to speak of."""
from __future__ import annotations

import math

from .. import kernels
from .layer import Layer


class Dropout(Layer):
    """Inverted dropout: in training, ``y = x * mask / (1 - p)`` with ``mask ~ Bernoulli(1 - p)``.

    ``dL/dx = dy * mask / (1 - p)``.  In eval mode it is the identity.  The
    mask comes from :func:`minigan.backend.global_rng`, so a seed fixes it
    (the Numba path hashes one seed drawn from it: see :func:`minigan.kernels.dropout`).
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
        y, keep = kernels.dropout(x, self.p)
        self._cache = (keep, x.shape)
        return y

    def backward(self, dy):
        keep, shape = self._need_cache()
        self._check_dy(dy, shape)
        return dy if keep is None else kernels.dropout_grad(dy, keep, self.p)

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

"""A discrete code carved out of the generator's Gaussian noise.

``DiscreteCode(K, scale)`` turns the first K coordinates of each noise vector
into a scaled one-hot code of which of them is largest, and passes the rest
through:

    k      = argmax(z[:, :K])                     (N,)  uniform over the K values
    y[:, :K] = scale * onehot(k)                  (N, K)
    y[:, K:] = z[:, K:]                           (N, D - K)

``DiscreteCode(K, scale, probs=p)`` draws code k with probability p_k instead
(the sizes of the data's clusters, for a self-conditioned GAN: see
:class:`minigan.nn.LabelProjection`), by the Gumbel-max trick on the same K
coordinates.  Each z_i becomes a uniform u_i = Phi(z_i) (Phi the standard
normal CDF) and then a standard Gumbel value -log(-log u_i), so

    k = argmax_i ( log p_i - log(-log Phi(z_i)) )         P(k = i) = p_i

Both transforms are increasing, so for equal p_i this is argmax(z[:, :K]):
the plain code is the case p = 1/K.  ``codes(z)`` gives k, the code a
generator starting with this layer draws for each noise vector.

so a generator that starts with it still takes standard normal noise
(N, D), drawn wherever it was drawn before, and sees K separate pieces of
latent space instead of one connected blob.

Why: a continuous generator maps a connected latent space onto a connected
set of images.  MNIST's digits are separate classes, so a generator fed
only Gaussian noise has to pass through in-between images (a 4 becoming a
9) on the way from one class to the next, and some of its samples land
there; they read as no digit.  With a discrete code the generator can put
each class on its own code values, with no path between them that samples
must cross.  This is the categorical code of InfoGAN (Chen et al. 2016)
without its information term, and the remedy Khayatkhoei et al. (2018)
propose for disconnected data.  Nothing here uses labels: which digit a
code value draws is up to training.

The code is piecewise constant in ``z[:, :K]``, so its gradient there is 0
(almost everywhere; the generator's noise is never trained anyway):

    dL/dz[:, :K] = 0          dL/dz[:, K:] = dy[:, K:]
"""
from __future__ import annotations

import math

import numpy as np

from ..runtime.arrays import get_xp, to_numpy
from .layer import Layer


def upper_tail(z):
    """``1 - Phi(z)`` for the standard normal CDF Phi, elementwise, in float64, with a
    relative error below 1.2e-7 everywhere, the far tails included (the Chebyshev fit of
    erfc in Press et al., Numerical Recipes, 6.2; only ``exp``, so NumPy and CuPy alike)."""
    xp = get_xp(z)
    x = xp.abs(z.astype(xp.float64)) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    poly = 0.0
    for c in (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806,
              0.09678418, 0.37409196, 1.00002368, -1.26551223):
        poly = c + t * poly
    erfc = t * xp.exp(-x * x + poly)  # erfc(|z| / sqrt 2)
    return xp.where(z >= 0, 0.5 * erfc, 1.0 - 0.5 * erfc)


class DiscreteCode(Layer):
    def __init__(self, num_codes: int = 10, scale: float = 1.0, probs=None):
        super().__init__()
        if num_codes < 2:
            raise ValueError(f"DiscreteCode: num_codes must be at least 2, got {num_codes}")
        self.num_codes = int(num_codes)
        self.scale = float(scale)
        if probs is not None:  # a buffer: saved with the weights, moved with the layer
            self.buffers["probs"] = self.device.asarray(check_probs(probs, self.num_codes))

    @property
    def probs(self):
        """The probability of each code value (K,), or None for equal ones."""
        return self.buffers.get("probs")

    def set_probs(self, probs):
        """Draw code k with probability ``probs[k]`` from now on (a layer made with ``probs``)."""
        if "probs" not in self.buffers:
            raise ValueError(f"{self!r} draws equal codes; make it with probs= to set them")
        self.buffers["probs"][...] = self.device.asarray(check_probs(probs, self.num_codes))

    def codes(self, z):
        """The code value k (N,) drawn for each noise vector of ``z`` (N, D)."""
        xp, K = self.xp, self.num_codes
        if self.probs is None:
            return xp.argmax(z[:, :K], axis=1)
        with np.errstate(divide="ignore"):  # p = 0: log 0 = -inf, never drawn
            log_p = xp.log(self.probs.astype(xp.float64))
        gumbel = -xp.log(-xp.log1p(-upper_tail(z[:, :K])))
        return xp.argmax(log_p + gumbel, axis=1)

    def forward(self, z):
        self._check_float(z)
        K = self.num_codes
        if z.ndim != 2 or z.shape[1] < K:
            raise self._bad_input(z, f"(N, D) noise with D >= {K}")
        xp = self.xp
        k = self.codes(z)
        code = (xp.arange(K)[None, :] == k[:, None]).astype(z.dtype) * z.dtype.type(self.scale)
        self._cache = z.shape
        return xp.concatenate([code, z[:, K:]], axis=1)

    def backward(self, dy):
        shape = self._need_cache()
        self._check_dy(dy, shape)
        dz = dy.copy()
        dz[:, : self.num_codes] = 0
        return dz

    def __repr__(self):
        p = ", probs=..." if self.probs is not None else ""
        return f"DiscreteCode({self.num_codes}, scale={self.scale:g}{p})"


def check_probs(probs, K: int) -> np.ndarray:
    """``probs`` as float64 (K,), or a ValueError: non-negative, finite, summing to 1."""
    p = np.asarray(to_numpy(probs), dtype=np.float64).reshape(-1)
    if p.shape != (K,) or not np.all(np.isfinite(p)) or p.min() < 0 or abs(p.sum() - 1) > 1e-5:
        raise ValueError(f"DiscreteCode: probs must be {K} non-negative numbers summing to 1")
    return p

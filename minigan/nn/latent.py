"""A discrete code carved out of the generator's Gaussian noise.

``DiscreteCode(K, scale)`` turns the first K coordinates of each noise vector
into a scaled one-hot code of which of them is largest, and passes the rest
through:

    k      = argmax(z[:, :K])                     (N,)  uniform over the K values
    y[:, :K] = scale * onehot(k)                  (N, K)
    y[:, K:] = z[:, K:]                           (N, D - K)

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

from .layer import Layer


class DiscreteCode(Layer):
    def __init__(self, num_codes: int = 10, scale: float = 1.0):
        super().__init__()
        if num_codes < 2:
            raise ValueError(f"DiscreteCode: num_codes must be at least 2, got {num_codes}")
        self.num_codes = int(num_codes)
        self.scale = float(scale)

    def forward(self, z):
        self._check_float(z)
        K = self.num_codes
        if z.ndim != 2 or z.shape[1] < K:
            raise self._bad_input(z, f"(N, D) noise with D >= {K}")
        xp = self.xp
        k = xp.argmax(z[:, :K], axis=1)
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
        return f"DiscreteCode({self.num_codes}, scale={self.scale:g})"

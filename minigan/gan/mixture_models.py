"""MLP generator and discriminator for the 2-D mixtures, and PacGAN's packing.

The setting of PacGAN (Lin et al. 2018, section 5.1), built from minigan's layers:

* G: noise z (N, 2) -> 4 hidden layers of 400 units, each Dense, BatchNorm, ReLU ->
  Dense 400->2 (linear output, points in the plane).
* D: :class:`Pack` (m samples side by side) -> 3 hidden layers of 200 units, each
  Dense and LeakyReLU(0.2) (the paper used maxout) -> Dense 200->1 (a logit).  The
  trainer's ``d_bias_init="data"`` starts D's first-layer hyperplanes spread over the
  data (:func:`place_first_hyperplanes`) instead of all through the origin.

Packing: D judges m samples at once.  A batch of B*m points (B*m, 2) becomes B rows
of 2m values (B, 2m), each row m consecutive points; all m points of a row are real or
all fake.  m = 1 is a plain GAN.  The trainer draws B*m real and B*m fake points per
step, so the discriminator still sees B real and B fake inputs.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ..nn.layer import Layer
from ..runtime import devices

MIXTURE_MODEL = "mlp2d"
MIXTURE_NOISE_DIM = 2


class Pack(Layer):
    """``(N*m, d) -> (N, m*d)``: rows ``k*m .. k*m+m-1`` side by side.  Backward reshapes back.

    A pure reshape, so ``dL/dx`` is ``dy`` reshaped to ``(N*m, d)``.
    """

    def __init__(self, m: int):
        super().__init__()
        if int(m) < 1:
            raise ValueError(f"Pack: m must be at least 1, got {m}")
        self.m = int(m)

    def forward(self, x):
        if x.ndim != 2 or x.shape[0] % self.m:
            raise self._bad_input(x, f"(N*{self.m}, d) with a row count divisible by {self.m}")
        self._cache = x.shape
        return x.reshape(x.shape[0] // self.m, self.m * x.shape[1])

    def backward(self, dy):
        shape = self._need_cache()
        self._check_dy(dy, (shape[0] // self.m, self.m * shape[1]))
        return dy.reshape(shape)

    def __repr__(self):
        return f"Pack({self.m})"


def mixture_generator(noise_dim: int = MIXTURE_NOISE_DIM, hidden: int = 400, depth: int = 4,
                      out_dim: int = 2):
    layers, width = [], noise_dim
    for _ in range(depth):
        layers += [nn.Dense(width, hidden, init="he"), nn.BatchNorm(hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Dense(width, out_dim))
    return nn.Sequential(*layers)


def mixture_discriminator(pack: int = 1, in_dim: int = 2, hidden: int = 200, depth: int = 3,
                          slope: float = 0.2):
    layers, width = [Pack(pack)], in_dim * pack
    for _ in range(depth):
        layers += [nn.Dense(width, hidden, init="he"), nn.LeakyReLU(slope)]
        width = hidden
    layers.append(nn.Dense(width, 1))
    return nn.Sequential(*layers)


def place_first_hyperplanes(D, low, high):
    """Set the biases of D's first Dense layer so that each unit's hyperplane ``w.x + b = 0``
    passes through its own random point, drawn uniformly from the box ``[low, high]`` (per
    coordinate of D's input, packed or not; scalars or arrays).  Draws from the global RNG.

    With the usual zero biases every hyperplane (and, all biases being 0, every kink of
    the whole network) passes through the origin: D starts as a positively homogeneous
    function, D(t x) = t D(x), which cannot tell a point on a mode from one a little
    further out on the same ray, and Adam moves a bias only about ``lr`` a step, so
    spreading the kinks over the data takes thousands of steps.
    """
    first = next(layer for layer in D.layers if isinstance(layer, nn.Dense))
    W = first.params["W"]  # (d, units)
    xp = devices.get_xp(W)
    d = W.shape[0]
    low = np.broadcast_to(np.asarray(low, np.float64), (d,))
    high = np.broadcast_to(np.asarray(high, np.float64), (d,))
    c = devices.global_rng().uniform(low[:, None], high[:, None], size=W.shape)
    b = -(devices.to_numpy(W).astype(np.float64) * c).sum(axis=0)
    first.params["b"][...] = xp.asarray(b.astype(W.dtype))


def build_mixture(pack: int = 1, width: float = 1.0, noise_dim: int = MIXTURE_NOISE_DIM):
    """``(generator, discriminator)`` for the 2-D mixtures with packing degree ``pack``;
    ``width`` scales the hidden sizes (1: the paper's 400 and 200)."""
    return (mixture_generator(noise_dim, hidden=max(1, round(400 * width))),
            mixture_discriminator(pack, hidden=max(1, round(200 * width))))


def param_count(pack: int = 1) -> int:
    g, d = build_mixture(pack)
    return g.num_params() + d.num_params()


__all__ = ["Pack", "MIXTURE_MODEL", "MIXTURE_NOISE_DIM", "mixture_generator", "mixture_discriminator",
           "build_mixture", "place_first_hyperplanes"]

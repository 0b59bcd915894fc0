"""MLP generator and discriminator for the 2-D mixtures, and PacGAN's packing.

The setting of PacGAN (Lin et al. 2018, section 5.1), built from minigan's layers:

* G: noise z (N, 2) -> 4 hidden layers of 400 units, each Dense, BatchNorm, ReLU ->
  Dense 400->2 (linear output, points in the plane).
* D: :class:`Pack` (m samples side by side) -> 3 hidden layers of 200 units, each
  Dense and LeakyReLU(0.2) (the paper used maxout) -> Dense 200->1 (a logit).

Packing: D judges m samples at once.  A batch of B*m points (B*m, 2) becomes B rows
of 2m values (B, 2m), each row m consecutive points; all m points of a row are real or
all fake.  m = 1 is a plain GAN.  The trainer draws B*m real and B*m fake points per
step, so the discriminator still sees B real and B fake inputs.
"""
from __future__ import annotations

from .. import nn
from ..nn.layer import Layer

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


def build_mixture(pack: int = 1):
    """``(generator, discriminator)`` for the 2-D mixtures with packing degree ``pack``."""
    return mixture_generator(), mixture_discriminator(pack)


def param_count(pack: int = 1) -> int:
    g, d = build_mixture(pack)
    return g.num_params() + d.num_params()


__all__ = ["Pack", "MIXTURE_MODEL", "MIXTURE_NOISE_DIM", "mixture_generator", "mixture_discriminator",
           "build_mixture"]

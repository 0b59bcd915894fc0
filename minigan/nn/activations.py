"""Elementwise activations.  Each keeps what its derivative needs.

=========  ==============================  =================================
layer      y                               dL/dx
=========  ==============================  =================================
ReLU       max(x, 0)                       dy * [x > 0]
LeakyReLU  x if x > 0 else slope * x       dy * (1 if x > 0 else slope)
Tanh       tanh(x)                         dy * (1 - y^2)
Sigmoid    1 / (1 + exp(-x))               dy * y * (1 - y)
=========  ==============================  =================================
"""
from __future__ import annotations

from ..runtime.arrays import get_xp
from ..runtime.registry import reference
from .layer import Layer


class _Elementwise(Layer):
    def forward(self, x):
        self._check_float(x)
        y, keep = self._fwd(self.xp, x)
        self._cache = keep
        return y

    def backward(self, dy):
        keep = self._need_cache()
        self._check_dy(dy, keep.shape)
        return self._bwd(self.xp, dy, keep)


class ReLU(_Elementwise):
    def _fwd(self, xp, x):
        mask = x > 0
        return x * mask, mask

    def _bwd(self, xp, dy, mask):
        return dy * mask


@reference("leaky_relu")
def leaky_relu(x, slope):
    """``y = x if x > 0 else slope * x``, a new array."""
    return get_xp(x).where(x > 0, x, x * x.dtype.type(slope))


@reference("leaky_relu_grad")
def leaky_relu_grad(dy, x, slope):
    """``dL/dx = dy if x > 0 else slope * dy``, a new array."""
    return get_xp(dy).where(x > 0, dy, dy * dy.dtype.type(slope))


class LeakyReLU(_Elementwise):
    """Leaky ReLU with negative slope ``slope`` (0.2 as in DCGAN; Keras uses 0.3, PyTorch 0.01)."""

    def __init__(self, slope: float = 0.2):
        super().__init__()
        self.slope = float(slope)

    def _fwd(self, xp, x):
        # keeps x itself for the derivative (one fused pass each way on a kernel table)
        return self.device.kernel(leaky_relu)(x, self.slope), x

    def _bwd(self, xp, dy, x):
        return self.device.kernel(leaky_relu_grad)(dy, x, self.slope)

    def __repr__(self):
        return f"LeakyReLU({self.slope})"


class Tanh(_Elementwise):
    def _fwd(self, xp, x):
        y = xp.tanh(x)
        return y, y

    def _bwd(self, xp, dy, y):
        return dy * (1 - y * y)


def sigmoid(x):
    """Logistic function, computed without overflow for large |x|."""
    xp = get_xp(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(_Elementwise):
    def _fwd(self, xp, x):
        y = sigmoid(x)
        return y, y

    def _bwd(self, xp, dy, y):
        return dy * y * (1 - y)

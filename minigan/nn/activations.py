"""Elementwise activations.  Each keeps what its derivative needs.

=========  ==============================  =================================
layer      y                               dL/dx
=========  ==============================  =================================
ReLU       max(x, 0)                       dy * [x > 0]
LeakyReLU  x if x > 0 else slope * x       dy * (1 if x > 0 else slope)
Tanh       tanh(x)                         dy * (1 - y^2)
Sigmoid    1 / (1 + exp(-x))               dy * y * (1 - y)
=========  ==============================  =================================

With a slope s >= 0 a (leaky) ReLU's output has its input's sign, so its
derivative can be read from the output.  That lets the layer before it in a
:class:`~minigan.nn.Sequential` apply it in its own last pass (a bias add,
BatchNorm's affine) and take the gradient of the activation's output in
backward; see :meth:`minigan.nn.Layer.absorbs` and :func:`relu_slope`.
"""
from __future__ import annotations

from ..runtime.arrays import get_xp
from ..runtime.registry import reference
from .conditioning import add_label_bias
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


@reference("add_channel_bias")
def add_channel_bias(y, b, slope=1.0):
    """``y[n, c] = leaky(y[n, c] + b[c])`` in place, ``y (N, C)`` or ``(N, C, H, W)``, ``b (C,)``,
    with ``leaky(v) = v if v > 0 else slope * v`` (slope 1: the bias alone); returns ``y``."""
    y += b.reshape((1, -1) + (1,) * (y.ndim - 2))
    if slope != 1:
        y[...] = get_xp(y).where(y > 0, y, y * y.dtype.type(slope))
    return y


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


def relu_slope(layer):
    """``s`` when ``layer`` is ``x if x > 0 else s * x`` with ``s >= 0`` (LeakyReLU(s), ReLU: 0),
    else None (any other layer, or None): the activations a layer before them may absorb."""
    if type(layer) is LeakyReLU and layer.slope >= 0:
        return layer.slope
    return 0.0 if type(layer) is ReLU else None


def add_bias_relu(layer, y, slope, labelled=None):
    """``y`` (a fresh output of ``layer``) plus the layer's bias ``b``, through the absorbed
    (leaky) ReLU of ``slope`` when it is not None, in place in one pass.  Returns the output
    and what :func:`through_relu` needs (None when there is no ReLU).

    ``labelled = (T, labels)``, from a layer that absorbed a LabelJoin: ``T[labels[n]]``
    (the bias inside ``T``) is added to sample n instead of ``b``."""
    if labelled is not None:
        y = layer.device.kernel(add_label_bias)(y, *labelled, 1.0 if slope is None else slope)
        return y, (None if slope is None else (y, slope))
    b = layer.params.get("b")
    if slope is None:
        return (y if b is None else layer.device.kernel(add_channel_bias)(y, b)), None
    if b is None:
        b = layer.xp.zeros(y.shape[1], y.dtype)
    return layer.device.kernel(add_channel_bias)(y, b, slope), (y, slope)


def through_relu(layer, dz, relu):
    """``dz``, the gradient of the absorbed ReLU's output, through its derivative (read from
    that output's sign); ``dz`` itself when there was no ReLU."""
    return dz if relu is None else layer.device.kernel(leaky_relu_grad)(dz, *relu)


def absorbs_relu(layer, activation, twin) -> bool:
    """Whether ``layer`` can apply ``activation`` in its pass that runs ``twin``'s math:
    a (leaky) ReLU of slope >= 0, and a device with a twin of that kernel."""
    return relu_slope(activation) is not None and layer.device.has_twin(twin)

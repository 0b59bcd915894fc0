"""Labels in a network: joined to a layer's input (conditional GANs, Mirza & Osindero 2014),
or projected onto a discriminator's features (Miyato & Koyama 2018).

``LabelJoin(K)`` appends the one-hot code of each sample's label to its input:

* features, x: (N, F) -> (N, F + K): ``[x, onehot(y)]`` (the generator's noise);
* channels, x: (N, C, H, W) -> (N, C + K, H, W): K constant planes, plane k all
  ones for samples of class k (the conv discriminator, as in the Keras
  conditional-GAN example on MNIST).

Labels are data, not something learned, so the backward pass just drops the
gradient of the label part: ``dL/dx = dy[:, :F]`` (or ``dy[:, :C]``).

The layer after a join multiplies its K label inputs by their own block of its
weights, ``W = [W_x, W_l]``; the labels' part of its output then depends on the
label alone, ``f([x, onehot(y)]) = f_x(x) + T[y]``, with ``T`` (K, ...) the layer's
map of each one-hot code (plus its bias).  So a :class:`~minigan.nn.Dense` or
:class:`~minigan.nn.Conv2D` after a ``LabelJoin`` in a Sequential *absorbs* it
(:meth:`Layer.absorbs_join`): it runs on ``x`` with ``W_x``, adds ``T[y]`` in its
bias pass (:func:`add_label_bias`), and backward takes::

    dL/dW_l = dT/dW_l applied to S,   S[k] = sum of dy[n] over the samples n of label k
    dL/dx   = from W_x alone          (the K label inputs get no gradient at all)

(:func:`label_sums`).  For the conditional conv D's first layer that is a conv of
one channel where the join made eleven.

:class:`LabelProjection` is a discriminator's last layer told each sample's label
(see its docstring).

The labels for the next forward are set on the layer (``layer.labels = y``,
integers in [0, K)), or for every layer of a model that takes labels at once
with :func:`set_labels`.
"""
from __future__ import annotations

import numpy as np

from ..runtime.arrays import get_xp
from ..runtime.registry import reference
from . import init as _init
from .layer import Layer


class _TakesLabels(Layer):
    """A layer told the label (an int in [0, num_classes)) of each sample before each forward."""

    def __init__(self, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"{type(self).__name__}: num_classes must be at least 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.labels = None

    def _labels_for(self, x, per_row: int = 1):
        """The labels set for the batch ``x``, ``per_row`` a row, as an int array (N * per_row,)
        on this layer's device."""
        if self.labels is None:
            raise RuntimeError(f"{self!r}: set the labels (set_labels(model, y)) before forward()")
        y = self.device.asarray(self.labels).reshape(-1)
        if y.shape[0] != x.shape[0] * per_row:
            each = f" ({per_row} a row)" if per_row > 1 else ""
            raise ValueError(f"{self!r}: {y.shape[0]} labels for a batch of {x.shape[0]}{each}")
        # Labels given on the host are checked; reading a device array's would be a
        # synchronisation in every step (the trainer's own device labels are drawn in range).
        host = self.labels
        if isinstance(host, np.ndarray) and host.size and (host.min() < 0 or host.max() >= self.num_classes):
            raise ValueError(f"{self!r}: labels must lie in [0, {self.num_classes})")
        return y.astype(self.xp.int64)


class LabelJoin(_TakesLabels):
    def __init__(self, num_classes: int = 10):
        super().__init__(num_classes)

    def forward(self, x):
        self._check_float(x)
        if x.ndim not in (2, 4):
            raise self._bad_input(x, "(N, F) or (N, C, H, W)")
        xp = self.xp
        y = self._labels_for(x)
        N, K = x.shape[0], self.num_classes
        out = xp.zeros((N, x.shape[1] + K) + x.shape[2:], dtype=x.dtype)
        out[:, : x.shape[1]] = x
        out[xp.arange(N), x.shape[1] + y] = 1  # a whole plane for images
        self._cache = x.shape
        return out

    def backward(self, dy):
        shape = self._need_cache()
        self._check_dy(dy, (shape[0], shape[1] + self.num_classes) + tuple(shape[2:]))
        return self.xp.ascontiguousarray(dy[:, : shape[1]])

    def __repr__(self):
        return f"LabelJoin({self.num_classes})"


@reference("add_label_bias")
def add_label_bias(y, T, labels, slope=1.0):
    """``y[n] = leaky(y[n] + T[labels[n]])`` in place, ``y (N, ...)``, ``T (K, ...)`` of a
    sample's shape, ``leaky(v) = v if v > 0 else slope * v`` (slope 1: the sum alone)."""
    y += T[labels]
    if slope != 1:
        y[...] = get_xp(y).where(y > 0, y, y * y.dtype.type(slope))
    return y


def label_sums(dy, labels, K):
    """``S[k] = sum of dy[n] over the n with labels[n] == k``: (K, ...) for ``dy (N, ...)``,
    as one product with the (K, N) one-hot matrix of the labels."""
    xp = get_xp(dy)
    onehot = (labels[None, :] == xp.arange(K)[:, None]).astype(dy.dtype)
    return (onehot @ dy.reshape(dy.shape[0], -1)).reshape((K,) + dy.shape[1:])


def joined_labels(join, x):
    """``(labels, K)``: the labels set on the :class:`LabelJoin` ``join`` for the batch ``x``,
    checked as the join's own forward checks them, and its class count; what a layer that
    absorbed the join keeps for its backward."""
    return join._labels_for(x), join.num_classes


def absorbs_join(layer, join, in_size) -> bool:
    """Whether ``layer`` (whose input has ``in_size`` features or channels) can take the
    :class:`LabelJoin` ``join`` before it: ``in_size`` leaves at least one for the data,
    and its device has a twin of :func:`add_label_bias` (the CPU's table)."""
    return (type(join) is LabelJoin and in_size > join.num_classes
            and layer.device.has_twin(add_label_bias))


def _m_hot(rows, R, dtype):
    """``H`` (N, R): row n holds a 1 at each of ``rows[n]`` (its m rows of E), 0 elsewhere."""
    xp = get_xp(rows)
    return (rows[:, :, None] == xp.arange(R)[None, None, :]).sum(axis=1).astype(dtype)


@reference("projection_head")
def projection_head(x, w, b, E, rows):
    """``out[n] = x[n] . (w + e[n]) + b`` with ``e[n] = sum_j E[rows[n, j]]``: (N, 1).

    ``x . e[n] = sum_r H[n, r] (x E^T)[n, r]``: one (N, F) x (F, R) product and no (N, F)
    gather."""
    out = x @ w + b
    out += ((x @ E.T) * _m_hot(rows, E.shape[0], x.dtype)).sum(axis=1, keepdims=True)
    return out


@reference("projection_head_grad")
def projection_head_grad(dy, w, E, rows):
    """``dL/dx = dy w^T + dy * e`` with ``e = H E``: (N, F), as one broadcast (``dy w^T`` as a
    GEMM of inner size 1 is slow)."""
    return dy * (w.T + _m_hot(rows, E.shape[0], dy.dtype) @ E)


@reference("projection_head_weight_grad")
def projection_head_weight_grad(dy, x, rows, R):
    """``(dL/dw, dL/dE) = (x^T dy (F, 1), H^T (dy * x) (R, F))``; the second as
    ``(dy * H)^T x``, the scaling on the small side and one GEMM."""
    return x.T @ dy, (dy * _m_hot(rows, R, x.dtype)).T @ x


class LabelProjection(_TakesLabels):
    """A discriminator's output told each sample's label: the projection discriminator's head.

    For features ``x`` (N, F) and labels ``y`` (N,) in [0, K)::

        out[n] = x[n] . w + b + x[n] . E[y[n]]            (N, 1)

    ``w`` (F, 1) and ``b`` (1,) are a plain ``Dense(F, 1)``; each class k adds the inner
    product with its own embedding row ``E[k]`` (K, F), so D judges an image as real *for
    its label* (Miyato & Koyama, "cGANs with projection discriminator", ICLR 2018).  It
    costs one more multiply-add per feature, where joining K label planes to the input
    makes the first conv K + 1 times as wide.  ``E`` starts at zero: at the start the
    head is the unconditional ``Dense(F, 1)``.

    ``group = m`` is for a packed discriminator (PacGAN), whose row n is m samples side
    by side: it takes m labels a row (N*m,), sample j of the row its own block of E
    (m*K, F), and adds their rows, ``e[n] = sum_j E[j*K + y[n*m + j]]``.  With the m-hot
    ``H`` (N, m*K) of those rows (one-hot for m = 1), backward, for dy = dL/dout (N, 1)::

        dL/dx    = dy w^T + dy * e                        (N, F)
        dL/dw    = x^T dy          dL/db = sum_n dy
        dL/dE    = H^T (dy * x)                           (m*K, F)

    so row r of E gathers ``dy[n] x[n]`` over the rows n that use it.
    """

    def __init__(self, in_features: int, num_classes: int, group: int = 1, init="glorot"):
        super().__init__(num_classes)
        if in_features < 1 or group < 1:
            raise ValueError(f"LabelProjection({in_features}, {num_classes}, group={group}): sizes must "
                             f"be positive")
        self.in_features, self.group = int(in_features), int(group)
        self._add_param("W", _init.get(init)((in_features, 1), in_features, 1))
        self._add_param("b", _init.zeros((1,)))
        self._add_param("E", _init.zeros((self.group * num_classes, in_features)))

    def fans(self):
        return self.in_features, 1

    def multiply_adds(self, in_shape) -> int:
        """``2 F`` per row: ``x . w`` and ``x . e``."""
        return 2 * self.in_features

    def forward(self, x):
        self._check_float(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise self._bad_input(x, f"(N, {self.in_features})")
        xp, m = self.xp, self.group
        # the row of E each sample of a row uses: sample j of the row its own block
        rows = self._labels_for(x, m).reshape(-1, m) + xp.arange(m)[None, :] * self.num_classes
        rows = xp.ascontiguousarray(rows)
        out = self.device.kernel(projection_head)(x, self.params["W"], self.params["b"],
                                                  self.params["E"], rows)
        self._cache = (x, rows)
        return out

    def backward(self, dy):
        self.backward_weights(dy)
        _, rows = self._cache
        return self.device.kernel(projection_head_grad)(dy, self.params["W"], self.params["E"], rows)

    def backward_weights(self, dy):
        x, rows = self._need_cache()
        self._check_dy(dy, (x.shape[0], 1))
        if self.trainable:
            dw, dE = self.device.kernel(projection_head_weight_grad)(dy, x, rows, self.params["E"].shape[0])
            self.grads["W"] += dw
            self.grads["b"] += dy.sum(axis=0)
            self.grads["E"] += dE

    def __repr__(self):
        g = f", group={self.group}" if self.group > 1 else ""
        return f"LabelProjection({self.in_features}, {self.num_classes}{g})"


def set_labels(model, labels):
    """Give ``labels`` (N,) to every layer of ``model`` that takes labels (:class:`LabelJoin`,
    :class:`LabelProjection`); returns the model."""
    for m in model.modules():
        if isinstance(m, _TakesLabels):
            m.labels = labels
    return model


def takes_labels(model) -> bool:
    """Whether some layer of ``model`` needs labels set before each forward."""
    return any(isinstance(m, _TakesLabels) for m in model.modules())


def is_conditional(model) -> bool:
    """Whether ``model`` joins labels to its input: a class-conditional generator or
    discriminator (a :class:`LabelProjection` alone, told cluster labels, is not one)."""
    return any(isinstance(m, LabelJoin) for m in model.modules())

"""Joining class labels to a layer's input, for conditional GANs (Mirza & Osindero 2014).

``LabelJoin(K)`` appends the one-hot code of each sample's label to its input:

* features, x: (N, F) -> (N, F + K): ``[x, onehot(y)]`` (the generator's noise);
* channels, x: (N, C, H, W) -> (N, C + K, H, W): K constant planes, plane k all
  ones for samples of class k (the conv discriminator, as in the Keras
  conditional-GAN example on MNIST).

Labels are data, not something learned, so the backward pass just drops the
gradient of the label part: ``dL/dx = dy[:, :F]`` (or ``dy[:, :C]``).

The labels for the next forward are set on the layer (``layer.labels = y``,
integers in [0, K)), or for every LabelJoin in a model at once with
:func:`set_labels`.
"""
from __future__ import annotations

import numpy as np

from .layer import Layer


class LabelJoin(Layer):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"LabelJoin: num_classes must be at least 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.labels = None

    def forward(self, x):
        self._check_float(x)
        if x.ndim not in (2, 4):
            raise self._bad_input(x, "(N, F) or (N, C, H, W)")
        if self.labels is None:
            raise RuntimeError(f"{self!r}: set the labels (set_labels(model, y)) before forward()")
        xp = self.xp
        y = self.device.asarray(self.labels).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{self!r}: {y.shape[0]} labels for a batch of {x.shape[0]}")
        # Labels given on the host are checked; reading a device array's would be a
        # synchronisation in every step (the trainer's own device labels are drawn in range).
        host = self.labels
        if isinstance(host, np.ndarray) and host.size and (host.min() < 0 or host.max() >= self.num_classes):
            raise ValueError(f"{self!r}: labels must lie in [0, {self.num_classes})")
        N, K = x.shape[0], self.num_classes
        out = xp.zeros((N, x.shape[1] + K) + x.shape[2:], dtype=x.dtype)
        out[:, : x.shape[1]] = x
        out[xp.arange(N), x.shape[1] + y.astype(xp.int64)] = 1  # a whole plane for images
        self._cache = x.shape
        return out

    def backward(self, dy):
        shape = self._need_cache()
        self._check_dy(dy, (shape[0], shape[1] + self.num_classes) + tuple(shape[2:]))
        return self.xp.ascontiguousarray(dy[:, : shape[1]])

    def __repr__(self):
        return f"LabelJoin({self.num_classes})"


def set_labels(model, labels):
    """Give ``labels`` (N,) to every :class:`LabelJoin` in ``model``; returns the model."""
    for m in model.modules():
        if isinstance(m, LabelJoin):
            m.labels = labels
    return model


def is_conditional(model) -> bool:
    return any(isinstance(m, LabelJoin) for m in model.modules())

"""Fully connected layer.

    y = x W + b          x: (N, in)   W: (in, out)   b: (out,)   y: (N, out)

Backward, for an upstream gradient dy = dL/dy of shape (N, out):

    dL/dx = dy W^T       (N, in)
    dL/dW = x^T dy       (in, out)
    dL/db = sum_n dy     (out,)

Where it absorbs the (leaky) ReLU after it (:meth:`Layer.absorbs`), ``y = leaky(x W + b)``
in the bias's pass, and backward first takes dy through leaky's derivative, read from y.
"""
from __future__ import annotations

from . import init as _init
from .activations import absorbs_relu, add_bias_relu, add_channel_bias, relu_slope, through_relu
from .layer import Layer


class Dense(Layer):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, init="glorot"):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Dense({in_features}, {out_features}): sizes must be positive")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._add_param("W", _init.get(init)((in_features, out_features), in_features, out_features))
        if bias:
            self._add_param("b", _init.zeros((out_features,)))

    def fans(self):
        return self.in_features, self.out_features

    def multiply_adds(self, in_shape) -> int:
        """``in * out`` per sample: the GEMM ``x W``."""
        return self.in_features * self.out_features

    def absorbs(self, activation):
        return absorbs_relu(self, activation, add_channel_bias)

    def forward(self, x, activation=None):
        self._check_float(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise self._bad_input(x, f"(N, {self.in_features})")
        y, relu = add_bias_relu(self, x @ self.params["W"], relu_slope(activation))
        self._cache = (x, relu)
        return y

    def backward(self, dy):
        return self._weight_grads(dy) @ self.params["W"].T

    def backward_weights(self, dy):
        self._weight_grads(dy)

    def _weight_grads(self, dy):
        """Add dW and db for ``dy``; return dL/d(x W + b) (``dy`` but for an absorbed ReLU)."""
        x, relu = self._need_cache()
        self._check_dy(dy, (x.shape[0], self.out_features))
        dy = through_relu(self, dy, relu)
        if self.trainable:
            self.grads["W"] += x.T @ dy
            if "b" in self.params:
                self.grads["b"] += dy.sum(axis=0)
        return dy

    def __repr__(self):
        b = "" if "b" in self.params else ", bias=False"
        return f"Dense({self.in_features}, {self.out_features}{b})"


__all__ = ["Dense"]

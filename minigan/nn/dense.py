"""Fully connected layer.

    y = x W + b          x: (N, in)   W: (in, out)   b: (out,)   y: (N, out)

Backward, for an upstream gradient dy = dL/dy of shape (N, out):

    dL/dx = dy W^T       (N, in)
    dL/dW = x^T dy       (in, out)
    dL/db = sum_n dy     (out,)
"""
from __future__ import annotations

from . import init as _init
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

    def forward(self, x):
        self._check_float(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise self._bad_input(x, f"(N, {self.in_features})")
        W = self.params["W"]
        y = x @ W
        if "b" in self.params:
            y += self.params["b"]
        self._cache = x
        return y

    def backward(self, dy):
        self.backward_weights(dy)
        return dy @ self.params["W"].T

    def backward_weights(self, dy):
        x = self._need_cache()
        self._check_dy(dy, (x.shape[0], self.out_features))
        if self.trainable:
            self.grads["W"] += x.T @ dy
            if "b" in self.params:
                self.grads["b"] += dy.sum(axis=0)

    def __repr__(self):
        b = "" if "b" in self.params else ", bias=False"
        return f"Dense({self.in_features}, {self.out_features}{b})"


__all__ = ["Dense"]

"""Fully connected layer.

    y = x W + b          x: (N, in)   W: (in, out)   b: (out,)   y: (N, out)

Backward, for an upstream gradient dy = dL/dy of shape (N, out):

    dL/dx = dy W^T       (N, in)
    dL/dW = x^T dy       (in, out)
    dL/db = sum_n dy     (out,)

Where it absorbs the (leaky) ReLU after it (:meth:`Layer.absorbs`), ``y = leaky(x W + b)``
in the bias's pass, and backward first takes dy through leaky's derivative, read from y.

Where it absorbs the LabelJoin before it (:meth:`Layer.absorbs_join`), its input is
``[x, onehot(labels)]`` with x (N, in - K), and with ``W = [W_x; W_l]`` split by rows::

    y       = x W_x + T[labels]      T = W_l + b            (K, out)
    dL/dW_x = x^T dy                 dL/dW_l = S            S[k] = sum of dy over label k
    dL/dx   = dy W_x^T               (N, in - K)
"""
from __future__ import annotations

from . import init as _init
from .activations import absorbs_relu, add_bias_relu, add_channel_bias, relu_slope, through_relu
from .conditioning import absorbs_join, joined_labels, label_sums
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

    def absorbs_join(self, before):
        return absorbs_join(self, before, self.in_features)

    def forward(self, x, activation=None, join=None):
        self._check_float(x)
        C = self.in_features - (join.num_classes if join is not None else 0)
        if x.ndim != 2 or x.shape[1] != C:
            raise self._bad_input(x, f"(N, {C})")
        W, labelled, joined = self.params["W"], None, None
        if join is not None:  # the labels' rows of W, plus the bias, looked up per sample
            joined = joined_labels(join, x)
            b = self.params.get("b")
            labelled = (W[C:] if b is None else W[C:] + b, joined[0])
            W = W[:C]
        y, relu = add_bias_relu(self, x @ W, relu_slope(activation), labelled)
        self._cache = (x, relu, joined)
        return y

    def backward(self, dy):
        dy = self._weight_grads(dy)
        return dy @ self.params["W"][: self._cache[0].shape[1]].T

    def backward_weights(self, dy):
        self._weight_grads(dy)

    def _weight_grads(self, dy):
        """Add dW and db for ``dy``; return dL/d(x W + b) (``dy`` but for an absorbed ReLU)."""
        x, relu, joined = self._need_cache()
        self._check_dy(dy, (x.shape[0], self.out_features))
        dy = through_relu(self, dy, relu)
        if self.trainable:
            C = x.shape[1]
            self.grads["W"][:C] += x.T @ dy
            if joined is not None:
                self.grads["W"][C:] += label_sums(dy, *joined)
            if "b" in self.params:
                self.grads["b"] += dy.sum(axis=0)
        return dy

    def __repr__(self):
        b = "" if "b" in self.params else ", bias=False"
        return f"Dense({self.in_features}, {self.out_features}{b})"


__all__ = ["Dense"]

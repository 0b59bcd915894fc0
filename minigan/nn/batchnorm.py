"""Batch normalisation per channel (Ioffe & Szegedy 2015), with PyTorch's numbers.

Input (N, C) or (N, C, H, W); statistics are taken per channel c over the
m = N (or N*H*W) values that share it.  In training mode::

    mu  = mean(x)          var = mean((x - mu)^2)      (biased, to normalise)
    xh  = (x - mu) / sqrt(var + eps)
    y   = gamma * xh + beta

and the running estimates move by ``momentum`` towards mu and the *unbiased*
variance ``var * m / (m - 1)``.  In eval mode the running estimates replace
mu and var.  Backward in training mode (mu and var depend on x)::

    dxh    = dy * gamma
    dx     = (dxh - mean(dxh) - xh * mean(dxh * xh)) / sqrt(var + eps)
    dgamma = sum(dy * xh)       dbeta = sum(dy)

In eval mode mu and var are constants: ``dx = dy * gamma / sqrt(var + eps)``.
Since mean(dxh) = gamma*dbeta/m and mean(dxh*xh) = gamma*dgamma/m, training
mode computes ``dx = gamma/sqrt(var + eps) * (dy - dbeta/m - xh*dgamma/m)``.
The passes are :func:`minigan.kernels.batchnorm_stats`, ``batchnorm_apply``
and ``batchnorm_grad`` (fused Numba loops on the CPU, the same math in
NumPy/CuPy in :mod:`minigan.kernels.numpy_ref`).
"""
from __future__ import annotations

import numpy as np

from .. import backend, kernels
from .layer import Layer


class BatchNorm(Layer):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"BatchNorm({num_features}): num_features must be positive")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm: momentum must lie in [0, 1], got {momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        dt = backend.DEFAULT_DTYPE
        self._add_param("gamma", np.ones(num_features, dtype=dt))
        self._add_param("beta", np.zeros(num_features, dtype=dt))
        self.buffers["running_mean"] = np.zeros(num_features, dtype=dt)
        self.buffers["running_var"] = np.ones(num_features, dtype=dt)

    def forward(self, x):
        self._check_float(x)
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise self._bad_input(x, f"(N, {self.num_features}) or (N, {self.num_features}, H, W)")
        xp = backend.get_xp(x)
        m = x.size // self.num_features
        if self.training:
            if m < 2:
                raise self._bad_input(x, "with more than one value per channel",
                                      "batch statistics need at least two values per channel")
            mu, var = kernels.batchnorm_stats(x)
            mom = self.momentum
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= 1 - mom
            rm += mom * mu
            rv *= 1 - mom
            rv += mom * var * (m / (m - 1))
        else:
            mu, var = self.buffers["running_mean"], self.buffers["running_var"]
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        y, xh = kernels.batchnorm_apply(x, mu, inv_std, self.params["gamma"], self.params["beta"])
        self._cache = (xh, inv_std, self.training)
        return y

    def backward(self, dy):
        xh, inv_std, training = self._need_cache()
        self._check_dy(dy, xh.shape)
        dx, dgamma, dbeta = kernels.batchnorm_grad(dy, xh, self.params["gamma"], inv_std, training)
        if self.trainable:
            self.grads["gamma"] += dgamma
            self.grads["beta"] += dbeta
        return dx

    def __repr__(self):
        return f"BatchNorm({self.num_features})"

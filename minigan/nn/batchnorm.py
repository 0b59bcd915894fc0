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
"""
from __future__ import annotations

import numpy as np

from .. import backend
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

    def _view(self, ndim):
        """Shape that broadcasts a per-channel vector against the input."""
        return (1, -1) if ndim == 2 else (1, -1, 1, 1)

    def forward(self, x):
        self._check_float(x)
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise self._bad_input(x, f"(N, {self.num_features}) or (N, {self.num_features}, H, W)")
        xp = backend.get_xp(x)
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        m = x.size // self.num_features
        v = self._view(x.ndim)
        if self.training:
            if m < 2:
                raise self._bad_input(x, "with more than one value per channel",
                                      "batch statistics need at least two values per channel")
            mu = x.mean(axis=axes)
            xc = x - mu.reshape(v)
            var = (xc * xc).mean(axis=axes)
            mom = self.momentum
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= 1 - mom
            rm += mom * mu
            rv *= 1 - mom
            rv += mom * var * (m / (m - 1))
        else:
            xc = x - self.buffers["running_mean"].reshape(v)
            var = self.buffers["running_var"]
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xh = xc
        xh *= inv_std.reshape(v)
        self._cache = (xh, inv_std, axes, self.training)
        return xh * self.params["gamma"].reshape(v) + self.params["beta"].reshape(v)

    def backward(self, dy):
        xh, inv_std, axes, training = self._need_cache()
        self._check_dy(dy, xh.shape)
        v = self._view(dy.ndim)
        gamma = self.params["gamma"]
        dbeta = dy.sum(axis=axes)
        dgamma = (dy * xh).sum(axis=axes)
        if self.trainable:
            self.grads["gamma"] += dgamma
            self.grads["beta"] += dbeta
        scale = (gamma * inv_std).reshape(v)
        if not training:
            return dy * scale
        m = dy.size // self.num_features
        # mean(dxh) = gamma*dbeta/m and mean(dxh*xh) = gamma*dgamma/m, so
        # dx = gamma*inv_std * (dy - dbeta/m - xh*dgamma/m)
        dx = xh * (dgamma / m).reshape(v)
        dx += (dbeta / m).reshape(v)
        dx = dy - dx
        dx *= scale
        return dx

    def __repr__(self):
        return f"BatchNorm({self.num_features})"

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

The three passes below (:func:`batchnorm_stats`, :func:`batchnorm_apply`,
:func:`batchnorm_grad`) are that math; on the CPU each runs as one fused
Numba sweep per channel (:mod:`minigan.runtime.cpu`).  There the layer also
absorbs a (leaky) ReLU after it (:meth:`Layer.absorbs`): ``z = leaky(y)`` in the
affine pass, and ``dy = dz * leaky'(y)`` inside the gradient's two sweeps, with y
recomputed from x̂ (:func:`batchnorm_leaky_apply`, :func:`batchnorm_leaky_grad`).
"""
from __future__ import annotations

import numpy as np

from ..runtime import devices
from ..runtime.registry import reference
from .activations import absorbs_relu, leaky_relu, leaky_relu_grad, relu_slope
from .layer import Layer


def _bn_axes(x):
    """The axes every channel's statistics run over, and the shape of a per-channel view."""
    return ((0,), (1, -1)) if x.ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))


@reference("batchnorm_stats")
def batchnorm_stats(x):
    """Per-channel mean and biased variance: ``(mu (C,), var (C,))``."""
    axes, v = _bn_axes(x)
    mu = x.mean(axis=axes)
    xc = x - mu.reshape(v)
    return mu, (xc * xc).mean(axis=axes)


@reference("batchnorm_apply")
def batchnorm_apply(x, mu, inv_std, gamma, beta):
    """``xh = (x - mu) * inv_std``, ``y = gamma * xh + beta``; returns ``(y, xh)``."""
    _, v = _bn_axes(x)
    xh = x - mu.reshape(v)
    xh *= inv_std.reshape(v)
    return xh * gamma.reshape(v) + beta.reshape(v), xh


@reference("batchnorm_grad")
def batchnorm_grad(dy, xh, gamma, inv_std, training):
    """``(dx, dgamma, dbeta)`` with ``dbeta = sum dy``, ``dgamma = sum dy * xh`` and
    ``dx = gamma * inv_std * (dy - dbeta/m - xh * dgamma/m)`` (training; without the two
    mean terms in eval mode, where mu and var are constants)."""
    axes, v = _bn_axes(dy)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xh).sum(axis=axes)
    scale = (gamma * inv_std).reshape(v)
    if not training:
        return dy * scale, dgamma, dbeta
    m = dy.size // dy.shape[1]
    dx = xh * (dgamma / m).reshape(v)
    dx += (dbeta / m).reshape(v)
    dx = dy - dx
    dx *= scale
    return dx, dgamma, dbeta


@reference("batchnorm_leaky_apply")
def batchnorm_leaky_apply(x, mu, inv_std, gamma, beta, slope):
    """:func:`batchnorm_apply` with ``y`` through ``leaky_relu(., slope)``: ``(leaky(y), xh)``."""
    y, xh = batchnorm_apply(x, mu, inv_std, gamma, beta)
    return leaky_relu(y, slope), xh


@reference("batchnorm_leaky_grad")
def batchnorm_leaky_grad(dz, xh, gamma, beta, inv_std, training, slope):
    """:func:`batchnorm_grad` for ``z = leaky(gamma * xh + beta)`` with slope >= 0: ``dz`` first
    through leaky's derivative, read from the sign of ``gamma * xh + beta``."""
    _, v = _bn_axes(dz)
    y = xh * gamma.reshape(v) + beta.reshape(v)
    return batchnorm_grad(leaky_relu_grad(dz, y, slope), xh, gamma, inv_std, training)


class BatchNorm(Layer):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"BatchNorm({num_features}): num_features must be positive")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm: momentum must lie in [0, 1], got {momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        dt = devices.DEFAULT_DTYPE
        self._add_param("gamma", np.ones(num_features, dtype=dt))
        self._add_param("beta", np.zeros(num_features, dtype=dt))
        self.buffers["running_mean"] = np.zeros(num_features, dtype=dt)
        self.buffers["running_var"] = np.ones(num_features, dtype=dt)

    def absorbs(self, activation):
        return absorbs_relu(self, activation, batchnorm_leaky_apply)

    def forward(self, x, activation=None):
        self._check_float(x)
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise self._bad_input(x, f"(N, {self.num_features}) or (N, {self.num_features}, H, W)")
        m = x.size // self.num_features
        if self.training:
            if m < 2:
                raise self._bad_input(x, "with more than one value per channel",
                                      "batch statistics need at least two values per channel")
            mu, var = self.device.kernel(batchnorm_stats)(x)
            if self.reducer is not None:  # over every process's batch: m values become M
                mu, var, m = self.reducer.stats(mu, var, m)
            mom = self.momentum
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            rm *= 1 - mom
            rm += mom * mu
            rv *= 1 - mom
            rv += mom * var * (m / (m - 1))
        else:
            mu, var = self.buffers["running_mean"], self.buffers["running_var"]
        inv_std = 1.0 / self.xp.sqrt(var + self.eps)
        gamma, beta = self.params["gamma"], self.params["beta"]
        slope = relu_slope(activation)
        if slope is None:
            y, xh = self.device.kernel(batchnorm_apply)(x, mu, inv_std, gamma, beta)
        else:  # the absorbed ReLU in the same pass
            y, xh = self.device.kernel(batchnorm_leaky_apply)(x, mu, inv_std, gamma, beta, slope)
        self._cache = (xh, inv_std, self.training, m, slope)
        return y

    def backward(self, dy):
        xh, inv_std, training, m, slope = self._need_cache()
        self._check_dy(dy, xh.shape)
        sync = training and self.reducer is not None
        gamma = self.params["gamma"]
        if slope is None:
            dx, dgamma, dbeta = self.device.kernel(batchnorm_grad)(dy, xh, gamma, inv_std,
                                                                   training and not sync)
        else:  # dy is the absorbed ReLU's: its derivative in the same passes
            dx, dgamma, dbeta = self.device.kernel(batchnorm_leaky_grad)(
                dy, xh, gamma, self.params["beta"], inv_std, training and not sync, slope)
        if sync:  # the mean terms from the sums over every process; the gradients stay local
            dx = self.reducer.grad(dx, xh, inv_std, self.params["gamma"], dgamma, dbeta, m)
        if self.trainable:
            self.grads["gamma"] += dgamma
            self.grads["beta"] += dbeta
        return dx

    # Data parallelism (minigan.distributed.SyncStats): when set, training-mode statistics
    # and their gradient sums are taken over every process's batch, not this one's only.
    reducer = None

    def __repr__(self):
        return f"BatchNorm({self.num_features})"

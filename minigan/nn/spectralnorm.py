"""Spectral normalisation of a layer's weight (Miyato et al. 2018).

``SpectralNorm(layer)`` runs ``layer`` (a Dense, Conv2D, Conv2DTranspose, or
any layer with a parameter ``"W"``) with its weight divided by an estimate
of its largest singular value, so that the map it computes has a spectral
norm of about 1 (the discriminator of an SN-GAN is then roughly 1-Lipschitz).

The weight is read as a matrix ``Wm (rows, cols)`` whose rows are the
layer's outputs, PyTorch's choice for each layout:

    Dense            W (in, out)          Wm = Wᵀ                    (out, in)
    Conv2D           W (out, in, kh, kw)  Wm = W.reshape(out, -1)    (out, in*kh*kw)
    Conv2DTranspose  W (in, out, kh, kw)  Wm = W with axes 0 and 1 swapped, reshaped
                                                                     (out, in*kh*kw)

The largest singular value is tracked by power iteration on a vector
``u (rows,)``, a buffer (saved with the model, not trained).  In training
mode each forward first runs ``n_power_iterations`` steps

    v = normalize(Wmᵀ u)        (cols,)
    u = normalize(Wm v)         (rows,)       normalize(a) = a / max(|a|, eps)

and keeps the new ``u``; in eval mode ``u`` stays as it is and only
``v = normalize(Wmᵀ u)`` is taken.  Then

    sigma = uᵀ Wm v             W_sn = W / sigma

and the wrapped layer runs with ``W_sn`` in place of ``W``.  (This is
Algorithm 1 of the paper.  PyTorch's ``spectral_norm`` keeps ``v`` too and
takes it half a step further, ``v = normalize(Wmᵀ u)`` after the new ``u``:
the same ``u`` from the same start, and the same ``sigma`` once converged.)

Backward holds ``u`` and ``v`` fixed (as Miyato et al. and PyTorch do).  With
``G = dL/dW_sn`` (what the wrapped layer's backward gives for ``W_sn``) and
``dsigma/dW = u vᵀ`` (in ``W``'s layout),

    dL/dW = G / sigma - <G, W> / sigma² · u vᵀ = (G - <G, W_sn> u vᵀ) / sigma

where ``<A, B>`` sums ``A ⊙ B`` over every entry.  In eval mode this is the
exact gradient of the forward (there ``sigma = |Wmᵀ u|``, whose gradient is
exactly ``u vᵀ``), so eval mode is what a gradient check checks; in training
mode ``v`` also moves with ``W``, which the update leaves out.  The bias and
``dL/dx`` are the wrapped layer's own.  A frozen layer (``trainable = False``)
returns dL/dx and adds nothing.

``W`` stays the trained parameter: the wrapped layer's ``params["W"]`` (and
``grads["W"]``, a view of the optimizer's flat buffer once there is one) is
put back after every call, and ``dL/dW`` is added into it.  In a model the
wrapped layer is this layer's child ``0``: ``param.<i>.0.W``, ``param.<i>.0.b``
and ``buffer.<i>.u`` in a checkpoint.

``u`` starts as a fixed-seed normal vector, normalised, and is refined by
:data:`WARMUP_ITERATIONS` power iterations on the initial weight, so that the
first forward's ``sigma`` is already close (PyTorch does the same); it is
deterministic, and restoring it from a checkpoint resumes a run exactly.
"""
from __future__ import annotations

import numpy as np

from .conv import Conv2DTranspose
from .dense import Dense
from .layer import Layer

# Power iterations on the initial weight, when the layer is wrapped.
WARMUP_ITERATIONS = 15
U_SEED = 0


class SpectralNorm(Layer):
    """``layer`` with its weight ``W`` divided by its largest singular value (see the module)."""

    summary_one_row = True  # minigan.nn.summary: one row "SpectralNorm(Dense(...))", not the child's

    def __init__(self, layer: Layer, n_power_iterations: int = 1, eps: float = 1e-12):
        super().__init__()
        if not isinstance(layer, Layer):
            raise TypeError(f"SpectralNorm: expected a Layer, got {type(layer).__name__}")
        W = layer.params.get("W")
        if W is None or W.ndim < 2:
            raise ValueError(f"SpectralNorm({layer!r}): the layer has no weight 'W' of two or more "
                             f"dimensions to normalise")
        if int(n_power_iterations) != n_power_iterations or n_power_iterations < 1:
            raise ValueError(f"SpectralNorm({layer!r}): n_power_iterations must be a positive int, "
                             f"got {n_power_iterations!r}")
        if not eps > 0:
            raise ValueError(f"SpectralNorm({layer!r}): eps must be positive, got {eps!r}")
        self.layer = layer
        self.n_power_iterations, self.eps = int(n_power_iterations), float(eps)
        self.device = layer.device
        self.training = layer.training
        self._trainable = layer.trainable
        self.dim = self.output_axis(layer)
        rows = W.shape[self.dim]
        u = np.random.default_rng(U_SEED).standard_normal(rows)
        self.buffers["u"] = self.device.asarray(u.astype(W.dtype, copy=False))
        self.buffers["u"] = self._warm_up(W, self._normalize(self.buffers["u"]))

    @staticmethod
    def output_axis(layer) -> int:
        """The axis of ``W`` that indexes the layer's outputs: the rows of ``Wm``."""
        return 1 if isinstance(layer, (Dense, Conv2DTranspose)) else 0

    def children(self):
        return (self.layer,)

    # -- the math ----------------------------------------------------------------
    def matrix(self, W):
        """``W`` as the matrix ``Wm (rows, cols)`` (a view for Dense and Conv2D)."""
        if self.dim:
            W = self.xp.moveaxis(W, self.dim, 0)
        return W.reshape(W.shape[0], -1)

    def _from_matrix(self, M, shape):
        """``M (rows, cols)`` back in the layout of a ``W`` of ``shape``: the inverse of :meth:`matrix`."""
        rest = tuple(s for i, s in enumerate(shape) if i != self.dim)
        M = M.reshape((M.shape[0],) + rest)
        return self.xp.moveaxis(M, 0, self.dim) if self.dim else M

    def _normalize(self, a):
        return a / self.xp.maximum(self.xp.sqrt((a * a).sum()), self.eps)

    def _warm_up(self, W, u):
        Wm = self.matrix(W)
        for _ in range(WARMUP_ITERATIONS):
            u = self._normalize(Wm @ self._normalize(Wm.T @ u))
        return u

    def _estimate(self, update: bool):
        """``(sigma, u, v)`` for the current weight; ``update``: run the power iterations and keep ``u``."""
        Wm = self.matrix(self.layer.params["W"])
        u = self.buffers["u"]
        if update:
            for _ in range(self.n_power_iterations):
                v = self._normalize(Wm.T @ u)
                u = self._normalize(Wm @ v)
            self.buffers["u"][...] = u
        else:
            v = self._normalize(Wm.T @ u)
            u = u.copy()
        return u @ (Wm @ v), u, v

    def sigma(self):
        """The estimate of W's largest singular value from the stored ``u`` (eval mode's; a 0-d array)."""
        return self._estimate(update=False)[0]

    def normalized_weight(self):
        """``W / sigma`` as an eval-mode forward uses it (``u`` is not updated)."""
        return self.layer.params["W"] / self.sigma()

    # -- the contract --------------------------------------------------------------
    def _swapped(self, W_sn, G, fn, arg):
        """``fn(arg)`` with the wrapped layer's ``W`` (and, unless None, its ``grads["W"]``) swapped out."""
        params, grads = self.layer.params, self.layer.grads
        W, dW = params["W"], grads["W"]
        params["W"] = W_sn
        if G is not None:
            grads["W"] = G
        try:
            return fn(arg)
        finally:
            params["W"], grads["W"] = W, dW  # the very arrays: flat-buffer views stay in place

    def forward(self, x):
        sigma, u, v = self._estimate(update=self.training)
        W_sn = self.layer.params["W"] / sigma
        y = self._swapped(W_sn, None, self.layer.forward, x)
        self._cache = (W_sn, sigma, u, v)
        return y

    def backward(self, dy):
        return self._backward(self.layer.backward, dy)

    def backward_weights(self, dy):
        self._backward(self.layer.backward_weights, dy)

    def _backward(self, fn, dy):
        W_sn, sigma, u, v = self._need_cache()
        if not self.layer.trainable:
            return self._swapped(W_sn, None, fn, dy)
        G = self.xp.zeros_like(W_sn)  # dL/dW_sn, from the wrapped layer
        out = self._swapped(W_sn, G, fn, dy)
        lam = (G * W_sn).sum()
        G -= lam * self._from_matrix(u[:, None] * v[None, :], G.shape)
        G /= sigma
        self.layer.grads["W"] += G
        return out

    def multiply_adds(self, in_shape) -> int:
        """The wrapped layer's (the power iteration runs once a step, not per sample)."""
        return self.layer.multiply_adds(in_shape)

    def __repr__(self):
        n = f", n_power_iterations={self.n_power_iterations}" if self.n_power_iterations != 1 else ""
        return f"SpectralNorm({self.layer!r}{n})"


__all__ = ["SpectralNorm"]

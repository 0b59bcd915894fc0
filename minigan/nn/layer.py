"""The layer contract that every building block of minigan follows.

``forward(x)`` returns the output and keeps what ``backward`` needs.
``backward(dy)`` returns ``dL/dx`` and *adds* the parameter gradients into
``grads``: gradients accumulate (a discriminator can see a real batch and a
fake batch before one optimizer step) until :meth:`Layer.zero_grad`.  No
optimizer step ever happens inside ``backward``.

``backward_weights(dy)`` adds the same parameter gradients but returns
nothing: for a network's first layer, whose input is data, dL/dx is work
thrown away (a discriminator step never needs it).  Layers whose dL/dx costs
a GEMM (Dense, the convolutions) override it; the default runs ``backward``.

``params`` and ``grads`` are dicts with the same keys.  Buffers that are not
trained (BatchNorm's running statistics) live in ``buffers``.  A layer with
``trainable = False`` still returns ``dL/dx`` but skips its weight
gradients, which is what the generator step wants from the discriminator.
"""
from __future__ import annotations

import numpy as np

from .. import backend


class ShapeError(ValueError):
    """An input or upstream gradient whose shape does not fit the layer."""


class Layer:
    """Base class: parameters, gradients, buffers, modes and checks."""

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self.training = True
        self._trainable = True
        self._cache = None  # set by forward, read by backward

    # -- the contract -------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def backward_weights(self, dy):
        """Add the parameter gradients as :meth:`backward` does; dL/dx is not wanted (returns None)."""
        self.backward(dy)

    def has_trainable_params(self) -> bool:
        """Whether ``backward`` adds into any gradient here (a frozen layer adds none)."""
        return any(m.params and m.trainable for m in self.modules())

    def __call__(self, x):
        return self.forward(x)

    # -- children (containers override) ------------------------------------
    def children(self):
        return ()

    def modules(self):
        """This layer and every layer under it, depth first."""
        yield self
        for child in self.children():
            yield from child.modules()

    def named_parameters(self, prefix: str = ""):
        """Yield ``(name, layer, key)`` for every parameter, e.g. ``("2.W", dense, "W")``."""
        for key in self.params:
            yield prefix + key, self, key
        for i, child in enumerate(self.children()):
            yield from child.named_parameters(f"{prefix}{i}.")

    def named_buffers(self, prefix: str = ""):
        for key in self.buffers:
            yield prefix + key, self, key
        for i, child in enumerate(self.children()):
            yield from child.named_buffers(f"{prefix}{i}.")

    # -- modes ---------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool):
        for m in self.modules():
            m._trainable = bool(value)

    def train(self, mode: bool = True):
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for m in self.modules():
            for g in m.grads.values():
                g[...] = 0
        return self

    # -- arrays --------------------------------------------------------------
    def _map_arrays(self, fn):
        for m in self.modules():
            for d in (m.params, m.grads, m.buffers):
                for k in d:
                    d[k] = fn(d[k])
            m._cache = None
        return self

    def astype(self, dtype):
        """Cast parameters, gradients and buffers (float64 for gradient checks)."""
        return self._map_arrays(lambda a: a.astype(dtype, copy=False))

    def to(self, device: str):
        """Move every array to ``"cpu"`` or ``"gpu"``."""
        return self._map_arrays(lambda a: backend.to_device(a, device))

    @property
    def dtype(self):
        for _, layer, key in self.named_parameters():
            return layer.params[key].dtype
        return None

    def state_dict(self) -> dict:
        """Parameters and buffers as NumPy arrays keyed by dotted name."""
        out = {}
        for name, layer, key in self.named_parameters():
            out["param." + name] = backend.to_numpy(layer.params[key]).copy()
        for name, layer, key in self.named_buffers():
            out["buffer." + name] = backend.to_numpy(layer.buffers[key]).copy()
        return out

    def load_state_dict(self, state: dict):
        """Copy arrays from :meth:`state_dict` output into this model, checking names and shapes."""
        expected = set()
        for kind, items in (("param.", self.named_parameters()), ("buffer.", self.named_buffers())):
            for name, layer, key in items:
                full = kind + name
                expected.add(full)
                store = layer.params if kind == "param." else layer.buffers
                if full not in state:
                    raise KeyError(f"state has no entry {full!r} for {layer!r}")
                src = np.asarray(state[full])
                if src.shape != store[key].shape:
                    raise ShapeError(
                        f"{full}: checkpoint shape {src.shape} does not match {layer!r} "
                        f"shape {store[key].shape}"
                    )
                xp = backend.get_xp(store[key])
                store[key][...] = xp.asarray(src, dtype=store[key].dtype)
        extra = sorted(k for k in state if k.startswith(("param.", "buffer.")) and k not in expected)
        if extra:
            raise KeyError(f"state has entries this model lacks: {extra[:5]}")
        return self

    def num_params(self) -> int:
        return int(sum(layer.params[k].size for _, layer, k in self.named_parameters()))

    def multiply_adds(self, in_shape) -> int:
        """Multiply-adds per sample in this layer's own GEMMs, for one sample of ``in_shape``
        (no batch).  0 here: layers without a GEMM, and containers (see :meth:`summary`)."""
        return 0

    def summary(self, input_shape, name=None, batch=2) -> str:
        """A table of every layer: output shape, trainable parameters, multiply-adds per
        sample, then the totals.  ``input_shape`` excludes the batch: ``(100,)``,
        ``(1, 28, 28)``.  Returns the table as a string (print it); the model is left
        untouched.  See :func:`minigan.nn.summary.summary`."""
        from .summary import summary  # noqa: PLC0415 -- summary imports Sequential, a Layer

        return summary(self, input_shape, name=name, batch=batch)

    # -- helpers for subclasses ----------------------------------------------
    def _add_param(self, name, value):
        self.params[name] = value
        self.grads[name] = backend.get_xp(value).zeros_like(value)

    def _accumulate(self, name, g):
        self.grads[name] += g

    def _check_float(self, x):
        if getattr(getattr(x, "dtype", None), "kind", None) != "f":
            raise TypeError(f"{self!r}: expected a floating-point array, got {type(x).__name__} "
                            f"of dtype {getattr(x, 'dtype', None)}")
        p = self.dtype
        if p is not None and x.dtype != p:
            raise TypeError(f"{self!r}: input dtype {x.dtype} differs from the parameters' {p}; "
                            f"cast the input, or the model with .astype({x.dtype})")

    def _bad_input(self, x, what, why=""):
        why = f" ({why})" if why else ""
        return ShapeError(f"{self!r}: expected input of shape {what}, got {tuple(x.shape)}{why}")

    def _check_rank(self, x, ranks, what):
        if x.ndim not in ranks:
            raise self._bad_input(x, what)

    def _need_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return self._cache

    def _check_dy(self, dy, shape):
        if tuple(dy.shape) != tuple(shape):
            raise ShapeError(f"{self!r}: dy has shape {tuple(dy.shape)}, expected the output "
                             f"shape {tuple(shape)}")

    def __repr__(self):
        return f"{type(self).__name__}()"

"""Optimisers.  They read ``grads`` and update ``params`` in place; ``backward`` never does.

Adam (Kingma & Ba 2015), with step count t starting at 1::

    m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

SGD with momentum (PyTorch's form): ``buf = momentum * buf + g; p -= lr * buf``.

Both keep their state in NumPy/CuPy arrays keyed by parameter name, and
``state_dict`` / ``load_state_dict`` save and restore it exactly.
"""
from __future__ import annotations

import numpy as np

from . import backend, kernels


class Optimizer:
    def __init__(self, model, lr):
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")
        self.model = model
        self.lr = float(lr)
        self.t = 0
        self.state: dict = {}  # name -> dict of arrays
        # The parameters are the model's when the optimizer is made (as in PyTorch); the
        # arrays are looked up on each use, so astype / to / load_state_dict are seen.
        self._named = tuple(model.named_parameters())

    def _items(self):
        for name, layer, key in self._named:
            yield name, layer.params[key], layer.grads[key]

    def zero_grad(self):
        self.model.zero_grad()

    def _slot(self, name, p, slot):
        st = self.state.setdefault(name, {})
        if slot not in st:
            st[slot] = backend.get_xp(p).zeros_like(p)
        return st[slot]

    def state_dict(self) -> dict:
        out = {"t": np.array(self.t), "lr": np.array(self.lr)}
        for name, slots in self.state.items():
            for slot, arr in slots.items():
                out[f"{slot}.{name}"] = backend.to_numpy(arr).copy()
        return out

    def load_state_dict(self, state: dict):
        self.t = int(state["t"])
        self.lr = float(state["lr"])
        names = {name: p for name, p, _ in self._items()}
        self.state = {}
        for k, v in state.items():
            if k in ("t", "lr"):
                continue
            slot, name = k.split(".", 1)
            if name not in names:
                raise KeyError(f"optimizer state names parameter {name!r}, which the model lacks")
            p = names[name]
            if tuple(v.shape) != tuple(p.shape):
                raise ValueError(f"optimizer state {k!r} has shape {v.shape}, parameter has {p.shape}")
            self.state.setdefault(name, {})[slot] = backend.get_xp(p).asarray(v, dtype=p.dtype)
        return self


class Adam(Optimizer):
    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(model, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)
        self._memo: dict = {}  # the kernel's views of the arrays, kept between steps

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        ps, gs, ms, vs = [], [], [], []
        for name, p, g in self._items():
            ps.append(p)
            gs.append(g)
            ms.append(self._slot(name, p, "m"))
            vs.append(self._slot(name, p, "v"))
        # the update of the module docstring, one fused pass over all parameters
        kernels.adam_update(ps, gs, ms, vs, self.lr, b1, b2, self.eps, self.t, self._memo)


class SGD(Optimizer):
    def __init__(self, model, lr=1e-2, momentum=0.0):
        super().__init__(model, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must lie in [0, 1), got {momentum}")
        self.momentum = float(momentum)

    def step(self):
        self.t += 1
        for name, p, g in self._items():
            if self.momentum:
                buf = self._slot(name, p, "buf")
                buf *= self.momentum
                buf += g
                p -= self.lr * buf
            else:
                p -= self.lr * g

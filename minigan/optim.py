"""Optimisers.  They read ``grads`` and update ``params`` in place; ``backward`` never does.

Adam (Kingma & Ba 2015), with step count t starting at 1::

    m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

SGD with momentum (PyTorch's form): ``buf = momentum * buf + g; p -= lr * buf``.

An optimizer works on its model's flat parameter buffer
(:meth:`minigan.nn.Layer.flat`: one buffer per dtype, every parameter a view
of it), and keeps its own state (Adam's m and v, SGD's momentum buffer)
laid out the same way, so a step is one pass over a few long arrays: on the
CPU one Numba launch for Adam, on a GPU a few.  ``state_dict`` names each
parameter's part of that state, and ``load_state_dict`` restores it exactly.
"""
from __future__ import annotations

import math

import numpy as np

from .runtime import devices
from .runtime.arrays import get_xp
from .runtime.registry import reference


@reference("adam_update")
def adam_update(p, g, m, v, lr, b1, b2, eps, t):
    """One Adam step at step count ``t``, in place on the flat buffers ``p`` (parameters),
    ``m`` and ``v`` (moments) for the gradients ``g``."""
    xp = get_xp(p)
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    denom = xp.sqrt(v / c2)
    denom += eps
    p -= (lr / c1) * m / denom


class Optimizer:
    def __init__(self, model, lr):
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"{type(self).__name__}: lr must be a positive finite number, got {lr}")
        self.model = model
        self.lr = float(lr)
        self.t = 0
        # The parameters are the model's when the optimizer is made (as in PyTorch), packed
        # into its flat buffers; a later cast or move packs them again and the state follows.
        self._flat = model.flat()
        if not self._flat.groups:
            raise ValueError(f"{type(self).__name__}: the model has no parameters to optimise")
        self.state: dict = {}  # slot ("m", "v", "buf") -> one flat array per group

    def zero_grad(self):
        self.model.zero_grad()

    def _groups(self):
        """The model's flat groups, with this optimizer's state re-laid out if it was repacked."""
        flat = self.model.flat()
        if flat is not self._flat:
            named = {(slot, name): arr for slot, name, arr in self._named_state()}
            old = self.state
            self._flat, self.state = flat, {}
            for slot in old:
                for i, group in enumerate(flat.groups):
                    for s in group.slots:
                        group.view(self._slot(slot)[i], s)[...] = \
                            s[1].device.asarray(devices.to_numpy(named[(slot, s[0])]), dtype=group.dtype)
        return self._flat.groups

    def _slot(self, slot):
        """The state ``slot`` as one zero-started flat array per group."""
        bufs = self.state.get(slot)
        if bufs is None:
            bufs = self.state[slot] = [get_xp(g.params).zeros_like(g.params) for g in self._flat.groups]
        return bufs

    def _named_state(self):
        """``(slot, name, view)`` for every parameter's part of every state slot."""
        for slot, bufs in self.state.items():
            for group, buf in zip(self._flat.groups, bufs):
                for s in group.slots:
                    yield slot, s[0], group.view(buf, s)

    def state_dict(self, host: bool = True) -> dict:
        """The step count, learning rate and every state slot by parameter name, as NumPy arrays
        (``host=False``: the slots where they live)."""
        out = {"t": np.array(self.t), "lr": np.array(self.lr)}
        self._groups()
        for slot, name, view in self._named_state():
            out[f"{slot}.{name}"] = view
        return dict(zip(out, devices.to_numpy_many(out.values()))) if host else out

    def load_state_dict(self, state: dict):
        """Restore :meth:`state_dict` output; names and shapes are checked before anything changes."""
        groups = self._groups()
        where = {s[0]: (i, s) for i, g in enumerate(groups) for s in g.slots}
        plan = []
        for k, v in state.items():
            if k in ("t", "lr"):
                continue
            slot, _, name = k.partition(".")
            if name not in where:
                raise KeyError(f"optimizer state {k!r} names parameter {name!r}, which the model lacks")
            i, s = where[name]
            v = np.asarray(devices.to_numpy(v))
            if tuple(v.shape) != s[4]:
                raise ValueError(f"optimizer state {k!r} has shape {tuple(v.shape)}, parameter has {s[4]}")
            if v.dtype.kind not in "biuf":
                raise TypeError(f"optimizer state {k!r}: expected numbers, got dtype {v.dtype}")
            plan.append((slot, i, s, v.astype(groups[i].dtype, copy=False)))
        for k in ("t", "lr"):
            if k not in state:
                raise KeyError(f"optimizer state has no {k!r}")
        t, lr = int(state["t"]), float(state["lr"])
        if t < 0 or not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"optimizer state: t={t} and lr={lr} must be >= 0 and a finite number >= 0")
        # everything is checked: from here on nothing fails half-way
        self.t, self.lr = t, lr
        self.state = {}
        for slot, i, s, v in plan:
            groups[i].view(self._slot(slot)[i], s)[...] = s[1].device.asarray(v)
        return self


class Adam(Optimizer):
    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(model, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas}")
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"Adam: eps must be a positive finite number, got {eps}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        update = self.model.device.kernel(adam_update)
        groups = self._groups()
        ms, vs = self._slot("m"), self._slot("v")
        for group, m, v in zip(groups, ms, vs):
            update(group.params, group.grads, m, v, self.lr, b1, b2, self.eps, self.t)


class SGD(Optimizer):
    def __init__(self, model, lr=1e-2, momentum=0.0):
        super().__init__(model, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must lie in [0, 1), got {momentum}")
        self.momentum = float(momentum)

    def step(self):
        self.t += 1
        groups = self._groups()
        for i, group in enumerate(groups):
            if self.momentum:
                buf = self._slot("buf")[i]
                buf *= self.momentum
                buf += group.grads
                group.params -= self.lr * buf
            else:
                group.params -= self.lr * group.grads

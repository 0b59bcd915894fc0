"""A chain of layers: forward left to right, backward right to left."""
from __future__ import annotations

from typing import NamedTuple

from .layer import Layer


class Step(NamedTuple):
    """One step of a :class:`Sequential`'s forward: ``layer``, with the activation after it
    and the LabelJoin before it that it absorbs (None where it absorbs none)."""

    layer: Layer
    activation: Layer = None
    join: Layer = None


class Sequential(Layer):
    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: item {i} is {type(layer).__name__}, not a Layer")
        self.layers = list(layers)

    def children(self):
        return self.layers

    def steps(self):
        """The chain as :class:`Step` s ``(layer, activation, join)``, in order.

        ``activation`` is the (leaky) ReLU after ``layer`` when ``layer`` absorbs it
        (:meth:`Layer.absorbs`, a pass over the activations saved each way); ``join`` the
        LabelJoin before ``layer`` when ``layer`` absorbs that (:meth:`Layer.absorbs_join`:
        the labels' part of its product a table lookup).  Either is None otherwise."""
        out, i, n = [], 0, len(self.layers)
        while i < n:
            join = None
            if i + 1 < n and self.layers[i + 1].absorbs_join(self.layers[i]):
                join, i = self.layers[i], i + 1
            layer, after = self.layers[i], self.layers[i + 1] if i + 1 < n else None
            fused = after is not None and layer.absorbs(after)
            out.append(Step(layer, after if fused else None, join))
            i += 2 if fused else 1
        return out

    def forward(self, x):
        self._cache = self.steps()  # backward walks the steps this forward ran
        for layer, act, join in self._cache:
            kw = {k: v for k, v in (("activation", act), ("join", join)) if v is not None}
            x = layer.forward(x, **kw)
        return x

    def backward(self, dy):
        for layer, _, _ in reversed(self._need_cache()):
            dy = layer.backward(dy)
        return dy

    def backward_weights(self, dy):
        """The parameter gradients of :meth:`backward` without dL/dx of the chain's input.

        Backward stops at the first layer that has trainable parameters, which
        computes its weight gradients only; the parameter-free layers before it
        (a LabelJoin, say) are not visited at all.
        """
        layers = [step.layer for step in self._need_cache()]
        first = next((i for i, layer in enumerate(layers) if layer.has_trainable_params()), None)
        if first is None:
            return
        for layer in reversed(layers[first + 1:]):
            dy = layer.backward(dy)
        layers[first].backward_weights(dy)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"

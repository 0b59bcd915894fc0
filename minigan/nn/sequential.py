"""A chain of layers: forward left to right, backward right to left."""
from __future__ import annotations

from .layer import Layer


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

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def backward_weights(self, dy):
        """The parameter gradients of :meth:`backward` without dL/dx of the chain's input.

        Backward stops at the first layer that has trainable parameters, which
        computes its weight gradients only; the parameter-free layers before it
        (a LabelJoin, say) are not visited at all.
        """
        first = next((i for i, layer in enumerate(self.layers) if layer.has_trainable_params()), None)
        if first is None:
            return
        for layer in reversed(self.layers[first + 1:]):
            dy = layer.backward(dy)
        self.layers[first].backward_weights(dy)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"

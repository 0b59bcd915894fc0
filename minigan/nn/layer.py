"""The layer contract that every building block of minigan follows.

``forward(x)`` returns the output and keeps what ``backward`` needs.
``backward(dy)`` returns ``dL/dx`` and *adds* the parameter gradients into
``grads``: gradients accumulate (a discriminator can see a real batch and a
fake batch before one optimizer step) until :meth:`Layer.zero_grad`.  No
optimizer step ever happens inside ``backward``.

A layer may apply the (leaky) ReLU that follows it in a Sequential in its own
last pass (:meth:`Layer.absorbs`); the Sequential then skips the ReLU's layer.

``backward_weights(dy)`` adds the same parameter gradients but returns
nothing: for a network's first layer, whose input is data, dL/dx is work
thrown away (a discriminator step never needs it).  Layers whose dL/dx costs
a GEMM (Dense, the convolutions) override it; the default runs ``backward``.

``params`` and ``grads`` are dicts with the same keys.  Buffers that are not
trained (BatchNorm's running statistics) live in ``buffers``.  A layer with
``trainable = False`` still returns ``dL/dx`` but skips its weight
gradients, which is what the generator step wants from the discriminator.

Every layer lives on a device (:class:`minigan.runtime.devices.Device`, the CPU
until ``to("gpu")``): its arrays are that device's, ``self.xp`` is the array
module its math is written against, and ``self.device.kernel(fn)`` the code
that runs the reference function ``fn`` there.  An input from another
device is refused with a clear error.

Once an optimizer is made for a model, the model's parameters and gradients
live in one flat buffer per dtype (:class:`FlatParameters`); each layer's
``params`` and ``grads`` entries are views into them, so an optimizer step is
one pass over one array.
"""
from __future__ import annotations

import numpy as np

from ..runtime import devices
from .summary import summary


class ShapeError(ValueError):
    """An input or upstream gradient whose shape does not fit the layer."""


class DeviceError(TypeError):
    """An array on another device than the layer it is given to."""


class Layer:
    """Base class: parameters, gradients, buffers, device, modes and checks."""

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self.training = True
        self._trainable = True
        self._cache = None  # set by forward, read by backward
        self._flat = None  # FlatParameters, once an optimizer asked for them
        self.device = devices.device("cpu")

    @property
    def xp(self):
        return self.device.xp

    # -- the contract -------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def backward_weights(self, dy):
        """Add the parameter gradients as :meth:`backward` does; dL/dx is not wanted (returns None)."""
        self.backward(dy)

    def absorbs(self, activation) -> bool:
        """Whether ``forward(x, activation=activation)`` applies ``activation``, the layer after
        this one in a :class:`~minigan.nn.Sequential`, in this layer's own last pass.

        Then the output is the activation's and ``backward`` takes the gradient of it, and
        the Sequential does not run the activation's layer: a pass over the activations
        saved each way.  Dense, the convolutions and BatchNorm absorb a (leaky) ReLU with a
        slope >= 0 (:func:`minigan.nn.activations.relu_slope`) where their device has a
        twin of the fused kernel (the CPU's table); no layer absorbs anything by default.
        """
        return False

    def absorbs_join(self, before) -> bool:
        """Whether ``forward(x, join=before)`` takes ``before``, the layer before this one in a
        :class:`~minigan.nn.Sequential`, into this layer's own passes.

        ``before`` is a :class:`~minigan.nn.LabelJoin`; ``x`` is then the join's input, the
        labels' part of the output a table lookup, and ``backward`` returns the gradient of
        the join's input (see :mod:`minigan.nn.conditioning`).  Dense and Conv2D absorb a join
        where their device has a twin of the lookup's kernel (the CPU's table); no layer
        absorbs anything by default.
        """
        return False

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
        flat = self._flat if self._flat is not None and self._flat.valid() else None
        if flat is not None:
            for group in flat.groups:
                group.grads.fill(0)
            return self
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
        if self._flat is not None and not self._flat.valid():
            self._flat = FlatParameters(self)  # packed before: packed again, in the new arrays
        return self

    def astype(self, dtype):
        """Cast parameters, gradients and buffers (float64 for gradient checks)."""
        return self._map_arrays(lambda a: a.astype(dtype, copy=False))

    def to(self, device, kernels: str | None = None):
        """Move every array to ``"cpu"`` or ``"gpu"`` (or a :class:`minigan.runtime.devices.Device`);
        ``kernels="reference"`` runs the reference code there instead of the kernel table."""
        dev = devices.device(device, kernels)
        for m in self.modules():
            m.device = dev
            m._moved()
        return self._map_arrays(dev.asarray)

    def _moved(self):
        """Called on each layer when it is put on another device (drop device-bound state)."""

    def __getstate__(self):
        # A copy (deepcopy, pickle) is a new layer: unpacked (the flat buffers and the views
        # into them would be copied apart from each other) and with no forward to go back
        # through (a conv's cache holds tens of MB of columns).
        state = self.__dict__.copy()
        state["_flat"] = None
        state["_cache"] = None
        return state

    @property
    def dtype(self):
        for _, layer, key in self.named_parameters():
            return layer.params[key].dtype
        return None

    def flat(self) -> "FlatParameters":
        """This model's parameters and gradients in one flat buffer per dtype (made on
        first use, and again if an array was replaced since: a cast, a move)."""
        if self._flat is None or not self._flat.valid():
            self._flat = FlatParameters(self)
        return self._flat

    def state_dict(self, host: bool = True) -> dict:
        """Parameters and buffers as NumPy arrays keyed by dotted name (``host=False``: the
        arrays where they live, for a caller that copies many at once)."""
        out = {}
        for name, layer, key in self.named_parameters():
            out["param." + name] = layer.params[key]
        for name, layer, key in self.named_buffers():
            out["buffer." + name] = layer.buffers[key]
        return dict(zip(out, devices.to_numpy_many(out.values()))) if host else out

    def load_state_dict(self, state: dict):
        """Copy arrays from :meth:`state_dict` output into this model, in place.

        Every name, shape and value is checked (and converted to the model's dtype)
        before anything is written, so a bad entry leaves the model as it was.
        """
        plan = []
        for kind, items in (("param.", self.named_parameters()), ("buffer.", self.named_buffers())):
            for name, layer, key in items:
                full = kind + name
                store = layer.params if kind == "param." else layer.buffers
                if full not in state:
                    raise KeyError(f"state has no entry {full!r} for {layer!r}")
                src = np.asarray(devices.to_numpy(state[full]))
                if src.shape != store[key].shape:
                    raise ShapeError(f"{full}: checkpoint shape {src.shape} does not match {layer!r} "
                                     f"shape {store[key].shape}")
                if src.dtype.kind not in "biuf":
                    raise TypeError(f"{full}: expected numbers, got an array of dtype {src.dtype}")
                plan.append((store[key], src.astype(store[key].dtype, copy=False), layer))
        expected = {"param." + n for n, _, _ in self.named_parameters()}
        expected |= {"buffer." + n for n, _, _ in self.named_buffers()}
        extra = sorted(k for k in state if k.startswith(("param.", "buffer.")) and k not in expected)
        if extra:
            raise KeyError(f"state has entries this model lacks: {extra[:5]}")
        for dst, src, layer in plan:
            dst[...] = layer.device.asarray(src)
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
        return summary(self, input_shape, name=name, batch=batch)

    # -- helpers for subclasses ----------------------------------------------
    def _add_param(self, name, value):
        value = self.device.asarray(value)
        self.params[name] = value
        self.grads[name] = self.xp.zeros_like(value)
        self._flat = None

    def _check_float(self, x):
        """A floating-point array of the parameters' dtype, on this layer's device."""
        if not self.device.owns(x):
            raise DeviceError(f"{self!r} lives on the {self.device.name} but was given a "
                              f"{type(x).__module__}.{type(x).__name__}; move the input there "
                              f"(minigan.runtime.devices.to_device) or the model with .to(...)")
        if x.dtype.kind != "f":
            raise TypeError(f"{self!r}: expected a floating-point array, got dtype {x.dtype}")
        p = self.dtype
        if p is not None and x.dtype != p:
            raise TypeError(f"{self!r}: input dtype {x.dtype} differs from the parameters' {p}; "
                            f"cast the input, or the model with .astype({x.dtype})")

    def _bad_input(self, x, what, why=""):
        why = f" ({why})" if why else ""
        return ShapeError(f"{self!r}: expected input of shape {what}, got {tuple(x.shape)}{why}")

    def _need_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return self._cache

    def _check_dy(self, dy, shape, dtype=None):
        """``dy`` on this layer's device, of the output's ``shape`` and of the floating-point
        ``dtype`` of the forward pass (default: the parameters'), so that a gradient never
        comes back silently in another precision."""
        if not self.device.owns(dy):
            raise DeviceError(f"{self!r} lives on the {self.device.name} but dy is a "
                              f"{type(dy).__module__}.{type(dy).__name__}")
        if tuple(dy.shape) != tuple(shape):
            raise ShapeError(f"{self!r}: dy has shape {tuple(dy.shape)}, expected the output "
                             f"shape {tuple(shape)}")
        want = dtype if dtype is not None else self.dtype
        if dy.dtype.kind != "f" or (want is not None and dy.dtype != want):
            raise TypeError(f"{self!r}: dy has dtype {dy.dtype}, expected "
                            f"{want if want is not None else 'a floating-point dtype'} (the output's)")

    def __repr__(self):
        return f"{type(self).__name__}()"


# Each parameter starts at a multiple of this many elements of its buffer
# (256 bytes in float32): whole cache lines, and the alignment GPU libraries want.
ALIGN = 64


class FlatGroup:
    """The parameters of one dtype: ``params`` and ``grads`` flat buffers, and where each
    parameter lies in them: ``slots[i] = (name, layer, key, offset, shape)``."""

    def __init__(self, dtype, params, grads, slots):
        self.dtype, self.params, self.grads, self.slots = dtype, params, grads, slots

    def view(self, buf, slot):
        """The part of a buffer laid out like ``params`` that belongs to ``slot``."""
        _, _, _, off, shape = slot
        size = int(np.prod(shape, dtype=np.int64))
        return buf[off:off + size].reshape(shape)


class FlatParameters:
    """A model's parameters and gradients in one flat buffer per dtype.

    Packing copies every parameter and gradient into the buffers and makes
    each layer's entries views of them (in :meth:`Layer.named_parameters`
    order, each at a multiple of :data:`ALIGN` elements; the gaps stay zero).
    """

    def __init__(self, model):
        by_dtype = {}
        for name, layer, key in model.named_parameters():
            by_dtype.setdefault(np.dtype(layer.params[key].dtype), []).append((name, layer, key))
        self.groups = []
        self._views = []  # (layer, key, param view, grad view): what valid() compares
        for dtype, items in by_dtype.items():
            slots, off = [], 0
            for name, layer, key in items:
                shape = tuple(layer.params[key].shape)
                slots.append((name, layer, key, off, shape))
                off += -(-int(np.prod(shape, dtype=np.int64)) // ALIGN) * ALIGN
            xp = items[0][1].xp
            group = FlatGroup(dtype, xp.zeros(off, dtype=dtype), xp.zeros(off, dtype=dtype), slots)
            for slot in slots:
                _, layer, key, _, _ = slot
                p, g = group.view(group.params, slot), group.view(group.grads, slot)
                p[...] = layer.params[key]
                g[...] = layer.grads[key]
                layer.params[key], layer.grads[key] = p, g
                self._views.append((layer, key, p, g))
            self.groups.append(group)

    def valid(self) -> bool:
        """Whether every layer still holds the views made here (no array was replaced)."""
        return all(layer.params[key] is p and layer.grads[key] is g for layer, key, p, g in self._views)


__all__ = ["Layer", "ShapeError", "DeviceError", "FlatParameters", "FlatGroup", "ALIGN"]

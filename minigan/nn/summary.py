"""A table of a model's layers: output shape, trainable parameters and multiply-adds of each.

Nested :class:`Sequential` containers are flattened; each row is named by
its dotted path in the model (``3`` or ``1.0``, prefixed with ``name.`` when a
name is given, e.g. ``G.3``).  A layer that wraps another (``summary_one_row``,
e.g. :class:`SpectralNorm`) is one row, its child's parameters and
multiply-adds included.

Multiply-adds are counted per sample in the GEMMs that do a layer's work
(:meth:`Layer.multiply_adds`): ``in*out`` for Dense,
``Ho*Wo * (C*kh*kw) * O`` for Conv2D, and ``H*W * (in*kh*kw) * out`` for
Conv2DTranspose on an ``H x W`` input (the adjoint of the conv that maps its
``out`` channels back to its ``in`` channels at ``H x W``, the same count).
Bias adds, BatchNorm, activations, dropout and reshapes count 0: their cost
is a few passes over memory, not arithmetic that grows with the weights.

The output shapes are traced through a float64 copy of the model in eval
mode on a batch of zeros, so the model itself is left as it was: parameters,
gradients, running statistics, training mode, the labels of its
:class:`LabelJoin` layers and the global random generator.
"""
from __future__ import annotations

import copy
import numbers
from typing import NamedTuple

import numpy as np

from ..runtime import devices

# Written against the layer contract alone (children(), modules(), forward, and the
# ``labels`` a label-joining layer takes), so that the Layer class can offer it as a
# method without this module importing any layer.


def _leaves(layer, path):
    """``(dotted path, layer)`` for every layer that holds no others, in forward order."""
    children = [] if getattr(layer, "summary_one_row", False) else list(layer.children())
    if children:
        for i, child in enumerate(children):
            yield from _leaves(child, path + (str(i),))
    else:
        yield path, layer


def _check_shape(input_shape):
    hint = "a tuple of positive ints without the batch dimension, e.g. (100,) or (1, 28, 28)"
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"summary: input_shape must be {hint}; got {input_shape!r}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape):
        raise TypeError(f"summary: input_shape must be {hint}; got {input_shape!r}")
    if min(shape) < 1:
        raise ValueError(f"summary: input_shape must be {hint}; got {input_shape!r}")
    return tuple(int(s) for s in shape)


def _shape_text(shape, batch):
    """``(N, 128, 7, 7)``: the batch written as N (or N/m, N*m where a layer regroups it)."""
    n = shape[0]
    if n == batch:
        lead = "N"
    elif n and batch % n == 0:
        lead = f"N/{batch // n}"
    elif n % batch == 0:
        lead = f"N*{n // batch}"
    else:
        lead = f"{n}"
    return "(" + ", ".join([lead] + [str(s) for s in shape[1:]]) + ")"


def _trainable_params(layer):
    return sum(int(m.params[k].size) for _, m, k in layer.named_parameters() if m.trainable)


def _frozen_params(layer):
    return sum(int(m.params[k].size) for _, m, k in layer.named_parameters() if not m.trainable)


def _number(v):
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,.1f}"


class SummaryRow(NamedTuple):
    """One row of :func:`summary`: ``output_shape`` is the traced shape, batch first."""

    name: str
    layer: str
    output_shape: tuple
    params: int  # trainable parameters
    frozen: int  # parameters of layers with trainable = False
    multiply_adds: float  # per sample of the model's input (an int unless a layer regroups the batch)


def summary_rows(model, input_shape, name: str | None = None, batch: int = 2) -> list:
    """The rows of :func:`summary` as :class:`SummaryRow` tuples."""
    shape = _check_shape(input_shape)
    if not isinstance(batch, numbers.Integral) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"summary: batch must be a positive int, got {batch!r}")
    work = copy.deepcopy(model).to("cpu").astype(np.float64).eval()
    for m in work.modules():
        if hasattr(m, "labels"):
            m.labels = np.zeros(batch, dtype=np.int64)  # a LabelJoin needs labels; any class will do
    prefix = (name,) if name else ()
    rows = []
    saved = copy.deepcopy(devices.rng_state())
    try:
        x = np.zeros((batch,) + shape)
        for path, layer in _leaves(work, prefix):
            label = ".".join(path) or "-"
            in_shape = tuple(x.shape)
            try:
                x = layer.forward(x)
            except Exception as e:  # noqa: BLE001 -- re-raised with the row it happened on
                msg = (f"summary: {label} {layer!r} cannot take input {_shape_text(in_shape, batch)} "
                       f"(input_shape {shape} is per sample, without the batch): {e}")
                try:
                    err = type(e)(msg)
                except Exception:  # noqa: BLE001 -- an exception type with other arguments
                    err = ValueError(msg)
                raise err from e
            # per sample of the model's input: a layer after Pack(m) sees batch/m rows
            macs = int(layer.multiply_adds(in_shape[1:])) * in_shape[0]
            macs = macs // batch if macs % batch == 0 else macs / batch
            rows.append(SummaryRow(label, repr(layer).replace("\n", " "), tuple(x.shape),
                                   _trainable_params(layer), _frozen_params(layer), macs))
    finally:
        devices.set_rng_state(saved)
    return rows


def summary(model, input_shape, name: str | None = None, batch: int = 2) -> str:
    """The table of ``model`` for samples of ``input_shape`` (without the batch), as a string.

    ``name`` prefixes the row names (``"G"`` gives ``G.0``, ``G.1``, ...).
    ``batch`` is the number of samples traced (2); a layer that regroups the
    batch (PacGAN's ``Pack(m)``) needs a multiple of its group.  A layer
    that rejects the shape it receives raises its own error, with the row
    it sits on.
    """
    rows = summary_rows(model, input_shape, name=name, batch=batch)
    shape = _check_shape(input_shape)
    buffers = sum(int(m.buffers[k].size) for m in model.modules() for k in m.buffers)
    head = ("layer", "type", "output shape", "trainable params", "multiply-adds")
    body = [(r.name, r.layer, _shape_text(r.output_shape, batch),
             _number(r.params) + (f" (+{_number(r.frozen)} frozen)" if r.frozen else ""),
             _number(r.multiply_adds)) for r in rows]
    total = ("total", "", "", _number(sum(r.params for r in rows)),
             _number(sum(r.multiply_adds for r in rows)))
    widths = [max(len(line[i]) for line in [head, total] + body) for i in range(5)]

    def fmt(cols):
        left = "  ".join(c.ljust(w) for c, w in zip(cols[:3], widths[:3]))
        right = "  ".join(c.rjust(w) for c, w in zip(cols[3:], widths[3:]))
        return f"{left}  {right}".rstrip()

    rule = "-" * len(fmt(head))
    takers = sorted({type(m).__name__ for m in model.modules() if hasattr(m, "labels")})
    labels = f", and labels (N,) for its {' and '.join(takers)}" if takers else ""
    lines = [f"{name or type(model).__name__}: input {_shape_text((batch,) + shape, batch)}{labels}",
             "multiply-adds: per sample, in the GEMMs of Dense and convolution layers "
             "(bias adds, BatchNorm and elementwise layers count 0)",
             rule, fmt(head), rule, *(fmt(b) for b in body), rule, fmt(total)]
    frozen = sum(r.frozen for r in rows)
    if frozen:
        lines.append(f"{_number(frozen)} frozen parameters (trainable = False), not in the total")
    if buffers:
        kinds = ", ".join(sorted({k for m in model.modules() for k in m.buffers}))
        lines.append(f"{_number(buffers)} values in buffers ({kinds}), not trained")
    return "\n".join(lines)


__all__ = ["summary", "summary_rows", "SummaryRow"]

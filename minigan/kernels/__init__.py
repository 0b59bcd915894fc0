"""Accelerated twins of the reference math, one table per device.

The reference code of every hot loop lives with its math: LeakyReLU's in
:mod:`minigan.nn.activations`, BatchNorm's in :mod:`minigan.nn.batchnorm`,
im2col and col2im in :mod:`minigan.nn.conv.reference`, Adam's update in
:mod:`minigan.optim`, and so on.  Each is written against ``xp`` (so it runs
on NumPy and CuPy) and marked with :func:`reference`, which gives it a name.

A table maps such names to faster functions of the same signature that
compute the same values (bit for bit where they only move data, to rounding
where they sum in another order):

* ``numba`` (:mod:`minigan.kernels.cpu`): Numba kernels and per-thread BLAS
  batches for the CPU;
* ``reference``: no twins at all; every kernel is its reference.

A device holds one table (:class:`minigan.backend.Device`), and code asks
it for ``device.kernel(reference_fn)``: the twin if the table has one, else
the reference.  The tests check that every twin has a reference and agrees
with it.
"""
from __future__ import annotations

REFERENCES: dict = {}  # kernel name -> the reference function (filled on import of its module)


def reference(name: str):
    """Mark a function as the reference code of kernel ``name`` (a decorator)."""
    def mark(fn):
        fn.kernel_name = name
        REFERENCES[name] = fn
        return fn
    return mark


def load(table: str) -> dict:
    """The twins of kernel table ``table`` by name (``{}`` for ``"reference"``)."""
    if table == "reference":
        return {}
    if table == "numba":
        from ..tuning import warn_if_untuned  # noqa: PLC0415
        from . import cpu  # noqa: PLC0415  (compiles lazily, on first call of each kernel)

        warn_if_untuned()
        return cpu.TABLE
    if table == "cuda":
        from . import gpu  # noqa: PLC0415

        return gpu.TABLE
    raise ValueError(f"unknown kernel table {table!r}")

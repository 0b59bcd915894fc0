"""Accelerated twins of the reference math, one table per device.

The reference code of every hot loop lives with its math: LeakyReLU's in
:mod:`minigan.nn.activations`, BatchNorm's in :mod:`minigan.nn.batchnorm`,
im2col and col2im in :mod:`minigan.nn.conv.reference`, Adam's update in
:mod:`minigan.optim`, and so on.  Each is written against ``xp`` (so it runs
on NumPy and CuPy) and marked with :func:`reference`, which gives it a name.

A table maps such names to faster functions of the same signature that
compute the same values (bit for bit where they only move data, to rounding
where they sum in another order):

* ``numba`` (:mod:`minigan.runtime.cpu`): Numba kernels and per-thread BLAS
  batches for the CPU;
* ``cuda`` (:mod:`minigan.runtime.gpu`): numba-cuda kernels for a GPU's
  (CuPy's) arrays;
* ``reference``: no twins at all; every kernel is its reference.

A device holds one table (:class:`minigan.runtime.devices.Device`, which
loads it: :func:`minigan.runtime.devices.load`), and code asks it for
``device.kernel(reference_fn)``: the twin if the table has one, else the
reference.  The tests check that every twin has a reference and agrees with
it.
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

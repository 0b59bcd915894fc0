"""Which array module owns an array, and its values on the host.

The lowest floor of the runtime: the kernel tables ask it for the array
module of their inputs, and it knows no device, no table and no layer.  An
array is NumPy's (a Python number counts as one), CuPy's, or the array of a
device of minigan's own making (the GPU stand-in's), which names its device.
CuPy is optional: it is imported when a GPU is first asked about.
"""
from __future__ import annotations

import sys

import numpy as np

class DeviceUnavailable(RuntimeError):
    """A device was asked for that this machine cannot give (the commands: exit 1, a failure
    at run time; the message is one line that names the cause)."""


_cupy = None
_cupy_checked = False


def cupy_module():
    """The ``cupy`` module if it imports and sees a GPU, else ``None`` (asked once)."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy  # noqa: PLC0415  (optional: only a GPU needs it, and its import takes seconds)

            if cupy.cuda.runtime.getDeviceCount() > 0:
                _cupy = cupy
        except Exception:  # ImportError, or CUDA present but no device
            _cupy = None
    return _cupy


def get_xp(*arrays):
    """The array module (``numpy`` or ``cupy``) that owns the first of ``arrays``."""
    for a in arrays:
        if not isinstance(a, (np.ndarray, np.generic, int, float)):
            dev = getattr(a, "minigan_device", None)  # arrays of a device of minigan's own making
            if dev is not None:
                return dev.xp
            package = type(a).__module__.split(".")[0]
            if package == "cupy":
                return sys.modules[package]
            raise TypeError(f"expected an array, got {type(a).__name__}")
    return np


def to_numpy(a):
    """A NumPy array holding the values of ``a`` (from any device)."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)
    if get is not None:
        return get()
    return np.asarray(a)

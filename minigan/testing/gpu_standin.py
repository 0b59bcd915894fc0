"""A strict stand-in for a GPU: the GPU path run and checked on a machine without one.

Its arrays (:class:`StandinArray`) keep their values in host memory but
behave as CuPy's do where a CPU-only test would otherwise miss a GPU bug:

* **no implicit conversion to a host array**: ``np.asarray(a)``,
  ``np.array(a)`` and NumPy code that would take ``a`` as a host array raise
  ``TypeError``, as CuPy does;
* **no mixing with host arrays**: an operator or an ``xp`` function given a
  NumPy array raises ``TypeError`` (Python and NumPy scalars are fine, as in
  CuPy);
* **every device-to-host read is counted as a synchronisation**:
  ``float(a)``, ``int(a)``, ``bool(a)``, ``a.item()``, ``a.tolist()``,
  ``a.get()`` (also a transfer), boolean-mask indexing (its result's size
  depends on the values) and ``xp.cuda.Device().synchronize()``; host-to-device
  copies (``xp.asarray(numpy_array)``) are counted as transfers.

Its array module (:data:`xp`) offers NumPy's functions under CuPy's names,
each refusing host arrays and returning device arrays.  The device it makes
(:func:`install`) runs the GPU kernel table (:mod:`minigan.runtime.gpu`):
with no GPU, numba-cuda's CUDA simulator runs those kernels, each taking an
array's buffer through :meth:`StandinArray.kernel_arg`.

:func:`install` (which the tests call, and the ``minigan`` command when
``MINIGAN_GPU=standin`` is in the environment) makes
``minigan.runtime.devices.device("gpu")`` this device on a machine where CuPy sees
no GPU; where it does, the real GPU always wins.  Nothing of the engine imports
this module.
"""
from __future__ import annotations

import operator
import os
import sys
from contextlib import contextmanager

import numpy as np

from ..runtime import devices


class Counts:
    """Synchronisations and transfers since the last :meth:`reset` (or :func:`counting`)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.syncs, self.to_device, self.to_host = 0, 0, 0
        self.reasons = []

    def sync(self, why):
        self.syncs += 1
        self.reasons.append(why)

    def __repr__(self):
        return f"Counts(syncs={self.syncs}, to_device={self.to_device}, to_host={self.to_host})"


COUNTS = Counts()

# -- the CuPy API the GPU path calls, as it is called here ---------------------------------
# ("xp" or "ndarray", name, keyword names) for every function of xp and every array method
# called through this stand-in; tests/test_cupy_api.py checks each against the installed CuPy,
# so that this stand-in (which offers all of NumPy) cannot stand in for an API CuPy lacks.
USED: set = set()


def _used(kind, name, kwargs):
    USED.add((kind, name, tuple(sorted(kwargs))))
# -- end --


@contextmanager
def counting():
    """Count the synchronisations and transfers made inside the block: ``with counting() as c``."""
    saved = (COUNTS.syncs, COUNTS.to_device, COUNTS.to_host, list(COUNTS.reasons))
    COUNTS.reset()
    block = Counts()
    try:
        yield block
    finally:
        block.syncs, block.to_device, block.to_host = COUNTS.syncs, COUNTS.to_device, COUNTS.to_host
        block.reasons = list(COUNTS.reasons)
        COUNTS.syncs, COUNTS.to_device, COUNTS.to_host, COUNTS.reasons = \
            saved[0] + block.syncs, saved[1] + block.to_device, saved[2] + block.to_host, \
            saved[3] + block.reasons


def _mixing(value):
    return TypeError(f"a host array ({type(value).__name__} of shape {np.shape(value)}) cannot be mixed "
                     f"with GPU arrays: move it with minigan.runtime.devices.to_device first")


def _unwrap(value):
    """The NumPy value behind a device value; a host array is refused."""
    if isinstance(value, StandinArray):
        return value._a
    if isinstance(value, np.ndarray):
        raise _mixing(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value):
    if isinstance(value, np.ndarray):
        return StandinArray(value)
    if isinstance(value, np.generic):  # a reduction's result stays on the device, as in CuPy
        return StandinArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _binary(op):
    def method(self, other):
        if isinstance(other, np.ndarray):
            raise _mixing(other)
        return _wrap(op(self._a, _unwrap(other)))
    return method


def _reflected(op):
    def method(self, other):
        if isinstance(other, np.ndarray):
            raise _mixing(other)
        return _wrap(op(_unwrap(other), self._a))
    return method


def _inplace(op):
    def method(self, other):
        if isinstance(other, np.ndarray):
            raise _mixing(other)
        op(self._a, _unwrap(other))
        return self
    return method


class StandinArray:
    """A device array of the stand-in GPU (see the module docstring)."""

    __slots__ = ("_a",)
    minigan_device = None  # set by install(): minigan.runtime.devices.device_of reads it

    def __init__(self, a: np.ndarray):
        self._a = a

    # -- what is free on a GPU: metadata ------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StandinArray(self._a.T))
    real = property(lambda self: StandinArray(self._a.real))
    imag = property(lambda self: StandinArray(self._a.imag))

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"StandinArray(shape={self.shape}, dtype={self.dtype})"

    # -- reads on the host: each one a synchronisation ------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` "
                        "to construct a NumPy array explicitly.")

    def get(self):
        COUNTS.sync("get")
        COUNTS.to_host += 1
        return self._a.copy()

    def item(self):
        COUNTS.sync("item")
        return self._a.item()

    def tolist(self):
        COUNTS.sync("tolist")
        return self._a.tolist()

    def __float__(self):
        COUNTS.sync("float")
        return float(self._a)

    def __int__(self):
        COUNTS.sync("int")
        return int(self._a)

    def __index__(self):
        COUNTS.sync("index")
        return operator.index(self._a)

    def __bool__(self):
        COUNTS.sync("bool")
        return bool(self._a)

    def __format__(self, spec):
        COUNTS.sync("format")
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __iter__(self):
        return (StandinArray(np.asarray(v)) for v in self._a)

    # -- indexing --------------------------------------------------------------------------
    def __getitem__(self, key):
        key = _unwrap(key)
        if isinstance(key, np.ndarray) and key.dtype == np.bool_:
            COUNTS.sync("boolean mask")  # the result's size is read from the device
        return _wrap(self._a[key])

    def __setitem__(self, key, value):
        key = _unwrap(key)
        if isinstance(key, np.ndarray) and key.dtype == np.bool_:
            COUNTS.sync("boolean mask")
        self._a[key] = _unwrap(value)

    # -- operators -----------------------------------------------------------------------
    __add__, __sub__, __mul__ = _binary(operator.add), _binary(operator.sub), _binary(operator.mul)
    __truediv__, __floordiv__, __mod__ = (_binary(operator.truediv), _binary(operator.floordiv),
                                          _binary(operator.mod))
    __pow__, __matmul__ = _binary(operator.pow), _binary(operator.matmul)
    __and__, __or__, __xor__ = _binary(operator.and_), _binary(operator.or_), _binary(operator.xor)
    __lshift__, __rshift__ = _binary(operator.lshift), _binary(operator.rshift)
    __lt__, __le__, __gt__, __ge__ = (_binary(operator.lt), _binary(operator.le), _binary(operator.gt),
                                      _binary(operator.ge))
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)
    __radd__, __rsub__, __rmul__ = _reflected(operator.add), _reflected(operator.sub), _reflected(operator.mul)
    __rtruediv__, __rfloordiv__ = _reflected(operator.truediv), _reflected(operator.floordiv)
    __rpow__, __rmatmul__, __rmod__ = _reflected(operator.pow), _reflected(operator.matmul), _reflected(operator.mod)
    __rand__, __ror__, __rxor__ = _reflected(operator.and_), _reflected(operator.or_), _reflected(operator.xor)
    __iadd__, __isub__, __imul__ = _inplace(operator.iadd), _inplace(operator.isub), _inplace(operator.imul)
    __itruediv__, __ipow__ = _inplace(operator.itruediv), _inplace(operator.ipow)
    __iand__, __ior__, __ixor__ = _inplace(operator.iand), _inplace(operator.ior), _inplace(operator.ixor)
    __hash__ = None

    def __neg__(self):
        return StandinArray(-self._a)

    def __pos__(self):
        return self

    def __abs__(self):
        return StandinArray(abs(self._a))

    def __invert__(self):
        return StandinArray(~self._a)

    # NumPy functions and ufuncs called on device arrays run on the device (as CuPy's
    # do), and refuse host arrays among their arguments.
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs))
        if "out" in kwargs:
            return kwargs["out"][0] if len(kwargs["out"]) == 1 else kwargs["out"]
        return _wrap(out)

    def __array_function__(self, func, types, args, kwargs):
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # -- methods ---------------------------------------------------------------------------
    def astype(self, dtype, copy=True):
        _used("ndarray", "astype", () if copy is True else ("copy",))
        if not copy and self._a.dtype == dtype:
            return self  # as NumPy and CuPy do: the same array, not a new one
        return StandinArray(self._a.astype(dtype))

    def __getattr__(self, name):
        if name.startswith("__"):  # __array_interface__, __array_struct__, ...: no way to the host
            raise AttributeError(name)
        attr = getattr(self._a, name)  # reshape, transpose, sum, mean, copy, fill, ...
        if not callable(attr):
            return _wrap(attr)

        def call(*args, **kwargs):
            _used("ndarray", name, kwargs)
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        return call

    def kernel_arg(self):
        """The buffer a GPU kernel is given (numba-cuda's simulator works on NumPy arrays)."""
        return self._a

    def __deepcopy__(self, memo):
        return StandinArray(self._a.copy())

    def __reduce__(self):
        raise TypeError("a GPU array cannot be pickled; move it to the host with .get() first")


class _Device:
    def synchronize(self):
        COUNTS.sync("synchronize")


class _Cuda:
    """The bits of ``cupy.cuda`` minigan uses."""

    Device = _Device


class StandinModule:
    """The array module of the stand-in device: NumPy's functions, device arrays in and out."""

    ndarray = StandinArray
    cuda = _Cuda()
    __name__ = "minigan.testing.gpu_standin.xp"

    def asarray(self, a, dtype=None, order=None):
        _used("xp", "asarray", [k for k, v in (("dtype", dtype), ("order", order)) if v is not None])
        if isinstance(a, StandinArray):
            return a if dtype is None or a.dtype == dtype else StandinArray(a._a.astype(dtype))
        COUNTS.to_device += 1  # a host-to-device copy
        return StandinArray(np.array(a, dtype=dtype, order=order or "K", copy=True))

    array = asarray

    def ascontiguousarray(self, a, dtype=None):
        _used("xp", "ascontiguousarray", () if dtype is None else ("dtype",))
        return StandinArray(np.ascontiguousarray(_unwrap(a), dtype=dtype))

    def __getattr__(self, name):
        attr = getattr(np, name)
        if not callable(attr) or isinstance(attr, type):
            return attr  # dtypes, constants (float32, uint64, pi, newaxis, ...)

        def call(*args, **kwargs):
            _used("xp", name, kwargs)
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        call.__name__ = name
        return call


xp = StandinModule()

_device = None


def install():
    """Make ``minigan.runtime.devices.device("gpu")`` the stand-in on this machine (where CuPy sees no
    GPU); returns the device.  The GPU kernel table then runs under numba-cuda's simulator,
    which must be chosen before ``numba.cuda`` is first imported."""
    global _device
    if devices.cupy_module() is not None:
        return devices.device("gpu")
    if "numba.cuda" in sys.modules and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        raise RuntimeError("numba.cuda was imported before the GPU stand-in asked for its simulator; "
                           "set NUMBA_ENABLE_CUDASIM=1 first")
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    # The simulator runs a block's threads as Python threads and its manager polls them
    # until all reach a barrier: with the interpreter's default 5 ms between thread
    # switches, every __syncthreads costs milliseconds (BatchNorm's kernels 5x slower).
    sys.setswitchinterval(min(sys.getswitchinterval(), 2e-5))
    if _device is None:
        _device = devices.Device("gpu", xp, "cuda", array_type=StandinArray)
        StandinArray.minigan_device = _device
    devices.set_gpu(_device)
    return _device


__all__ = ["StandinArray", "xp", "install", "counting", "COUNTS"]

"""Devices: where arrays live and which code runs on them.

A :class:`Device` bundles three things:

* ``xp``: the array module the math is written against (NumPy on the CPU,
  CuPy on a GPU), so one line of layer code runs on both;
* ``kernels``: the table of accelerated twins that run on this device
  (:mod:`minigan.runtime.registry`: Numba on the CPU, numba-cuda on a GPU),
  looked up by the reference function they replace;
* how arrays get on and off it.

A model is put on a device when it is built (the CPU) or moved
(``model.to("gpu")``), and its layers ask that device for their kernels:
which code runs is decided once, by the device, not by the type of each
argument.  CuPy is optional; nothing here imports it until a GPU is asked
for.  ``MINIGAN_KERNELS=reference`` (or ``numpy``) makes the CPU device run
the reference code alone.
"""
from __future__ import annotations

import os

import numpy as np

from .arrays import DeviceUnavailable, cupy_module, get_xp, to_numpy  # noqa: F401  (the devices' face names them too)
from .tuning import warn_if_untuned

DEFAULT_DTYPE = np.float32

# -- the devices ------------------------------------------------------------------


def gpu_available() -> bool:
    """Whether ``device("gpu")`` has a device to give: CuPy seeing a GPU (never numba-cuda's
    own test, which is true under its simulator), or the stand-in (:mod:`minigan.testing.gpu_standin`)."""
    return (cupy_module() is not None or ("gpu", "cuda") in _devices
            or os.environ.get("MINIGAN_GPU") == "standin")


def set_gpu(dev: "Device"):
    """Use ``dev`` as the GPU: the stand-in of :mod:`minigan.testing.gpu_standin` on a machine without one."""
    _devices[("gpu", "cuda")] = dev
    _devices[("gpu", "reference")] = Device("gpu", dev.xp, "reference", dev.array_type)


class Device:
    """One place arrays live, with the array module and kernel table that serve it.

    ``name`` is ``"cpu"`` or ``"gpu"``; ``table`` names the kernel table
    (``"numba"``, ``"cuda"``, or ``"reference"`` for none: every kernel is
    then the reference code it would replace).
    """

    def __init__(self, name: str, xp, table: str, array_type=None):
        self.name, self.xp, self.table = name, xp, table
        self.array_type = array_type if array_type is not None else xp.ndarray
        self._kernels = None

    @property
    def kernels(self) -> dict:
        """The accelerated twins, by name; loaded (and compiled) on first use."""
        if self._kernels is None:
            self._kernels = load(self.table)
        return self._kernels

    def kernel(self, reference):
        """The function that runs ``reference``'s math here: its twin in this device's
        table, or ``reference`` itself (see :func:`minigan.runtime.registry.reference`)."""
        return self.kernels.get(reference.kernel_name, reference)

    def has_twin(self, reference) -> bool:
        """Whether this device's table has a twin of ``reference`` (not the reference itself)."""
        return reference.kernel_name in self.kernels

    @property
    def fast(self) -> bool:
        """Whether this device has a kernel table (not the reference code alone)."""
        return self.table != "reference"

    def owns(self, a) -> bool:
        return isinstance(a, self.array_type)

    def asarray(self, a, dtype=None):
        """``a`` as an array on this device (no copy when it is one already)."""
        if self.owns(a) and (dtype is None or a.dtype == dtype):
            return a
        if not isinstance(a, np.ndarray) and not self.owns(a):
            a = to_numpy(a)
        return self.xp.asarray(a, dtype=dtype)

    def __repr__(self):
        return f"Device({self.name!r}, kernels={self.table!r})"

    # one instance per (device, table): copies of a model share it
    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return device, (self.name, self.table)


def load(table: str) -> dict:
    """The twins of kernel table ``table`` by name (``{}`` for ``"reference"``)."""
    if table == "reference":
        return {}
    if table == "numba":
        from . import cpu  # noqa: PLC0415  (start-up: Numba's import, ~0.3 s; kernels compile on first call)

        warn_if_untuned()
        return cpu.TABLE
    if table == "cuda":
        from . import gpu  # noqa: PLC0415  (start-up: numba-cuda's import, needed on a GPU only)

        return gpu.TABLE
    raise ValueError(f"unknown kernel table {table!r}")


_devices: dict = {}
# Where CuPy sees no GPU, MINIGAN_GPU=standin makes device("gpu") the stand-in of
# minigan.testing.gpu_standin: the function that installs it, set by whoever offers it
# (the minigan command); the runtime itself never imports the testing aids.
standin_installer = None
_TABLES = {"cpu": ("numba", "reference"), "gpu": ("cuda", "reference")}


def _default_table(name: str) -> str:
    if name == "gpu":
        return "cuda"
    choice = os.environ.get("MINIGAN_KERNELS", "numba").lower()
    if choice not in ("numba", "numpy", "reference"):
        raise ValueError(f"MINIGAN_KERNELS={choice!r}: expected 'numba' or 'reference'")
    return "numba" if choice == "numba" else "reference"


def normalize_device(device) -> str:
    if isinstance(device, Device):
        return device.name
    d = str(device).lower()
    if d in ("cpu", "numpy"):
        return "cpu"
    if d in ("gpu", "cuda", "cupy"):
        return "gpu"
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'gpu'")


def device(spec="cpu", kernels: str | None = None) -> Device:
    """The :class:`Device` for ``"cpu"`` or ``"gpu"`` (a Device is returned as it is).

    ``kernels`` picks the table: ``"reference"`` for none, else the device's
    own (on the CPU ``MINIGAN_KERNELS`` decides the default).
    """
    if isinstance(spec, Device) and kernels is None:
        return spec
    name = normalize_device(spec)
    table = kernels or _default_table(name)
    if table == "fast":
        table = _TABLES[name][0]
    if table not in _TABLES[name]:
        raise ValueError(f"kernels={kernels!r} for the {name}: expected one of {_TABLES[name]}")
    dev = _devices.get((name, table))
    if dev is None:
        if name == "cpu":
            dev = Device("cpu", np, table)
        else:
            cp = cupy_module()
            if cp is None and os.environ.get("MINIGAN_GPU") == "standin":
                if standin_installer is None:
                    raise RuntimeError("MINIGAN_GPU=standin: call minigan.testing.gpu_standin.install() "
                                       "first (the minigan command does)")
                standin_installer()
                return _devices[(name, table)]
            # -- why there is no GPU: one line naming the cause (runtime/gpu_env.py) --
            from . import gpu_env  # noqa: PLC0415

            why = gpu_env.diagnose()  # also when CuPy sees a GPU: a CUDA library may be missing
            if why is not None or cp is None:
                raise gpu_env.GpuUnavailable(f"no GPU to run on: {why or 'CuPy sees no usable GPU'}")
            # -- end --
            dev = Device("gpu", cp, table)
        _devices[(name, table)] = dev
    return dev


def device_of(a) -> Device:
    """The device whose arrays ``a`` is one of (for functions that have no model to ask).

    NumPy arrays and Python numbers are the CPU's; a CuPy array is the GPU's,
    whether or not anything asked for the GPU before.
    """
    dev = getattr(a, "minigan_device", None)  # arrays of a device of minigan's own making
    if dev is not None:
        return dev
    if isinstance(a, (np.ndarray, np.generic, int, float)):
        return device("cpu")
    if type(a).__module__.split(".")[0] == "cupy":
        return device("gpu")
    raise TypeError(f"expected an array, got {type(a).__name__}")


def xp_for(spec):
    """Array module for a device: ``"cpu"`` or ``"gpu"``."""
    return device(spec).xp


def to_device(a, spec):
    """Copy ``a`` to the device ``spec`` (a no-op when it is already there)."""
    return device(spec).asarray(a)


# -- many arrays to the host in one transfer ---------------------------------------------------
def to_numpy_many(arrays) -> list:
    """NumPy copies of ``arrays`` (device arrays of one device, or host arrays) with one
    device-to-host transfer: the device arrays' bytes are laid end to end in one device
    buffer, which is copied once and cut up on the host."""
    arrays = list(arrays)
    on_device = [i for i, a in enumerate(arrays) if not isinstance(a, (np.ndarray, np.generic, int, float))]
    out = [np.array(a) if i not in on_device else None for i, a in enumerate(arrays)]
    if on_device:
        xp = device_of(arrays[on_device[0]]).xp
        parts = [xp.ascontiguousarray(arrays[i]).reshape(-1).view(xp.uint8) for i in on_device]
        host = to_numpy(xp.concatenate(parts))
        at = 0
        for i in on_device:
            a = arrays[i]
            n = a.size * a.dtype.itemsize
            out[i] = host[at:at + n].view(a.dtype).reshape(a.shape)
            at += n
    return out
# -- end --


# -- randomness ---------------------------------------------------------------
# One process-wide generator feeds weight initialisation and the seeds of the
# dropout masks, so a seed fixes a whole run and its state can be stored in a
# checkpoint.
_rng = np.random.default_rng()


def manual_seed(seed: int):
    """Seed the generator behind initialisation and dropout."""
    global _rng
    _rng = np.random.default_rng(seed)


def global_rng() -> np.random.Generator:
    return _rng


def rng_state() -> dict:
    return _rng.bit_generator.state


def set_rng_state(state: dict):
    _rng.bit_generator.state = state

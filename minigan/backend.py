"""Which array module runs the math, and moving arrays between devices.

Layers never import NumPy for arithmetic: they ask :func:`get_xp` for the
module that owns their input, so one line of layer code runs on NumPy (CPU)
and CuPy (GPU).  CuPy is optional; nothing here imports it until a GPU is
asked for.
"""
from __future__ import annotations

import os

import numpy as np

DEFAULT_DTYPE = np.float32

_cupy = None
_cupy_checked = False


def cupy_module():
    """Return the ``cupy`` module if it imports and sees a GPU, else ``None``."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy  # noqa: PLC0415

            cupy.cuda.runtime.getDeviceCount()
            _cupy = cupy
        except Exception:  # ImportError, or CUDA present but no device
            _cupy = None
    return _cupy


def gpu_available() -> bool:
    return cupy_module() is not None


def get_xp(*arrays):
    """The array module (``numpy`` or ``cupy``) that owns ``arrays``."""
    cp = _cupy
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def is_gpu_array(a) -> bool:
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def xp_for(device: str):
    """Array module for a device name: ``"cpu"`` or ``"gpu"``."""
    device = normalize_device(device)
    if device == "cpu":
        return np
    cp = cupy_module()
    if cp is None:
        raise RuntimeError(
            "device 'gpu' was asked for, but CuPy is not installed or sees no GPU "
            "(pip install 'minigan[gpu]')"
        )
    return cp


def normalize_device(device: str) -> str:
    d = str(device).lower()
    if d in ("cpu", "numpy"):
        return "cpu"
    if d in ("gpu", "cuda", "cupy"):
        return "gpu"
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'gpu'")


def to_device(a, device: str):
    """Copy ``a`` to ``device`` (a no-op when it is already there)."""
    if normalize_device(device) == "cpu":
        return to_numpy(a)
    return xp_for("gpu").asarray(a)


def to_numpy(a):
    """A NumPy array holding the values of ``a`` (NumPy or CuPy)."""
    if is_gpu_array(a):
        return a.get()
    return np.asarray(a)


# -- memory ----------------------------------------------------------------------
# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_LIMIT = 1 << 30


def retain_freed_memory(limit: int = _KEEP_LIMIT) -> bool:
    """Make freed arrays' memory serve the next arrays instead of going back to the OS.

    glibc hands every allocation of 128 KiB or more its own ``mmap`` and unmaps it
    on ``free``, so each new array of that size (a Dense layer's output or weight
    gradient, a BatchNorm temporary) starts on untouched pages and pays one page
    fault per 4 KiB when it is first written.  A training step frees and
    reallocates the same sizes every time: the MLP GAN step took 129 page faults
    and the DCGAN step 4,184 (25 ms of kernel time).  Raising glibc's mmap and
    trim thresholds to ``limit`` keeps such blocks in the heap for reuse (0 and
    117 faults a step after).  The price is that a process's resident memory
    stays at its peak.

    Process-wide and glibc-only; returns whether it took effect.  Left alone
    when the user set ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_``.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes  # noqa: PLC0415

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(limit)) and mallopt(_M_TRIM_THRESHOLD, int(limit)))


def kernel_path() -> str:
    """The CPU kernel path chosen with ``MINIGAN_KERNELS`` (``numba`` or ``numpy``)."""
    path = os.environ.get("MINIGAN_KERNELS", "numba").lower()
    if path not in ("numba", "numpy"):
        raise ValueError(f"MINIGAN_KERNELS={path!r}: expected 'numba' or 'numpy'")
    return path


# -- randomness ---------------------------------------------------------------
# One process-wide generator feeds weight initialisation and dropout masks, so
# a seed fixes a whole run and its state can be stored in a checkpoint.
_rng = np.random.default_rng()


def manual_seed(seed: int):
    """Seed the generator behind initialisation and dropout (and CuPy's, if loaded)."""
    global _rng
    _rng = np.random.default_rng(seed)
    if _cupy is not None:
        _cupy.random.seed(seed)


def global_rng() -> np.random.Generator:
    return _rng


def rng_state() -> dict:
    return _rng.bit_generator.state


def set_rng_state(state: dict):
    _rng.bit_generator.state = state


def uniform(xp, shape, dtype=DEFAULT_DTYPE):
    """Uniform [0, 1) samples on the device of ``xp``, from the global generator."""
    u = _rng.random(shape, dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64)
    return xp.asarray(u)

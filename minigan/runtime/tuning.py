"""CPU settings that make minigan's training fast, applied on request.

``import minigan`` changes nothing in the process.  :func:`tune_cpu` (which
``minigan`` commands and the benchmark call first) makes three settings, each
measured on the 2-core reference machine:

1. **OpenBLAS's idle threads spin about 0.4 ms, not 0.1 s, after a GEMM**
   (``OPENBLAS_THREAD_TIMEOUT=20``, 2^20 cycles; OpenBLAS's default is 2^28).
   Spinning that long starves the Numba kernels that run between GEMMs
   (GEMM + col2im 8.0 ms spinning, 1.6 ms not); sleeping at once (2^4) makes
   every small GEMM wake its threads (MLP step 2.0-2.4 ms); 2^20 bridges the
   gaps between the MLP's GEMMs (1.57-1.60 ms) and left the DCGAN step as it
   was.  OpenBLAS reads the variable when it loads, so :func:`tune_cpu` has it
   read the value again and restarts its threads: the setting takes effect
   whether NumPy was imported before minigan or after.
2. **Numba's OpenMP workers sleep when idle** (``OMP_WAIT_POLICY=PASSIVE``):
   spinning after each kernel, they take a core from the GEMM that follows
   (DCGAN step 277-286 ms spinning, 224-244 ms passive).  The OpenMP runtime
   reads it when it loads, at Numba's first parallel kernel, so
   :func:`tune_cpu` starts Numba's threads then; if they were started before,
   it can only say so.
3. **Freed memory stays in the heap** for the next arrays
   (:func:`retain_freed_memory`: MLP step 2.21 -> 1.83 ms,
   DCGAN step 273 -> 247 ms).

A setting of the user's own for any of these variables (or
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``) wins, and the
process environment is left as :func:`tune_cpu` found it.
"""
from __future__ import annotations

import ctypes
import os
import warnings
from contextlib import contextmanager

BLAS_THREAD_TIMEOUT = "20"
OMP_WAIT_POLICY = "PASSIVE"

_done: dict = {}


@contextmanager
def _environ(**values):
    """Set the variables the user has not set, for the duration of the block."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield added
    finally:
        for k in added:
            os.environ.pop(k, None)


def openblas_library():
    """The OpenBLAS library NumPy loaded (a ``ctypes.CDLL``), or None (another BLAS, not Linux)."""
    import numpy  # noqa: F401, PLC0415  (loads its BLAS)

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if hasattr(lib, "openblas_read_env") and hasattr(lib, "blas_thread_shutdown_"):
            return lib
    return None


def _blas_timeout() -> str:
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return "the user's OPENBLAS_THREAD_TIMEOUT"
    lib = openblas_library()
    if lib is None:
        return "no OpenBLAS found"
    with _environ(OPENBLAS_THREAD_TIMEOUT=BLAS_THREAD_TIMEOUT):
        lib.openblas_read_env()
    lib.blas_thread_shutdown_()  # the next GEMM starts its threads with the new timeout
    return f"idle threads spin 2^{BLAS_THREAD_TIMEOUT} cycles"


def _omp_policy() -> str:
    if "OMP_WAIT_POLICY" in os.environ:
        return "the user's OMP_WAIT_POLICY"
    try:
        from numba.np.ufunc import parallel  # noqa: PLC0415  (start-up: Numba's import is ~0.3 s)
    except ImportError:
        return "Numba's thread pool not found"
    if getattr(parallel, "_is_initialized", False):
        warnings.warn("minigan.tune_cpu: Numba's threads were started before it was called, so "
                      "its OpenMP workers may spin when idle; call tune_cpu() first for full speed",
                      RuntimeWarning, stacklevel=3)
        return "too late: Numba's threads were already running"
    with _environ(OMP_WAIT_POLICY=OMP_WAIT_POLICY):
        parallel._launch_threads()
    return f"Numba's workers wait {OMP_WAIT_POLICY.lower()}ly"


def tuned() -> bool:
    """Whether :func:`tune_cpu` ran in this process."""
    return bool(_done)


def warn_if_untuned():
    """One warning per process when the CPU kernels start without :func:`tune_cpu`."""
    global _warned
    if not _done and not _warned:
        _warned = True
        warnings.warn("minigan runs on the CPU without the settings of minigan.tune_cpu(): the "
                      "DCGAN train step takes about twice as long (call it once, before training)",
                      RuntimeWarning, stacklevel=5)


_warned = False


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
    Part of :func:`tune_cpu`; ``import minigan`` does not call it.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(limit)) and mallopt(_M_TRIM_THRESHOLD, int(limit)))


def tune_cpu() -> dict:
    """Apply the CPU settings of this module once per process; returns what each one did."""
    if not _done:
        _done["openblas"] = _blas_timeout()
        _done["openmp"] = _omp_policy()
        _done["malloc"] = "freed memory kept" if retain_freed_memory() else "left as it is"
    return dict(_done)


__all__ = ["tune_cpu", "retain_freed_memory", "BLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "openblas_library"]

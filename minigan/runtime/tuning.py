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
4. **As many threads as there are idle cores** (:func:`set_threads`): OpenBLAS's
   and Numba's thread counts, set at run time (OpenBLAS's own
   ``openblas_set_num_threads``, ``numba.set_num_threads``), so a busy machine
   is not oversubscribed; :func:`blas.batched_matmul` splits its products over
   OpenBLAS's count, so it follows.  The count is ``threads`` when given (the
   commands' ``--threads``), else ``$MINIGAN_THREADS``, else the cores left idle
   by the other processes, sampled from ``/proc/stat`` over
   :data:`IDLE_SAMPLE_S` seconds (at least 1; ``benchmarks/loaded.py`` measures
   the choice).  A thread count of the user's own in ``OMP_NUM_THREADS``,
   ``OPENBLAS_NUM_THREADS`` or ``NUMBA_NUM_THREADS`` wins over the sampled default.

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
THREADS_ENV = "MINIGAN_THREADS"
USER_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
IDLE_SAMPLE_S = 0.2
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
    return "openblas" in _done


def warn_if_untuned():
    """One warning per process when the CPU kernels start without :func:`tune_cpu`."""
    global _warned
    if not tuned() and not _warned:
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


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times():
    """``(idle, total)`` jiffies of all cores from ``/proc/stat``, or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])  # guest time is already counted in user


def idle_cores(interval: float = IDLE_SAMPLE_S) -> float | None:
    """How many of the machine's cores sat idle over the next ``interval`` seconds
    (``/proc/stat``; Linux), or None where that cannot be read."""
    import time  # noqa: PLC0415

    a = _cpu_times()
    if a is None:
        return None
    time.sleep(interval)
    b = _cpu_times()
    if b is None or b[1] <= a[1]:
        return None
    cores = os.cpu_count() or 1
    return cores * (b[0] - a[0]) / (b[1] - a[1])


def parse_threads(text, where: str) -> int:
    """A thread count from ``text`` (an integer >= 1), or ValueError naming ``where``."""
    try:
        n = int(str(text).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{where} must be an integer >= 1, got {text!r}")
    return n


def default_threads() -> tuple[int | None, str]:
    """``(count, why)``: ``$MINIGAN_THREADS``; else None when the user fixed a thread count
    in the environment (left as it is); else the idle cores (at least 1, at most the cores
    this process may use)."""
    if os.environ.get(THREADS_ENV, "").strip():
        return parse_threads(os.environ[THREADS_ENV], THREADS_ENV), THREADS_ENV
    mine = [k for k in USER_THREAD_VARS if k in os.environ]
    if mine:
        return None, f"the user's {mine[0]}"
    idle = idle_cores()
    if idle is None:
        return usable_cores(), "all cores (idle time unknown)"
    return max(1, min(usable_cores(), int(idle + 0.5))), f"{idle:.1f} idle cores"


def set_threads(threads: int | None = None) -> dict:
    """Give OpenBLAS and Numba ``threads`` threads each, now (at run time, whenever NumPy
    and Numba were loaded); None: :func:`default_threads`.  Numba cannot go above the
    size of its pool (``NUMBA_NUM_THREADS``, the cores by default).  Returns
    ``{"threads": count or None, "why": ..., "blas": ..., "numba": ...}``."""
    if threads is None:
        threads, why = default_threads()
    else:
        threads, why = parse_threads(threads, "the thread count"), "asked for"
    state = {"threads": threads, "why": why, "blas": None, "numba": None}
    if threads is None:
        return state
    from . import blas  # noqa: PLC0415

    fns = blas._openblas()
    if fns is not None:
        fns[1](threads)
        state["blas"] = int(fns[0]())
    try:
        import numba  # noqa: PLC0415
    except ImportError:
        return state
    if "openmp" not in _done:  # Numba's pool starts here: with its workers' wait policy set
        _done["openmp"] = _omp_policy()
    n = min(threads, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n)
    state["numba"] = n
    _done["threads"] = (f"{threads} ({why}): OpenBLAS {state['blas'] or 'not found'}, "
                        f"Numba {n}")
    return state


def tune_cpu(threads: int | None = None) -> dict:
    """Apply the CPU settings of this module once per process (the threads, see
    :func:`set_threads`, again whenever ``threads`` or ``$MINIGAN_THREADS`` is given);
    returns what each one did."""
    if "openblas" not in _done:
        _done["openblas"] = _blas_timeout()
        if "openmp" not in _done:
            _done["openmp"] = _omp_policy()
        _done["malloc"] = "freed memory kept" if retain_freed_memory() else "left as it is"
        state = set_threads(threads)
        if state["threads"] is None:
            _done["threads"] = f"left as they are ({state['why']})"
    elif threads is not None or os.environ.get(THREADS_ENV, "").strip():
        set_threads(threads)  # asked for again: no sampling, so cheap
    return dict(_done)


__all__ = ["tune_cpu", "set_threads", "default_threads", "idle_cores", "retain_freed_memory", "BLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "openblas_library"]

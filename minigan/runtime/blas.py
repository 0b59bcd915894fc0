"""Independent GEMMs side by side, each on one BLAS thread.

OpenBLAS splits every GEMM over all its threads.  For the small GEMMs of
the spectral conv engine (one per frequency, e.g. 41 of ``(64 x 256) @
(256 x 128)`` complex) the split and the sync after each one cost a good
part of the work: measured on 2 cores, 41 such products took 5.8-8.4 ms on
2 threads, and 5.2-5.3 ms as two halves run at the same time, each half's
GEMMs on one thread.  :func:`batched_matmul` does the latter.

The thread count of NumPy's OpenBLAS is switched with OpenBLAS's own
``*_set_num_threads``, found among the libraries the process has loaded
(Linux); where it cannot be found (another BLAS, another OS), or BLAS has
one thread, the products run as one plain ``matmul``.  While the halves
run, a BLAS call made by another thread of the program would also run on
one thread.
"""
from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_NAMES = [(p + "get_num_threads" + s, p + "set_num_threads" + s)
          for p in ("scipy_openblas_", "openblas_") for s in ("64_", "")]
_lock = threading.Lock()
_state: dict = {}


def _openblas():
    """``(get_num_threads, set_num_threads)`` of the loaded OpenBLAS, or None."""
    if "fns" not in _state:
        _state["fns"] = None
        try:
            with open("/proc/self/maps") as f:
                paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln})
        except OSError:
            paths = []
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for get, set_ in _NAMES:
                if hasattr(lib, get) and hasattr(lib, set_):
                    _state["fns"] = (getattr(lib, get), getattr(lib, set_))
                    break
            if _state["fns"]:
                break
    return _state["fns"]


def _pool(workers: int) -> ThreadPoolExecutor:
    pool = _state.get("pool")
    if pool is None or pool._max_workers < workers:
        pool = _state["pool"] = ThreadPoolExecutor(workers, thread_name_prefix="minigan-blas")
    return pool


def batched_matmul(a, b, out=None):
    """``a (F, m, k) @ b (F, k, n) -> (F, m, n)``, NumPy arrays, the F products split
    into one run of consecutive products per BLAS thread, the runs side by side.
    One of ``a``, ``b`` may be a single 2-D matrix that every product shares."""
    F = (a if a.ndim == 3 else b).shape[0]
    if a.ndim == 2:
        a = np.broadcast_to(a, (F,) + a.shape)
    if b.ndim == 2:
        b = np.broadcast_to(b, (F,) + b.shape)
    if out is None:
        out = np.empty(a.shape[:-1] + b.shape[-1:], dtype=np.result_type(a, b))
    fns = _openblas()
    threads = fns[0]() if fns else 1
    parts = min(threads, a.shape[0])
    if parts < 2 or not _lock.acquire(blocking=False):
        return np.matmul(a, b, out=out)
    try:
        cuts = np.linspace(0, a.shape[0], parts + 1).astype(int)
        fns[1](1)
        try:
            pool = _pool(parts - 1)
            jobs = [pool.submit(np.matmul, a[i:j], b[i:j], out=out[i:j])
                    for i, j in zip(cuts[1:-1], cuts[2:])]
            np.matmul(a[:cuts[1]], b[:cuts[1]], out=out[:cuts[1]])
            for job in jobs:
                job.result()
        finally:
            fns[1](threads)
    finally:
        _lock.release()
    return out

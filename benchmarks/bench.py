"""Benchmark harness: per-layer and whole-step timings, minigan against PyTorch.

    python benchmarks/bench.py [--quick] [--batch 64 256] [--kernels numpy numba] [--no-torch]

The harness is ``harness.py`` beside this file (PyTorch's side in
``torch_reference.py``).  This script fixes the thread counts before NumPy,
Numba and PyTorch are imported, applies :func:`minigan.tune_cpu`, then runs
it.  See RESULTS.md.
"""
import os
import sys

THREADS = "2"
if "--threads" in sys.argv:
    THREADS = sys.argv[sys.argv.index("--threads") + 1]
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = THREADS

import minigan  # noqa: E402

if __name__ == "__main__":
    tuned = minigan.tune_cpu()
    import harness  # noqa: E402  (beside this file)

    harness.TUNING = tuned
    sys.exit(harness.main())

"""Benchmark harness: per-layer and whole-step timings, minigan against PyTorch.

    python benchmarks/bench.py [--quick] [--batch 64 256] [--kernels numpy numba] [--no-torch]

The logic lives in :mod:`minigan.bench` (so ``minigan bench`` works from an
installed package); this script fixes the thread counts before NumPy, Numba
and PyTorch are imported, then runs it.  See benchmarks/RESULTS.md.
"""
import os
import sys

THREADS = "2"
if "--threads" in sys.argv:
    THREADS = sys.argv[sys.argv.index("--threads") + 1]
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = THREADS

from minigan import bench  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench.main(prog="python benchmarks/bench.py"))

"""minigan: a from-scratch GAN engine with hand-written backward passes.

NumPy on the CPU (hot loops in Numba), CuPy on a GPU, no autograd.
"""
import os as _os

# Idle OpenBLAS threads spin for 2^n cycles after each GEMM before they sleep.
# OpenBLAS's default (n = 28, ~0.1 s) starves the Numba kernels that run
# between GEMMs (measured: GEMM + col2im 8.0 ms spinning, 1.6 ms not); n = 4
# sleeps at once, and then every small GEMM pays for waking its threads (MLP
# step 2.0-2.4 ms).  n = 20 (~0.4 ms) keeps them awake across the gaps between
# the MLP's GEMMs (1.57-1.60 ms) and left the DCGAN step as it was (four
# alternating runs: 158.7 / 177.8 / 179.9 / 161.5 ms at 4, 156.1 / 183.9 /
# 158.0 / 155.2 at 20).  It only takes effect when minigan is imported before
# NumPy, and a user's own setting wins.
BLAS_THREAD_TIMEOUT = "20"
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)
# The same holds for the OpenMP threads behind Numba's parallel kernels: spinning
# after each kernel, they take a core from the GEMM that follows.  Passive waiting
# took the DCGAN step from 277-286 ms to 224-244 ms (2 threads, batch 64).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import backend, losses, nn, optim  # noqa: E402
from .backend import manual_seed  # noqa: E402
from .gradcheck import check_layer, check_loss  # noqa: E402

# New arrays reuse freed memory instead of faulting in fresh pages (MLP GAN step
# 2.21 -> 1.83 ms, DCGAN step 273 -> 247 ms; see backend.retain_freed_memory).
backend.retain_freed_memory()

__version__ = "0.1.0"
__all__ = ["backend", "nn", "losses", "optim", "manual_seed", "check_layer", "check_loss"]

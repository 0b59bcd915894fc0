"""minigan: a from-scratch GAN engine with hand-written backward passes.

NumPy on the CPU (hot loops in Numba), CuPy on a GPU, no autograd.
"""
import os as _os

# Idle OpenBLAS threads spin for a long while after each GEMM and starve the
# Numba kernels that run between GEMMs (measured: GEMM + col2im 8.0 ms spinning,
# 1.6 ms not).  The shortest timeout fixes that; it only takes effect when
# minigan is imported before NumPy, and a user's own setting wins.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import backend, losses, nn, optim  # noqa: E402
from .backend import manual_seed  # noqa: E402
from .gradcheck import check_layer, check_loss  # noqa: E402

__version__ = "0.1.0"
__all__ = ["backend", "nn", "losses", "optim", "manual_seed", "check_layer", "check_loss"]

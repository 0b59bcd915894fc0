"""minigan: a from-scratch GAN engine with hand-written backward passes.

NumPy on the CPU (hot loops in Numba), CuPy on a GPU, no autograd.
"""
from . import backend, losses, nn, optim
from .backend import manual_seed
from .gradcheck import check_layer, check_loss

__version__ = "0.1.0"
__all__ = ["backend", "nn", "losses", "optim", "manual_seed", "check_layer", "check_loss"]

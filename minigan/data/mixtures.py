"""2-D Gaussian mixtures and mode-coverage statistics, as in PacGAN (Lin et al., 2018).

Two benchmarks:

* ``ring``: 8 modes evenly spaced on the unit circle, each an isotropic Gaussian with
  std 0.01;
* ``grid``: 25 modes at (i, j) for i, j in {-4, -2, 0, 2, 4}, std 0.05.

Samples are drawn uniformly over the modes. :func:`mode_stats` scores generated points
the way the paper does: a point is *high quality* when it lies within 3 std of its
nearest mode, a mode is *covered* when at least one high-quality point lands on it, and
the reverse KL compares the histogram of high-quality points over modes with uniform.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "Mixture",
    "ring_modes",
    "grid_modes",
    "RING",
    "GRID",
    "MIXTURES",
    "sample_mixture",
    "mode_stats",
]


class Mixture(NamedTuple):
    """Centres ``modes`` (K, 2) and the per-coordinate std of every component."""

    modes: np.ndarray
    std: float


def ring_modes() -> np.ndarray:
    """Eight points on the circle of radius 1, at angles 2*pi*k/8; shape (8, 2)."""
    angles = 2.0 * np.pi * np.arange(8) / 8
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_modes() -> np.ndarray:
    """The 25 points (i, j) for i, j in {-4, -2, 0, 2, 4}; shape (25, 2)."""
    ticks = np.arange(-4.0, 5.0, 2.0)
    gx, gy = np.meshgrid(ticks, ticks, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _frozen(a: np.ndarray) -> np.ndarray:
    # The module-level mixtures are shared by every caller; make accidental writes fail.
    a.setflags(write=False)
    return a


RING = Mixture(_frozen(ring_modes()), 0.01)
GRID = Mixture(_frozen(grid_modes()), 0.05)
MIXTURES: dict[str, Mixture] = {"ring": RING, "grid": GRID}


def _mixture(name: str) -> Mixture:
    try:
        return MIXTURES[name]
    except KeyError:
        raise ValueError(f"unknown mixture {name!r}; choose one of {sorted(MIXTURES)}") from None


def sample_mixture(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` points from mixture ``name`` ("ring" or "grid"); returns (n, 2) float32.

    Each point picks a mode uniformly at random and adds N(0, std^2 I) noise.
    """
    modes, std = _mixture(name)
    which = rng.integers(len(modes), size=n)
    points = modes[which] + rng.normal(scale=std, size=(n, 2))
    return points.astype(np.float32)


def mode_stats(points: np.ndarray, name: str) -> dict:
    """Mode coverage of ``points`` (n, 2) against mixture ``name``.

    Returns a dict with

    * ``counts``: (K,) int64, high-quality points assigned to each mode (nearest mode);
    * ``modes_covered``: int, modes with at least one high-quality point;
    * ``high_quality``: float, fraction of all points within 3 std of their nearest mode
      (0.0 when ``points`` is empty);
    * ``reverse_kl``: float, KL(p || uniform) = sum_k p_k log(p_k / (1/K)) over modes with
      p_k > 0, where p is ``counts`` normalised to sum to 1. It is 0 when the high-quality
      points are spread evenly, log K when they all sit on one mode, and NaN when there
      are no high-quality points (the histogram is then undefined).
    """
    modes, std = _mixture(name)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    k = len(modes)
    # Squared distances (n, K) via |p|^2 - 2 p.m + |m|^2: avoids an (n, K, 2) temporary.
    # In float64 the cancellation error (~1e-15 * |p|^2) is far below (3 std)^2.
    d2 = (pts**2).sum(1)[:, None] - 2.0 * pts @ modes.T + (modes**2).sum(1)[None, :]
    nearest = d2.argmin(axis=1)
    nearest_d2 = np.maximum(d2[np.arange(len(pts)), nearest], 0.0)
    hq = nearest_d2 <= (3.0 * std) ** 2
    counts = np.bincount(nearest[hq], minlength=k).astype(np.int64)

    total = counts.sum()
    if total > 0:
        p = counts[counts > 0] / total
        reverse_kl = float(np.sum(p * np.log(p * k)))
    else:
        reverse_kl = float("nan")
    return {
        "modes_covered": int(np.count_nonzero(counts)),
        "high_quality": float(hq.mean()) if len(pts) else 0.0,
        "reverse_kl": reverse_kl,
        "counts": counts,
    }

"""Fréchet distance between two Gaussians fitted to feature sets (Heusel et al. 2017).

For features X (n, d) and Y (m, d) with means mu_x, mu_y and covariances S_x, S_y::

    d^2 = |mu_x - mu_y|^2 + tr(S_x) + tr(S_y) - 2 tr( (S_x S_y)^(1/2) )

the squared 2-Wasserstein distance between N(mu_x, S_x) and N(mu_y, S_y).  The
trace term needs the square root of a product of covariances, which is not
symmetric.  Because S_x S_y is similar to the symmetric positive semi-definite
matrix ``A = S_x^(1/2) S_y S_x^(1/2)`` (conjugate by S_x^(1/2)), both have the
same eigenvalues, and ``tr((S_x S_y)^(1/2)) = sum_i sqrt(lambda_i(A))``.  Two
symmetric eigendecompositions (``numpy.linalg.eigh``) give it, with tiny
negative eigenvalues from rounding clipped to 0: no complex parts to discard
and no SciPy needed.  Everything is in float64.
"""
from __future__ import annotations

import numpy as np


def sqrtm_psd(a) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues < 0 -> 0)."""
    a = np.asarray(a, dtype=np.float64)
    a = (a + a.T) / 2
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(s1, s2) -> float:
    """``tr((S1 S2)^(1/2))`` for symmetric PSD ``S1``, ``S2``, via ``S1^(1/2) S2 S1^(1/2)``."""
    r = sqrtm_psd(s1)
    m = r @ np.asarray(s2, dtype=np.float64) @ r
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def feature_stats(features):
    """Mean (d,) and covariance (d, d) of ``features`` (n, d), float64 (covariance with n - 1)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"feature_stats needs (n, d) features with n >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The Fréchet distance (squared, as FID reports it) between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"frechet_distance: shapes do not fit: means {mu1.shape}, {mu2.shape}; "
                         f"covariances {s1.shape}, {s2.shape}")
    diff = mu1 - mu2
    d = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
    return float(max(d, 0.0))  # rounding can leave -1e-12 for identical sets


def frechet_distance_features(f1, f2) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets (n, d) and (m, d)."""
    return frechet_distance(*feature_stats(f1), *feature_stats(f2))

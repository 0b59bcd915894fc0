"""k-means clustering (Lloyd's algorithm, k-means++ start): the labels of a self-conditioned GAN.

For points ``x`` (N, D) and k centres ``c`` (k, D), k-means looks for the centres
that minimise the sum of squared distances of each point to its nearest centre.
Lloyd's algorithm alternates the two halves of that problem::

    a[n] = argmin_j |x[n] - c[j]|^2          assign each point to its nearest centre
    c[j] = mean of x[n] over a[n] = j        move each centre to the mean of its points

until no assignment changes (or ``iters`` rounds).  The squared distances are
``|x|^2 - 2 x c^T + |c|^2``: one GEMM per round.  The start is k-means++ (Arthur &
Vassilvitskii 2007) on a random subset: each next centre a point drawn with
probability proportional to its squared distance to the nearest centre so far.

A centre that loses all its points keeps its place.  Everything random comes from
the ``rng`` given, so the same points and seed give the same clusters.
"""
from __future__ import annotations

import numpy as np

START_POINTS = 10_000  # the k-means++ start looks at a random subset of this many points


def kmeans(x, k: int, rng, iters: int = 30):
    """``(centres (k, D) float32, assignment (N,) int64)`` of the points ``x`` (N, ...),
    each flattened to D values; ``rng`` a :class:`numpy.random.Generator`."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
    N = len(x)
    if not 1 <= k <= N:
        raise ValueError(f"k-means: cannot make {k} clusters of {N} points")
    if not np.all(np.isfinite(x)):
        raise ValueError("k-means: the points hold NaN or infinite values")
    centres = _start(x[rng.choice(N, min(N, START_POINTS), replace=False)], k, rng)
    xx = np.einsum("nd,nd->n", x, x)
    assign = None
    for _ in range(iters):
        new = nearest(x, centres, xx)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        onehot = (assign[None, :] == np.arange(k)[:, None]).astype(np.float32)  # (k, N)
        sums = onehot @ x  # one GEMM: a scatter-add over N x D values is 30x slower
        counts = np.bincount(assign, minlength=k)
        full = counts > 0
        centres[full] = sums[full] / counts[full, None]
    return centres, assign


def nearest(x, centres, xx=None):
    """The index of the nearest centre (N,) for each point of ``x`` (N, D)."""
    xx = np.einsum("nd,nd->n", x, x) if xx is None else xx
    d2 = xx[:, None] - 2 * (x @ centres.T) + np.einsum("kd,kd->k", centres, centres)[None, :]
    return d2.argmin(axis=1).astype(np.int64)


def _start(x, k, rng):
    """k-means++: k centres drawn from ``x``, each far from those before it."""
    centres = np.empty((k, x.shape[1]), np.float32)
    centres[0] = x[rng.integers(len(x))]
    d2 = ((x - centres[0]) ** 2).sum(axis=1, dtype=np.float64)
    for j in range(1, k):
        total = d2.sum()
        i = rng.choice(len(x), p=d2 / total) if total > 0 else rng.integers(len(x))
        centres[j] = x[i]
        d2 = np.minimum(d2, ((x - centres[j]) ** 2).sum(axis=1, dtype=np.float64))
    return centres

"""An exponential moving average of the generator's weights (Yazici et al. 2019).

Yazici, Foo, Winkler, Yap, Piliouras, Chandrasekhar, "The unusual effectiveness
of averaging in GAN training", ICLR 2019.  After every generator step, for every
parameter theta of G (weights, biases, BatchNorm's gamma and beta)::

    avg <- d * avg + (1 - d) * theta          0 < d < 1 (the decay)

starting from ``avg = theta`` at initialisation.  After t steps the start weighs
d^t and the step s before the last weighs (1 - d) d^s: an average over about
1 / (1 - d) steps (1,000 for d = 0.999).  The averaged generator is only read
(to draw, to score, to sample from a checkpoint); training continues on the live G.

BatchNorm's running mean and variance are not parameters and are not averaged:
the live G's estimates belong to the live weights, and a network whose weights
are an average of many steps has pre-activations of its own.  So
:meth:`GeneratorAverage.model` re-estimates them for the averaged weights on a
fixed set of noise points (:func:`recompute_batchnorm`), each time the average has
changed since the last estimate.
"""
from __future__ import annotations

import copy

import numpy as np

from ..nn import BatchNorm, is_conditional, set_labels
from ..runtime import devices
from ..runtime.registry import reference

BN_POINTS = 2_500  # noise points on which the averaged G's BatchNorm statistics are estimated
BN_BATCH = 500


def recompute_batchnorm(G, z, batch_size: int = BN_BATCH, labels=None):
    """Set every BatchNorm's running mean and variance in ``G`` to their averages over ``z``.

    ``z`` is cut into batches of ``batch_size``; each BatchNorm layer sees batch k in
    training mode with momentum 1 / (k + 1), so its running estimates end as the plain
    mean over the batches of the batch means and of the unbiased batch variances (as
    PyTorch's ``update_bn``).  Only the BatchNorm layers are put in training mode (no
    dropout mask is drawn); every layer's mode and momentum is restored afterwards.
    ``labels``: the digit of each row of ``z`` for a conditional ``G``.
    """
    bns = [m for m in G.modules() if isinstance(m, BatchNorm)]
    if not bns:
        return G
    modes = [(m, m.training) for m in G.modules()]
    momenta = [bn.momentum for bn in bns]
    xp = devices.get_xp(bns[0].params["gamma"])
    try:
        G.eval()
        for bn in bns:
            bn.training = True
        for k, i in enumerate(range(0, len(z), batch_size)):
            for bn in bns:
                bn.momentum = 1.0 / (k + 1)
            if labels is not None:
                set_labels(G, xp.asarray(labels[i:i + batch_size]))
            G.forward(xp.asarray(z[i:i + batch_size]))
    finally:
        for m, mode in modes:
            m.training = mode
        for bn, mom in zip(bns, momenta):
            bn.momentum = mom
    return G


def batchnorm_noise(G, noise_dim: int, seed: int, points: int | None = None):
    """The noise ``(points, noise_dim)`` in ``G``'s dtype on which the averaged ``G``'s BatchNorm
    statistics are estimated, drawn from ``default_rng([seed, 3])``, and the digit of each row
    (0, 1, ..., 9 in turn) for a conditional ``G``, else None."""
    points = BN_POINTS if points is None else points  # read here, so a test can lower it
    z = np.random.default_rng([seed, 3]).standard_normal((points, noise_dim)).astype(G.dtype or np.float32)
    return z, (np.arange(points, dtype=np.int64) % 10) if is_conditional(G) else None


@reference("ema_update")
def ema_update(avg, theta, weight):
    """``avg += weight * (theta - avg)`` in place, over flat buffers: a moving average with
    decay ``1 - weight``.  ``avg`` may be of a wider dtype than ``theta`` (a float64
    average of float32 weights); the difference is taken in the average's dtype."""
    diff = theta - avg  # promotes to avg's dtype
    diff *= weight
    avg += diff


class GeneratorAverage:
    """An exponential moving average (decay ``decay``) of ``G``'s parameters.

    ``update()`` after each optimizer step of ``G``; ``model()`` gives the averaged
    generator, in ``G``'s dtype, with BatchNorm statistics estimated for its weights on
    noise drawn once from ``default_rng([seed, 3])`` (no draw from the training
    generators, so an exact resume is not disturbed).

    The average itself, ``avg``, is kept in float64: late in a run an increment
    (1 - d)(theta - avg) is a few ulps of a float32 weight or less (d = 0.9999 and a
    decayed learning rate), and float32 would round much of it away.  ``avg`` (with the
    BatchNorm estimates of the last ``model()``) is what a checkpoint stores.
    """

    def __init__(self, G, decay: float, noise_dim: int, seed: int = 0, bn_points: int | None = None):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"GeneratorAverage: decay must lie in (0, 1), got {decay}")
        self.G, self.decay = G, float(decay)
        # copies, not new models: building one would draw init weights from the training RNG
        self.view = copy.deepcopy(G)  # the average in G's dtype, for drawing
        self.avg = copy.deepcopy(G).astype(np.float64)
        self.bn_noise, self.bn_labels = batchnorm_noise(G, noise_dim, seed, bn_points)
        self._stale = True  # ``view`` predates the last update

    def update(self):
        """``avg <- d * avg + (1 - d) * theta`` for every parameter, in place."""
        # avg + (1 - d)(theta - avg): the same average, updated in place in one pass over the
        # two models' flat buffers, which are laid out alike (same parameters, same order)
        update = self.avg.device.kernel(ema_update)
        for a, t in zip(self.avg.flat().groups, self.G.flat().groups):
            if a.params.size != t.params.size:
                raise RuntimeError("GeneratorAverage: the average and G no longer hold the same parameters")
            update(a.params, t.params, 1.0 - self.decay)
        self._stale = True

    def model(self):
        """The averaged generator in ``G``'s dtype, its BatchNorm statistics estimated for
        its own weights (and written back into ``avg``'s buffers, for the checkpoint)."""
        if self._stale:
            # the average copied into G's dtype on its own device (no trip through the host)
            for part in ("named_parameters", "named_buffers"):
                for (_, v, k), (_, a, _) in zip(getattr(self.view, part)(), getattr(self.avg, part)()):
                    dst, src = (v.params, a.params) if part == "named_parameters" else (v.buffers, a.buffers)
                    dst[k][...] = src[k].astype(dst[k].dtype, copy=False)
            recompute_batchnorm(self.view, self.bn_noise, labels=self.bn_labels)
            for (_, layer, key), (_, avg_layer, _) in zip(self.view.named_buffers(), self.avg.named_buffers()):
                avg_layer.buffers[key][...] = layer.buffers[key]
            self._stale = False
        return self.view

    @property
    def estimated(self) -> bool:
        """Whether ``avg``'s BatchNorm statistics belong to its present weights (no update
        since the last :meth:`model`)."""
        return not self._stale

    def reset_to(self, G=None):
        """Start the average over from ``G``'s weights (default the live G): avg = theta."""
        self.avg.load_state_dict((self.G if G is None else G).state_dict())
        self._stale = True
        return self

    def loaded(self):
        """Note that ``avg`` was overwritten (from a checkpoint): ``view`` needs refreshing."""
        self._stale = True
        return self

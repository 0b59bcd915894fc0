"""Scoring a generator or a checkpoint: draw its samples, then score them (:mod:`minigan.metrics`).

:func:`score_generator` is what the trainer calls every few epochs and what
``minigan eval`` calls on a checkpoint.  On MNIST it draws 10,000 samples and
returns :func:`minigan.metrics.scores.mnist_scores`; on a 2-D mixture it draws 2,500
points and returns :func:`minigan.metrics.mixture_scores`.  Each scores dict carries
``dataset``.  A conditional generator's samples are the ten digits in turn, and its
scores add ``conditional``: :func:`conditional_accuracy` on n/10 samples per digit.
"""
from __future__ import annotations

import numpy as np

from ..metrics.classifier import load_classifier, predict
from ..metrics.conditional import N_PER_CLASS, class_accuracy
from ..metrics.evaluate import MIXTURE_N, mixture_scores
from ..metrics.scores import N_SAMPLES, mnist_scores
from ..nn import is_conditional
from .sampler import generate, load_generator


def score_generator(G, dataset: str, model: str, n: int | None = None, seed: int = 0,
                    device: str = "cpu", classifier=None) -> dict:
    """Scores of generator ``G`` (put in eval mode, then back to its former mode)."""
    was_training = G.training
    try:
        if dataset in ("ring", "grid"):
            pts = generate(G, model, n or MIXTURE_N, seed, device)
            return mixture_scores(pts, dataset)


        classifier = classifier or load_classifier()
        imgs = generate(G, model, n or N_SAMPLES, seed, device)
        out = {"dataset": "mnist", **mnist_scores(imgs, classifier)}
        if is_conditional(G):
            out["conditional"] = conditional_accuracy(G, classifier, max(1, (n or N_SAMPLES) // 10),
                                                      seed, device, model)
        return out
    finally:
        G.train(was_training)


def score_checkpoint(path, n: int | None = None, seed: int | None = None, device: str = "cpu",
                     averaged: bool = True) -> dict:
    """Scores of the generator in checkpoint ``path``; adds ``epoch``, ``step``, ``model`` and ``seed``.

    ``seed`` seeds the noise; by default it is the run's own seed, the one the trainer
    scores with, so the scores of a checkpoint repeat the row of ``eval.csv`` it was
    saved with.

    ``averaged``: a checkpoint trained with ``g_ema`` is scored on its weight average
    (default) or, with False, on its live generator; ``generator`` in the result says which.
    """
    G, meta = load_generator(path, device, averaged)
    if seed is None:
        seed = int((meta.get("config") or {}).get("seed") or 0)
    scores = score_generator(G, meta.get("dataset", "mnist"), meta["model"], n, seed, device)
    scores.update(epoch=meta.get("epoch"), step=meta.get("global_step"), model=meta["model"],
                  pack=meta.get("pack", 1), generator=meta["generator"], seed=seed)
    return scores


def conditional_accuracy(G, classifier=None, n_per_class: int = N_PER_CLASS, seed: int = 0,
                         device: str = "cpu", model: str = "dcgan") -> dict:
    """Per-digit and overall fraction of ``G``'s samples the classifier assigns to the asked digit.

    ``G``: a conditional MNIST generator (built with ``conditional=True``); put in eval mode
    and back.  Draws ``n_per_class`` samples of each digit and returns
    :func:`minigan.metrics.conditional.class_accuracy` of the classifier's predictions.
    """
    if not is_conditional(G):
        raise ValueError("conditional accuracy needs a conditional generator")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    classifier = classifier or load_classifier()
    y = np.repeat(np.arange(10), n_per_class)
    was_training = G.training
    try:
        imgs = generate(G, model, len(y), seed, device, labels=y)
    finally:
        G.train(was_training)
    return class_accuracy(predict(classifier, imgs), y)

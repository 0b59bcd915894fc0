"""Classifier-based scores for generated MNIST digits.

All use the MNIST classifier of :mod:`minigan.metrics.classifier` (trained with
minigan's own layers, >= 99% test accuracy):

* ``frechet``: Fréchet distance between Gaussians fitted to the classifier's 128-d
  penultimate features of the samples and of the 10,000 MNIST test images (FID's
  formula, with this classifier in place of Inception).  0 is a perfect match; lower is
  better.
* ``inception_score``: ``exp( E_x KL(p(y|x) || p(y)) )`` with the classifier's
  softmax as ``p(y|x)`` (Salimans et al. 2016), averaged over 10 splits
  (``inception_score_std`` is the spread over the splits).  Between 1 and 10; higher is
  better (confident predictions spread over all digits).
* ``class_counts``: histogram of predicted digits (10,); ``kl_uniform``:
  ``KL(hist || uniform) = sum_k p_k log(10 p_k)``, 0 for balanced digits, log 10 = 2.30
  when every sample is one digit.
* ``n_classes``: digits that receive at least ``min_fraction`` (default 1%, a tenth of
  their fair share) of the samples; a generator collapsed to one digit scores 1.

Reference values (:func:`reference_scores`) put each number in context: 10,000 MNIST
*training* images scored against the test set (what a perfect generator would get) and
10,000 images of uniform noise.
"""
from __future__ import annotations

import numpy as np

from ..data import load_mnist
from .classifier import forward_features, load_classifier
from .frechet import feature_stats, frechet_distance

N_SAMPLES = 10_000  # generated samples scored, and test images they are compared with
MIN_FRACTION = 0.01  # share of the samples a digit needs to count in n_classes
SCORE_KEYS = ("frechet", "inception_score", "inception_score_std", "kl_uniform", "n_classes")


def softmax(logits) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def inception_score(probs, splits: int = 10):
    """``(mean, std)`` over ``splits`` equal parts of ``exp(mean KL(p(y|x) || p(y)))``."""
    p = np.asarray(probs, dtype=np.float64)
    splits = max(1, min(int(splits), len(p)))
    values = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(py, 1e-12, None)))).sum(axis=1)
        values.append(float(np.exp(kl.mean())))
    return float(np.mean(values)), float(np.std(values))


def class_counts(predictions, n_classes: int = 10) -> np.ndarray:
    return np.bincount(np.asarray(predictions, dtype=np.int64), minlength=n_classes).astype(np.int64)


def kl_from_uniform(counts) -> float:
    """``KL(p || uniform)`` of a histogram, ``sum_k p_k log(K p_k)`` over non-empty bins."""
    c = np.asarray(counts, dtype=np.float64)
    if c.sum() <= 0:
        return float("nan")
    p = c[c > 0] / c.sum()
    return float(np.sum(p * np.log(p * len(c))))


def classes_produced(counts, min_fraction: float = MIN_FRACTION) -> int:
    """How many classes receive at least ``min_fraction`` of all samples (and at least one)."""
    c = np.asarray(counts, dtype=np.float64)
    return int(np.count_nonzero((c > 0) & (c >= min_fraction * c.sum())))


_TEST_STATS: dict = {}


def test_set_stats(classifier=None):
    """Feature mean and covariance of the 10,000 MNIST test images (memoised per classifier)."""
    classifier = classifier or load_classifier()
    key = id(classifier)
    if key not in _TEST_STATS:
        x, _ = load_mnist("test", progress=False)
        feats, _ = forward_features(classifier, x)
        _TEST_STATS[key] = (classifier, feature_stats(feats))
    return _TEST_STATS[key][1]


def scores_from_outputs(features, logits, reference_stats, splits: int = 10,
                        min_fraction: float = MIN_FRACTION) -> dict:
    """The scores from classifier outputs (features (N, d), logits (N, 10)) of the samples."""
    probs = softmax(logits)
    counts = class_counts(probs.argmax(axis=1), probs.shape[1])
    is_mean, is_std = inception_score(probs, splits)
    return {
        "n": int(len(features)),
        "frechet": frechet_distance(*feature_stats(features), *reference_stats),
        "inception_score": is_mean,
        "inception_score_std": is_std,
        "kl_uniform": kl_from_uniform(counts),
        "n_classes": classes_produced(counts, min_fraction),
        "class_counts": [int(c) for c in counts],
    }


def mnist_scores(images, classifier=None, reference_stats=None, splits: int = 10) -> dict:
    """Scores of ``images`` (float in [0, 1] or uint8; (N, 28, 28), (N, 784) or (N, 1, 28, 28)).

    ``reference_stats``: ``(mu, sigma)`` to measure the Fréchet distance against
    (default: the MNIST test set, which needs the MNIST data).  Returns a dict with
    ``n``, ``frechet``, ``inception_score``, ``inception_score_std``, ``kl_uniform``,
    ``n_classes`` and ``class_counts`` (a list of 10 ints).
    """
    classifier = classifier or load_classifier()
    if reference_stats is None:
        reference_stats = test_set_stats(classifier)
    feats, logits = forward_features(classifier, images)
    return scores_from_outputs(feats, logits, reference_stats, splits)


_REFERENCE: dict = {}


def reference_scores(classifier=None, n: int = N_SAMPLES, seed: int = 0) -> dict:
    """``{"train": scores, "noise": scores}``: the yardsticks printed beside every score.

    ``train``: ``n`` MNIST training images (a seeded random choice) against the test set, the
    best a generator can hope for.  ``noise``: ``n`` images of uniform noise in [0, 1].
    """
    classifier = classifier or load_classifier()
    key = (id(classifier), n, seed)
    if key not in _REFERENCE:
        ref = test_set_stats(classifier)
        x, _ = load_mnist("train", progress=False)
        rng = np.random.default_rng(seed)
        pick = rng.permutation(len(x))[:n]
        noise = rng.random((n, 28, 28), dtype=np.float32)
        _REFERENCE[key] = (classifier, {
            "train": mnist_scores(x[pick], classifier, ref),
            "noise": mnist_scores(noise, classifier, ref),
        })
    return _REFERENCE[key][1]

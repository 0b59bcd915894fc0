"""How good are the samples, and did the GAN collapse?  Numbers from the GAN literature.

MNIST (:mod:`.scores`, on a classifier built and trained with minigan's own layers,
:mod:`.classifier`): Fréchet distance on the classifier's penultimate features against
the test set, classifier-based Inception Score, histogram of predicted digits with its KL
from uniform, number of digit classes produced, and reference values (MNIST train vs
test; noise).

2-D mixtures (:func:`mixture_scores`): PacGAN's modes covered, % high-quality points
and reverse KL of the mode histogram.

Conditional models (:func:`class_accuracy`): the fraction of samples the
classifier assigns to the digit asked for, per digit and overall.

These functions score samples; drawing them from a generator or a checkpoint
is :mod:`minigan.gan.scoring`'s.

See ``docs/metrics.md`` for definitions and measured tables.
"""
from .classifier import (ClassifierError, build_classifier, forward_features, load_classifier, predict,
                         prepare_images)
from .conditional import class_accuracy, format_conditional
from .evaluate import append_scores, format_scores, mixture_scores, reference_for
from .frechet import feature_stats, frechet_distance, frechet_distance_features, sqrtm_psd
from .scores import (class_counts, classes_produced, inception_score, kl_from_uniform, mnist_scores,
                     reference_scores, scores_from_outputs, test_set_stats)

__all__ = [
    "ClassifierError", "build_classifier", "load_classifier", "forward_features", "predict", "prepare_images",
    "frechet_distance", "frechet_distance_features", "feature_stats", "sqrtm_psd",
    "mnist_scores", "reference_scores", "scores_from_outputs", "test_set_stats", "inception_score",
    "class_counts", "classes_produced", "kl_from_uniform",
    "mixture_scores", "reference_for", "format_scores", "append_scores", "class_accuracy",
    "format_conditional",
]

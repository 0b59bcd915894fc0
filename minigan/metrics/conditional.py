"""Conditional accuracy: does a conditional generator draw the digit it is asked for?

(The samples are drawn by :func:`minigan.gan.scoring.conditional_accuracy`; this module scores them.)

For each digit k, ``n_per_class`` samples are drawn with label k and classified by the
MNIST classifier (:func:`minigan.metrics.load_classifier`); the score for k is the
fraction assigned to k, and the overall score the fraction over all 10 * n_per_class
samples (the mean of the ten, since the classes are the same size).
"""
from __future__ import annotations

import numpy as np

N_PER_CLASS = 1000
CONDITIONAL_COLUMNS = ["epoch", "step", "n_per_class", "cond_acc"] + [f"cond_acc_{k}" for k in range(10)]


def class_accuracy(pred, y) -> dict:
    """Per-digit and overall fraction of predictions ``pred`` (n,) equal to the digits asked
    for, ``y`` (n,) with the same number of each digit.  Returns ``{"n_per_class",
    "overall", "per_digit": [10 floats], "confusion": 10x10 counts (row: digit asked,
    column: digit seen)}``."""
    y, pred = np.asarray(y), np.asarray(pred)
    n_per_class = len(y) // 10
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_digit = (np.diag(confusion) / n_per_class).tolist()
    return {"n_per_class": int(n_per_class), "overall": float((pred == y).mean()),
            "per_digit": [float(v) for v in per_digit], "confusion": confusion.tolist()}


def format_conditional(acc: dict) -> str:
    """Two lines: overall, then per digit, in percent."""
    digits = "  ".join(f"{k}: {100 * v:.1f}" for k, v in enumerate(acc["per_digit"]))
    return (f"conditional accuracy ({acc['n_per_class']} per digit): {100 * acc['overall']:.2f}%\n"
            f"  per digit (%): {digits}")

"""The scores of a 2-D mixture's points, reference scores, printing the numbers, and logging them to CSV.

Drawing the samples to score from a generator or a checkpoint is the GAN's
business (:mod:`minigan.gan.scoring`); these functions take the samples.
"""
from __future__ import annotations

import csv
import os

import numpy as np
from ..data import MIXTURES, mode_stats, sample_mixture
from .conditional import CONDITIONAL_COLUMNS, format_conditional
from .scores import reference_scores

MNIST_COLUMNS = ["epoch", "step", "n", "frechet", "inception_score", "inception_score_std",
                 "kl_uniform", "n_classes"] + [f"count_{k}" for k in range(10)]
MIXTURE_COLUMNS = ["epoch", "step", "n", "modes_covered", "high_quality", "reverse_kl", "counts"]
MIXTURE_N = 2_500


def mixture_scores(points, name: str) -> dict:
    """PacGAN's three numbers for ``points`` (n, 2) on mixture ``name`` ("ring" or "grid").

    ``modes_covered`` (modes with at least one high-quality point), ``high_quality``
    (fraction of points within 3 std of their nearest mode), ``reverse_kl`` (KL between the
    mode histogram of the high-quality points and uniform), ``counts`` (that histogram),
    plus ``n`` and ``n_modes``.  See :func:`minigan.data.mode_stats`.
    """
    s = mode_stats(points, name)
    return {"dataset": name, "n": int(len(np.asarray(points).reshape(-1, 2))),
            "n_modes": len(MIXTURES[name].modes), "modes_covered": s["modes_covered"],
            "high_quality": s["high_quality"], "reverse_kl": s["reverse_kl"],
            "counts": [int(c) for c in s["counts"]]}


def reference_for(dataset: str, n: int | None = None, seed: int = 0) -> dict:
    """Reference scores: MNIST train-vs-test and noise; on a mixture, points drawn from the mixture."""
    if dataset in ("ring", "grid"):
        pts = sample_mixture(dataset, n or MIXTURE_N, np.random.default_rng(seed))
        return {"true mixture": mixture_scores(pts, dataset)}

    ref = reference_scores()
    return {"MNIST train": ref["train"], "noise": ref["noise"]}


def _fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{v:.{digits}f}"


def format_scores(scores: dict, references: dict | None = None, short: bool = False) -> str:
    """The scores as a table, with a column per reference (e.g. ``reference_for(dataset)``)."""
    mixture = scores.get("dataset") in ("ring", "grid")
    if mixture:
        rows = [("modes covered (of %d)" % scores["n_modes"], "modes_covered", 0),
                ("% high quality", "high_quality", 1), ("reverse KL (lower is better)", "reverse_kl", 3)]
    else:
        rows = [("Fréchet distance (lower is better)", "frechet", 2),
                ("Inception Score (higher is better, max 10)", "inception_score", 2),
                ("KL(digit histogram || uniform)", "kl_uniform", 3),
                ("digit classes produced (of 10)", "n_classes", 0)]

    def value(s, key, digits):
        v = s.get(key)
        if key == "high_quality" and v is not None:
            return f"{100 * v:.1f}"
        if key == "inception_score" and not short and "inception_score_std" in s:
            return f"{v:.2f} ± {s['inception_score_std']:.2f}"
        return _fmt(v, digits)

    cond = scores.get("conditional")
    if short:
        text = ", ".join(f"{key} {value(scores, key, d)}" for _, key, d in rows)
        return text + (f", cond_acc {100 * cond['overall']:.1f}%" if cond else "")
    refs = references or {}
    header = ["score", f"samples (n={scores.get('n')})"] + list(refs)
    table = [header] + [[label, value(scores, key, d)] + [value(r, key, d) for r in refs.values()]
                        for label, key, d in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    key = "counts" if mixture else "class_counts"
    if key in scores:
        label = "high-quality points per mode" if mixture else "predicted digits"
        lines.append(f"{label}: " + " ".join(
            (f"{c}" if mixture else f"{k}:{c}") for k, c in enumerate(scores[key])))
    if cond:
        lines.append(format_conditional(cond))
    return "\n".join(lines)


def append_scores(path, scores: dict, epoch=None, step=None) -> str:
    """Append one row of ``scores`` to the CSV ``path`` (header written when the file is new)."""
    mixture = scores.get("dataset") in ("ring", "grid")
    row = {"epoch": epoch if epoch is not None else scores.get("epoch"),
           "step": step if step is not None else scores.get("step"), **scores}
    if mixture:
        columns = MIXTURE_COLUMNS
        row["counts"] = " ".join(str(c) for c in scores["counts"])
    else:
        columns = MNIST_COLUMNS
        row.update({f"count_{k}": c for k, c in enumerate(scores["class_counts"])})
        cond = scores.get("conditional")
        if cond:  # a conditional model's eval.csv has its own, wider header

            columns = MNIST_COLUMNS + CONDITIONAL_COLUMNS[2:]
            row.update({"n_per_class": cond["n_per_class"], "cond_acc": cond["overall"],
                        **{f"cond_acc_{k}": v for k, v in enumerate(cond["per_digit"])}})
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        if header and header != columns:
            raise ValueError(f"{path} holds other columns ({header[:4]}...); not appending "
                             f"{scores.get('dataset')} scores to it")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)
    return path

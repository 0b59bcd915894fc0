"""MNIST scores of trained generators beside the reference values, as a Markdown table.

    python examples/mnist_scores_table.py "MLP GAN, 20 epochs=runs/mlp/checkpoint.npz" \\
        "DCGAN, 2 epochs=runs/dcgan/checkpoint.npz" [--seeds 0 1 2] [--json scores.json]

Each argument is ``LABEL=CHECKPOINT`` (or just a checkpoint path); ``LABEL=CK1,CK2,...``
gives one run per training seed.  Every checkpoint is scored on 10,000 samples per noise
seed.  A row's ± is the spread over its checkpoints (the training seeds: mean ± std, ddof 1,
of each checkpoint's mean over the noise seeds) when it has several, else over ``--seeds``;
the table also has the reference rows: 10,000 MNIST training images against the test set
(the best a generator can do) and 10,000 images of uniform noise.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import minigan
from minigan.gan.scoring import score_checkpoint
from minigan.metrics import reference_scores

KEYS = ("frechet", "inception_score", "kl_uniform", "n_classes")


def cell(values, digits, ddof=0):
    v = np.asarray(values, float)
    return f"{v.mean():.{digits}f}" + (f" ± {v.std(ddof=ddof):.{digits}f}" if len(v) > 1 else "")


def row(label, runs, ddof=0):
    return (f"| {label} | {cell([r['frechet'] for r in runs], 2, ddof)} | "
            f"{cell([r['inception_score'] for r in runs], 2, ddof)} | "
            f"{cell([r['kl_uniform'] for r in runs], 3, ddof)} | {cell([r['n_classes'] for r in runs], 1, ddof)} |")


def per_checkpoint(runs):
    """One checkpoint's scores averaged over the noise seeds."""
    return {k: float(np.mean([r[k] for r in runs])) for k in KEYS} | {"epoch": runs[0].get("epoch")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="*", help="LABEL=CHECKPOINT or CHECKPOINT")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="noise seeds (default 0)")
    p.add_argument("--json", default=None, help="also write every score to this JSON file")
    args = p.parse_args(argv)
    minigan.tune_cpu()  # as the minigan command does, before any kernel runs
    ref = reference_scores()
    lines = ["| samples | Fréchet distance ↓ | Inception Score ↑ | KL(digits ‖ uniform) ↓ | digit classes |",
             "|---|---|---|---|---|",
             row("MNIST training images (reference: a perfect generator)", [ref["train"]]),
             row("uniform noise (reference)", [ref["noise"]])]
    everything = {"reference": ref, "runs": {}}
    for item in args.checkpoints:
        label, _, paths = item.rpartition("=") if "=" in item else (item, "", item)
        paths = paths.split(",")
        scored = [[score_checkpoint(path, seed=s) for s in args.seeds] for path in paths]
        everything["runs"][label] = dict(zip(paths, scored))
        # several checkpoints: the spread over training seeds; one: over noise seeds
        runs, ddof = ([per_checkpoint(r) for r in scored], 1) if len(paths) > 1 else (scored[0], 0)
        epoch = runs[0].get("epoch")
        what = f"epoch {epoch}" + (f", {len(paths)} training seeds" if len(paths) > 1 else "")
        lines.append(row(f"{label} ({what})", runs, ddof))
        print(f"{label}: " + ", ".join(f"{k} {cell([r[k] for r in runs], 3, ddof)}" for k in KEYS), flush=True)
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1)


if __name__ == "__main__":
    main()

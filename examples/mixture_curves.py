"""Plot the mode scores of 2-D mixture runs epoch by epoch, one line per run.

    python examples/mixture_curves.py runs/grid2-s0 runs/grid2-s1 ... --out curves.png

Reads each run's ``eval.csv`` (written every epoch by ``minigan train --dataset
ring|grid``) and draws three panels against the epoch: % high quality, modes
covered and reverse KL, with the run's directory name as its label.  ``--aim``
draws a dashed line at a high-quality target, in percent.
"""
from __future__ import annotations

import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (("high_quality", "% high quality", 100.0), ("modes_covered", "modes covered", 1.0),
          ("reverse_kl", "reverse KL", 1.0))


def read_curve(run: str) -> dict:
    path = os.path.join(run, "eval.csv")
    if not os.path.exists(path):
        raise SystemExit(f"{run}: no eval.csv (not a run directory of minigan train?)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "modes_covered" not in rows[0]:
        raise SystemExit(f"{path}: no mixture scores in it")
    return {"epoch": [int(r["epoch"]) for r in rows],
            **{key: [float(r[key]) * scale for r in rows] for key, _, scale in PANELS}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories, each holding an eval.csv")
    p.add_argument("--out", default="mixture_curves.png")
    p.add_argument("--aim", type=float, default=None, help="a high-quality target in percent, drawn dashed")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    curves = [(os.path.basename(os.path.normpath(r)), read_curve(r)) for r in args.runs]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (key, label, _) in zip(axes, PANELS):
        for name, c in curves:
            ax.plot(c["epoch"], c[key], lw=1, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if args.aim is not None:
        axes[0].axhline(args.aim, ls="--", color="k", lw=1)
    axes[0].legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

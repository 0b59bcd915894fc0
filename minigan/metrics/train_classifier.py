"""Train the MNIST classifier behind minigan's sample scores and write its weights.

    python -m minigan.metrics.train_classifier [--epochs 10] [--seed 0] [--out PATH]

Without ``--out`` it rewrites the shipped file ``minigan/metrics/mnist_classifier.npz``
and prints its SHA-256, which must then be copied into
``minigan.metrics.classifier.WEIGHTS_SHA256`` (the loader refuses a file whose hash
differs).  With ``--out`` it also writes ``OUT.sha256`` beside the weights, which
:func:`minigan.metrics.load_classifier` checks when given that path.  It fails (exit 1)
if the test accuracy is below ``--min-accuracy`` (default 0.99).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .classifier import WEIGHTS_FILE, save_weights, train


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minigan.metrics.train_classifier",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help=f"weight file (default {WEIGHTS_FILE})")
    p.add_argument("--min-accuracy", type=float, default=0.99)
    args = p.parse_args(argv)
    model, info = train(args.epochs, args.batch_size, args.lr, args.seed)
    acc = info["test_accuracy"]
    if acc < args.min_accuracy:
        print(f"test accuracy {acc:.4f} is below {args.min_accuracy}; weights not written", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else WEIGHTS_FILE
    sha = save_weights(model, out, info)
    print(f"test accuracy {acc:.4f}; wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    print(f"SHA-256 {sha}")
    if args.out:
        Path(str(out) + ".sha256").write_text(f"{sha}  {out.name}\n")
    else:
        print("record it as WEIGHTS_SHA256 in minigan/metrics/classifier.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())

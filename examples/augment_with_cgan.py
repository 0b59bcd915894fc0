"""Data augmentation with a conditional GAN: does adding generated digits help a small labelled set?

For each seed:

* draw 100 real labelled training images per digit (1,000 in all) from the MNIST
  training set;
* (a) train a classifier on those 1,000 images;
* (b) train the same classifier, for the same number of steps, on those 1,000 plus
  ``--gen-per-digit`` images per digit drawn from a conditional generator checkpoint
  (labelled with the digit asked for; new noise for every seed);
* measure both on the 10,000 MNIST test images.

The classifier is the network behind minigan's scores (:func:`minigan.metrics.build_classifier`:
two stride-2 convs, Dense 128, dropout 0.5, Dense 10), trained with Adam 1e-3 on softmax
cross-entropy with random shifts of up to 2 pixels, the same recipe as the shipped one.
Prints mean ± std (over seeds, ddof=1) of both arms and writes them to ``--json``.

    python examples/augment_with_cgan.py --checkpoint runs/cconv/checkpoint.npz

Run ``minigan train --conditional`` first to get the checkpoint.  About 6 minutes on two
CPU cores with the defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import minigan
from minigan import io, optim
from minigan.data import load_mnist
from minigan.gan.sampler import generate, load_generator
from minigan.metrics.classifier import accuracy, build_classifier, prepare_images, train_step
from minigan.runtime import devices


def small_subset(x, y, per_digit, rng):
    """``per_digit`` images of each digit, drawn without replacement."""
    idx = np.concatenate([rng.choice(np.flatnonzero(y == k), per_digit, replace=False) for k in range(10)])
    return x[idx], y[idx]


def train_classifier(x, y, steps, seed, batch_size=64, lr=1e-3, shift=2):
    """The metrics classifier trained ``steps`` Adam steps on (x in [-1, 1] (N,1,28,28), y)."""
    devices.manual_seed(seed)
    model = build_classifier()
    opt = optim.Adam(model, lr=lr)
    rng = np.random.default_rng([seed, 11])
    model.train()
    order, pos = rng.permutation(len(x)), 0
    for _ in range(steps):
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(x)), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        train_step(model, opt, x[idx], y[idx], rng, shift)
    return model.eval()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="runs/cconv/checkpoint.npz",
                   help="a conditional checkpoint, or its run folder (default runs/cconv/checkpoint.npz, "
                        "what minigan train --conditional writes)")
    p.add_argument("--per-digit", type=int, default=100, help="real labelled images per digit (default 100)")
    p.add_argument("--gen-per-digit", type=int, default=500,
                   help="generated images per digit added in arm (b) (default 500)")
    p.add_argument("--steps", type=int, default=800,
                   help="Adam steps of batch 64 per classifier, both arms (default 800)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args(argv)
    minigan.tune_cpu()  # as the minigan command does, before any kernel runs

    ck = args.checkpoint
    if os.path.isdir(ck):
        ck = os.path.join(ck, "checkpoint.npz")
    if not os.path.isfile(ck):
        p.exit(2, f"{p.prog}: no checkpoint at {ck}: train a conditional GAN first (minigan train "
                  f"--conditional writes runs/cconv/checkpoint.npz) or pass --checkpoint PATH\n")
    try:
        meta = io.read_checkpoint_meta(ck)
    except io.CheckpointError as e:
        p.exit(2, f"{p.prog}: {e}\n")
    if not meta.get("conditional"):
        p.exit(2, f"{p.prog}: {ck} is not a conditional checkpoint (minigan train --conditional)\n")
    args.checkpoint = ck
    G, meta = load_generator(args.checkpoint)
    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")
    results = {"real": [], "real+generated": []}
    t0 = time.perf_counter()
    for seed in args.seeds:
        rng = np.random.default_rng([seed, 2024])
        xs, ys = small_subset(x_train, y_train, args.per_digit, rng)
        x_real, y_real = prepare_images(xs), ys.astype(np.int64)
        y_gen = np.repeat(np.arange(10), args.gen_per_digit)
        gen = generate(G, meta["model"], len(y_gen), seed=10_000 + seed, labels=y_gen)
        x_aug = np.concatenate([x_real, prepare_images(gen)])
        y_aug = np.concatenate([y_real, y_gen])
        for arm, (x, y) in (("real", (x_real, y_real)), ("real+generated", (x_aug, y_aug))):
            model = train_classifier(x, y, args.steps, seed)
            acc = accuracy(model, x_test, y_test)
            results[arm].append(acc)
            print(f"seed {seed}, {arm:>14} ({len(x)} images): test accuracy {100 * acc:.2f}%  "
                  f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    summary = {arm: {"mean": float(np.mean(a)), "std": float(np.std(a, ddof=1)) if len(a) > 1 else 0.0,
                     "runs": [float(v) for v in a]} for arm, a in results.items()}
    print(f"\n{args.per_digit} real images per digit; arm (b) adds {args.gen_per_digit} generated per digit "
          f"from {args.checkpoint}; {args.steps} steps of batch 64; seeds {args.seeds}")
    for arm, s in summary.items():
        print(f"  {arm:>14}: {100 * s['mean']:.2f} ± {100 * s['std']:.2f} %  "
              f"({', '.join(f'{100 * v:.2f}' for v in s['runs'])})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "results": summary,
                       "seconds": round(time.perf_counter() - t0, 1)}, f, indent=2)
    return summary


if __name__ == "__main__":
    main()

"""``minigan eval``: a trained generator's scores, appended to its run's eval.csv."""
from __future__ import annotations

import os
import sys

from ..gan.scoring import score_checkpoint
from ..metrics import append_scores, format_scores, reference_for
from ..metrics.scores import N_SAMPLES
from .args import MAX_SAMPLES, SEED, add_threads, checkpoint_file, number, output_file

REFERENCE_N = N_SAMPLES  # the MNIST images behind the reference rows


def add_parser(sub):
    p = sub.add_parser("eval", help="score a trained generator (Fréchet distance, Inception Score, modes)",
                       description="Score the generator in a checkpoint and append the scores to the "
                                   "run's eval.csv (beside the checkpoint).  MNIST: 10,000 samples; "
                                   "Fréchet distance on the MNIST classifier's features against the test "
                                   "set, classifier Inception Score, digit histogram and its KL from "
                                   "uniform, digit classes produced; with reference values for MNIST "
                                   "training images and for noise.  2-D mixtures: 2,500 points; modes "
                                   "covered, % high quality, reverse KL; beside points drawn from the "
                                   "mixture itself.  A conditional checkpoint adds its conditional "
                                   "accuracy: the "
                                   "fraction of samples the classifier assigns to the digit asked for, "
                                   "per digit and overall (N/10 per digit).")
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint.npz written by minigan train, or the run folder holding it")
    p.add_argument("--n", type=number(int, 0, MAX_SAMPLES), default=None,
                   help=f"samples to score (default 10000 on MNIST, 2500 on a mixture; at most "
                        f"{MAX_SAMPLES:,})")
    p.add_argument("--seed", type=SEED, default=None,
                   help="noise seed (default: the run's own seed, which the trainer scores with)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="where to score (default cpu); gpu needs CuPy seeing a GPU (README: On a GPU); "
                        "a checkpoint written on either device loads on both")
    p.add_argument("--csv", default=None, help="CSV to append to (default: eval.csv beside the checkpoint)")
    p.add_argument("--no-csv", action="store_true", help="print only")
    p.add_argument("--no-reference", action="store_true", help="skip the reference columns")
    p.add_argument("--live", action="store_true",
                   help="from a run trained with --g-ema: score the live generator, not the weight "
                        "average")
    add_threads(p)


def run(args):
    ck = checkpoint_file(args.checkpoint, "eval")
    path = None
    if not args.no_csv:  # checked before the minutes of scoring
        path = args.csv or os.path.join(os.path.dirname(os.path.abspath(ck)), "eval.csv")
        output_file(path, "--csv" if args.csv else "the scores' CSV", "eval")
    scores = score_checkpoint(ck, args.n, args.seed, args.device, averaged=not args.live)
    refs = None if args.no_reference else reference_for(scores["dataset"])
    where = (("conditional " if "conditional" in scores else "") + f"{scores['model']}"
             + (f", pack {scores['pack']}" if scores["dataset"] != "mnist" else ""))
    which = {"averaged": ", weight-averaged generator", "live": ""}.get(scores.get("generator"), "")
    epochs = scores.get("epoch")
    after = (f"after {epochs} epoch{'' if epochs == 1 else 's'} (step {scores.get('step')})"
             if epochs is not None else f"at step {scores.get('step')}")
    print(f"{ck}: {where} on {scores['dataset']}, {after}{which}, noise seed {scores['seed']}")
    print(format_scores(scores, refs))
    if refs and scores["dataset"] == "mnist" and args.n is not None and args.n < REFERENCE_N:
        print(f"minigan eval: warning: scored on --n {args.n:,} samples, but the reference rows come "
              f"from {REFERENCE_N:,} images; the Fréchet distance of fewer samples is larger (biased "
              f"upwards), so compare it with theirs only at --n {REFERENCE_N:,} (the default)",
              file=sys.stderr)
    if path is not None:
        append_scores(path, scores)
        print(f"appended to {path}")

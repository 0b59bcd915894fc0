"""``minigan train | sample | eval | bench | gradcheck | summary``.

``minigan gradcheck`` checks every built-in layer and loss against finite
differences; ``minigan gradcheck FILE.py:NAME --shape N,C,H,W`` checks a
layer of one's own (exit 0 when its gradients agree, 1 when one does not).
``minigan summary --model dcgan|mlp [--conditional]`` prints each network's
layers with their output shapes, parameters and multiply-adds.
"""
from __future__ import annotations

import argparse
import os
import sys


def _positive(kind):
    def parse(s):
        v = kind(s)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {s}")
        return v
    return parse


def _add_train(sub):
    p = sub.add_parser("train", help="train a GAN on MNIST or a 2-D mixture",
                       description="Train a GAN on MNIST.  With no arguments: the DCGAN, on the CPU, "
                                   "for 2 epochs; pictures go to runs/<model>/.  With --dataset ring or "
                                   "grid: PacGAN's MLP pair on that 2-D Gaussian mixture (defaults: "
                                   "15 epochs of 100,000 points, batch 100, Adam 2e-4 decaying "
                                   "linearly); a scatter plot and the mode scores each epoch; pictures "
                                   "go to runs/<dataset>-pack<m>/.")
    p.add_argument("--dataset", choices=["mnist", "ring", "grid"], default=None,
                   help="training data (default mnist)")
    p.add_argument("--pack", type=_positive(int), default=None,
                   help="PacGAN packing: the discriminator judges this many samples at once "
                        "(2-D mixtures; default 1, a plain GAN)")
    p.add_argument("--eval-every", type=int, default=None,
                   help="score the generator every N epochs into eval.csv (MNIST: Fréchet distance, "
                        "Inception Score, ...; default 0 = never on MNIST, 1 on the mixtures)")
    p.add_argument("--model", choices=["dcgan", "mlp", "mlp2d"], default=None,
                   help="network (default dcgan on MNIST, mlp2d on the mixtures)")
    p.add_argument("--loss", choices=["bce", "lsgan", "hinge"], default=None, help="GAN loss (default bce)")
    p.add_argument("--conditional", action="store_true", default=None,
                   help="class-conditional GAN (MNIST): the digit label is joined to G's noise and to "
                        "D's input; the sample grid has one row per digit; default out runs/c<model>")
    p.add_argument("--epochs", type=_positive(int), default=None,
                   help="epochs (default 2 for the DCGAN, 10 for the conditional DCGAN, 30 for the "
                        "MLP, 15 on the 2-D mixtures)")
    p.add_argument("--batch-size", type=_positive(int), default=None, help="batch size (default 64)")
    p.add_argument("--lr", type=_positive(float), default=None, help="Adam learning rate (default 2e-4)")
    p.add_argument("--lr-d", type=_positive(float), default=None,
                   help="the discriminator's learning rate (default: the same as --lr)")
    p.add_argument("--lr-decay", choices=["none", "linear"], default=None,
                   help="learning-rate schedule over the epochs (default none on MNIST, linear on the "
                        "mixtures)")
    p.add_argument("--d-bias-init", choices=["zeros", "data"], default=None,
                   help="2-D mixtures: 'data' starts D's first-layer hyperplanes through random points "
                        "of the training data's bounding box (default 'zeros': all through the origin)")
    p.add_argument("--g-ema", type=float, default=None, metavar="DECAY",
                   help="keep an exponential moving average of the generator's weights, avg = "
                        "DECAY*avg + (1-DECAY)*weights after every generator step (e.g. 0.999, about "
                        "the last 1,000 steps); the average is what is scored, drawn each epoch and "
                        "sampled from the checkpoint, training goes on with the live weights "
                        "(default 0: off)")
    p.add_argument("--beta1", type=float, default=None, help="Adam beta1 (default 0.5)")
    p.add_argument("--beta2", type=float, default=None, help="Adam beta2 (default 0.999)")
    p.add_argument("--device", choices=["cpu", "gpu"], default=None,
                   help="where to compute (default cpu); gpu needs CuPy seeing a GPU (README: On a GPU)")
    p.add_argument("--width", type=_positive(float), default=None,
                   help="scale the networks' hidden sizes and channel counts (default 1: the seed networks)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output directory (default runs/<model>)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    p.add_argument("--checkpoint-every", type=_positive(int), default=None,
                   help="steps between mid-epoch checkpoints (default 200)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--mnist-dir", default=None, help="a directory holding the four MNIST IDX files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _train(args):
    from .gan.config import CHECKPOINT, ConfigError, run_config  # noqa: PLC0415
    from .gan.run_log import remove_logs  # noqa: PLC0415
    from .gan.trainer import Trainer  # noqa: PLC0415

    if args.mnist_dir:
        os.environ["MINIGAN_MNIST_DIR"] = args.mnist_dir
    given = {k: v for k, v in {
        "dataset": args.dataset, "model": args.model, "loss": args.loss, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "beta1": args.beta1, "beta2": args.beta2,
        "device": args.device, "seed": args.seed, "out": args.out, "limit": args.limit,
        "checkpoint_every": args.checkpoint_every, "pack": args.pack, "lr_d": args.lr_d,
        "lr_decay": args.lr_decay, "d_bias_init": args.d_bias_init, "g_ema": args.g_ema,
        "eval_every": args.eval_every, "conditional": args.conditional, "width": args.width,
    }.items() if v is not None}
    try:
        cfg = run_config(given, resume=args.resume)
    except ConfigError as e:
        raise SystemExit(f"minigan train: {e}") from None
    out, ck = cfg.out, os.path.join(cfg.out, CHECKPOINT)
    if not args.resume:
        remove_logs(out)  # a new run starts new logs
    trainer = Trainer(cfg, progress=not args.quiet)
    if args.resume:
        trainer.restore(ck)
        print(f"resuming {cfg.model} from epoch {trainer.epoch + 1}, step {trainer.step_in_epoch} "
              f"of {trainer.steps_per_epoch}")
    elif cfg.is_mixture:
        print(f"training the {cfg.model} GAN (pack {cfg.pack}, {cfg.loss} loss) on {len(trainer.data)} "
              f"{cfg.dataset} points for {cfg.epochs} epoch(s) of {trainer.steps_per_epoch} steps "
              f"on the {cfg.device}")
    else:
        kind = "conditional " if cfg.conditional else ""
        print(f"training the {kind}{cfg.model} GAN ({cfg.loss} loss) on {len(trainer.data)} images for "
              f"{cfg.epochs} epoch(s) of {trainer.steps_per_epoch} steps on the {cfg.device}")
    trainer.fit()
    print(f"done. Pictures: {os.path.join(out, 'samples')}/ (a grid per epoch), "
          f"{os.path.join(out, 'losses.png')}, {os.path.join(out, 'gradient_flow.png')}; "
          f"log: {os.path.join(out, 'log.csv')}; checkpoint: {ck}")


def _add_sample(sub):
    p = sub.add_parser("sample", help="draw samples from a trained generator",
                       description="Write a PNG grid of generated digits, or with an .npz OUT the raw "
                                   "images (key 'images', float32 in [0, 1], shape (N, 28, 28)).  For a "
                                   "2-D mixture model: a scatter plot over the true modes, or with an "
                                   ".npz OUT the points (key 'points', float32, shape (N, 2)).  From a "
                                   "conditional checkpoint: --digit D gives N images of digit D; "
                                   "without --digit, a grid with one row per digit (10 rows of "
                                   "--per-row images).")
    p.add_argument("--checkpoint", required=True, help="a checkpoint.npz written by minigan train")
    p.add_argument("--n", type=_positive(int), default=64, help="how many samples (default 64)")
    p.add_argument("--out", default="samples.png", help="output .png or .npz (default samples.png)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--digit", type=int, default=None,
                   help="the digit 0-9 to draw (conditional checkpoints only)")
    p.add_argument("--per-row", type=_positive(int), default=8,
                   help="conditional checkpoint without --digit: images per digit row (default 8)")
    p.add_argument("--live", action="store_true",
                   help="from a run trained with --g-ema: draw from the live generator, not the "
                        "weight average")


def _sample(args):
    from .gan.sampler import sample, sample_rows, write_samples  # noqa: PLC0415
    from .io import read_checkpoint_meta  # noqa: PLC0415

    if not os.path.exists(args.checkpoint):
        raise SystemExit(f"minigan sample: no checkpoint at {args.checkpoint}")
    meta = read_checkpoint_meta(args.checkpoint)
    if args.digit is not None and not meta.get("conditional", False):
        raise SystemExit(f"minigan sample: --digit needs a conditional checkpoint (minigan train "
                         f"--conditional); {args.checkpoint} holds an unconditional "
                         f"{meta.get('model')!r} generator")
    if args.digit is not None and not 0 <= args.digit <= 9:
        raise SystemExit(f"minigan sample: --digit must be one of 0-9, got {args.digit}")
    if meta.get("conditional", False) and args.digit is None:
        images = sample_rows(args.checkpoint, args.per_row, args.seed, args.device, not args.live)
        write_samples(images, args.out, row_labels=list(range(10)), nrow=args.per_row)
        print(f"wrote {len(images)} samples, one row of {args.per_row} per digit, to {args.out}")
        return
    images = sample(args.checkpoint, args.n, args.seed, args.device, digit=args.digit,
                    averaged=not args.live)
    write_samples(images, args.out, dataset=meta.get("dataset"))
    what = f"samples of digit {args.digit}" if args.digit is not None else "samples"
    print(f"wrote {args.n} {what} to {args.out}")


def _add_eval(sub):
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
    p.add_argument("--checkpoint", required=True, help="a checkpoint.npz written by minigan train")
    p.add_argument("--n", type=_positive(int), default=None,
                   help="samples to score (default 10000 on MNIST, 2500 on a mixture)")
    p.add_argument("--seed", type=int, default=None,
                   help="noise seed (default: the run's own seed, which the trainer scores with)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--csv", default=None, help="CSV to append to (default: eval.csv beside the checkpoint)")
    p.add_argument("--no-csv", action="store_true", help="print only")
    p.add_argument("--no-reference", action="store_true", help="skip the reference columns")
    p.add_argument("--live", action="store_true",
                   help="from a run trained with --g-ema: score the live generator, not the weight "
                        "average")


def _eval(args):
    from .gan.scoring import score_checkpoint  # noqa: PLC0415
    from .metrics import append_scores, format_scores, reference_for  # noqa: PLC0415

    if not os.path.exists(args.checkpoint):
        raise SystemExit(f"minigan eval: no checkpoint at {args.checkpoint}")
    scores = score_checkpoint(args.checkpoint, args.n, args.seed, args.device, averaged=not args.live)
    refs = None if args.no_reference else reference_for(scores["dataset"])
    where = (("conditional " if "conditional" in scores else "") + f"{scores['model']}"
             + (f", pack {scores['pack']}" if scores["dataset"] != "mnist" else ""))
    which = {"averaged": ", weight-averaged generator", "live": ""}.get(scores.get("generator"), "")
    print(f"{args.checkpoint}: {where} on {scores['dataset']}, epoch {scores.get('epoch')}, "
          f"step {scores.get('step')}{which}, noise seed {scores['seed']}")
    print(format_scores(scores, refs))
    if not args.no_csv:
        path = args.csv or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "eval.csv")
        append_scores(path, scores)
        print(f"appended to {path}")


def _quiet_on_closed_pipe(handler):
    """A reader that stops early (``minigan summary | head``) closes stdout: stop writing,
    without a traceback (Python would also complain once more at exit, on flushing)."""
    def run(args):
        try:
            return handler(args)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    return run


def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck", help="check layers' gradients against finite differences",
                       description="With no target: check every built-in layer and loss against central "
                                   "differences in float64.  With FILE.py:NAME: check your own layer, "
                                   "NAME being a minigan.nn.Layer subclass (made with no arguments) or "
                                   "a function that returns a Layer, at a random input of --shape: "
                                   "dL/dx and every parameter gradient.  Exit 0 when they agree, 1 when "
                                   "one does not (the report names it and where), 2 when the layer "
                                   "cannot be checked.")
    p.add_argument("target", nargs="?", default=None, metavar="FILE.py:NAME",
                   help="a layer of your own to check (default: the built-in cases)")
    p.add_argument("--shape", default=None, metavar="N,C,H,W",
                   help="the input's shape, batch first: N,F or N,C,H,W (with a target)")
    # --seed and --tol are parsed by the handler, so that a bad value is one line like the others
    p.add_argument("--seed", default=None,
                   help="seed of the input, dy and the layer's initialisation (with a target; default 0)")
    p.add_argument("--tol", default="1e-6", help="relative error allowed (default 1e-6)")


@_quiet_on_closed_pipe
def _gradcheck(args):
    import math  # noqa: PLC0415

    from .cli_gradcheck import TargetError, run_target  # noqa: PLC0415

    # a usage error exits 2 (through main), apart from 1: "a gradient disagrees"
    try:
        tol = float(args.tol)
    except ValueError:
        tol = math.nan
    if not (math.isfinite(tol) and tol > 0):
        raise TargetError(f"--tol must be a positive number, got {args.tol!r}")
    try:
        seed = 0 if args.seed is None else int(args.seed)
    except ValueError:
        raise TargetError(f"--seed must be an integer, got {args.seed!r}") from None
    if args.target is None:
        for flag in ("shape", "seed"):
            if getattr(args, flag) is not None:
                raise TargetError(f"--{flag} needs a target FILE.py:NAME")
        from .gradcheck import run_standard  # noqa: PLC0415

        return 0 if run_standard(tol=tol) else 1
    if args.shape is None:
        raise TargetError(f"checking {args.target} needs --shape (N,F or N,C,H,W)")
    return 0 if run_target(args.target, args.shape, seed=seed, tol=tol) else 1


def _add_summary(sub):
    p = sub.add_parser("summary", help="the layers of a model: shapes, parameters, multiply-adds",
                       description="Print the generator's and the discriminator's layers: output shape, "
                                   "trainable parameters and multiply-adds per sample (in the GEMMs of "
                                   "Dense and convolution layers), with the totals.")
    p.add_argument("--model", choices=["dcgan", "mlp"], default="dcgan", help="network (default dcgan)")
    p.add_argument("--conditional", action="store_true",
                   help="the class-conditional networks (a LabelJoin first in G and D)")


@_quiet_on_closed_pipe
def _summary(args):
    from .gan.models import build, noise_dim  # noqa: PLC0415

    G, D = build(args.model, conditional=args.conditional)
    image = (1, 28, 28) if args.model == "dcgan" else (784,)
    # a conditional model takes the same noise and images: its LabelJoin adds the labels
    print(G.summary((noise_dim(args.model),), name="G"))
    print()
    print(D.summary(image, name="D"))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="minigan", description="A from-scratch GAN engine.",
        epilog="Every command first applies minigan.tune_cpu(): OpenBLAS's idle threads spin ~0.4 ms "
               "instead of 0.1 s, Numba's OpenMP workers sleep when idle, freed memory stays in the "
               "heap.  Your own OPENBLAS_THREAD_TIMEOUT, OMP_WAIT_POLICY or MALLOC_*_THRESHOLD_ wins.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_sample(sub)
    _add_eval(sub)
    pb = sub.add_parser("bench", help="time layers and train steps", add_help=False)
    pb.add_argument("rest", nargs=argparse.REMAINDER)
    _add_gradcheck(sub)
    _add_summary(sub)
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "bench":  # the benchmark harness parses its own arguments
        from .cli_bench import main as bench_main  # noqa: PLC0415

        return bench_main(argv[1:])
    args = parser.parse_args(argv)
    from .io import CheckpointError  # noqa: PLC0415
    from .tuning import tune_cpu  # noqa: PLC0415

    tune_cpu()
    try:
        handler = {"train": _train, "sample": _sample, "eval": _eval, "gradcheck": _gradcheck,
                   "summary": _summary}[args.command]
        return handler(args) or 0
    except (CheckpointError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"minigan {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

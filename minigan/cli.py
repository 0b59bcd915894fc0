"""``minigan train | sample | eval | bench | gradcheck | summary``.

``minigan gradcheck`` checks every built-in layer and loss against finite
differences; ``minigan gradcheck FILE.py:NAME --shape N,C,H,W`` checks a
layer of one's own (exit 0 when its gradients agree, 1 when one does not).
``minigan summary --model dcgan|mlp [--conditional]`` prints each network's
layers with their output shapes, parameters and multiply-adds.

Every bad option and every OS error (no space, no permission, a file where a folder
should be) is one line on stderr that names the option or the path, with exit status
1 or 2; Ctrl-C exits with 130, and ``minigan train`` first saves its run.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys

MAX_SAMPLES = 100_000  # --n of sample and eval: 100,000 MNIST images are 314 MB of float32
MAX_PICTURE = 2_500  # images in one picture: a 50 x 50 grid, about 4,500 pixels a side


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad option reported in one line (not the whole usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _number(kind, low, high=None, bound=None):
    """An argparse type: ``kind`` (int or float), finite, ``low < v`` (``low <= v`` when
    given as ``(low, True)``) and at most ``high``; ``bound`` words the range."""
    low, inclusive = low if isinstance(low, tuple) else (low, False)
    what = "an integer" if kind is int else "a number"
    bound = bound or ((f">= {low}" if inclusive else f"> {low}")
                      + (f" and <= {high:,}" if high is not None else ""))

    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {s!r}") from None
        if not math.isfinite(v) or v < low or (v == low and not inclusive) or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"must be {what} {bound}, got {s}")
        return v
    return parse


def _positive(kind):
    return _number(kind, 0)


SEED = _number(int, (0, True), 2**63 - 1, bound=">= 0 (and below 2**63)")


def _add_train(sub):
    p = sub.add_parser("train", help="train a GAN on MNIST or a 2-D mixture",
                       description="Train a GAN on MNIST.  With no arguments: the lean conv pair, on the "
                                   "CPU, for 3 epochs at Adam 1.5e-3, drawing from the generator's "
                                   "weight average; pictures go to runs/<model>/.  --model dcgan: the "
                                   "TensorFlow tutorial's DCGAN and recipe (2 epochs at 2e-4).  With --dataset ring or "
                                   "grid: PacGAN's MLP pair on that 2-D Gaussian mixture (defaults: "
                                   "15 epochs of 100,000 points, batch 100, Adam 2e-4 decaying "
                                   "linearly); a scatter plot and the mode scores each epoch; pictures "
                                   "go to runs/<dataset>-pack<m>/.")
    p.add_argument("--dataset", choices=["mnist", "ring", "grid"], default=None,
                   help="training data (default mnist)")
    p.add_argument("--pack", type=_positive(int), default=None,
                   help="PacGAN packing: the discriminator judges this many samples at once "
                        "(2-D mixtures; default 1, a plain GAN)")
    p.add_argument("--eval-every", type=_number(int, (0, True)), default=None,
                   help="score the generator every N epochs into eval.csv (MNIST: Fréchet distance, "
                        "Inception Score, ...; default 0 = never on MNIST, 1 on the mixtures)")
    p.add_argument("--model", choices=["conv", "dcgan", "mlp", "mlp2d"], default=None,
                   help="network (default conv on MNIST, the lean conv pair; mlp2d on the mixtures)")
    p.add_argument("--loss", choices=["bce", "lsgan", "hinge"], default=None, help="GAN loss (default bce)")
    p.add_argument("--conditional", action="store_true", default=None,
                   help="class-conditional GAN (MNIST): the digit label is joined to G's noise and to "
                        "D's input; the sample grid has one row per digit; default out runs/c<model>")
    p.add_argument("--clusters", type=_number(int, (0, True)), default=None, metavar="K",
                   help="self-conditioning (unconditional models): the training data falls into K "
                        "k-means clusters, G draws a cluster with its share of the data and D judges each "
                        "sample against its cluster; no labels are used (default 50 for the conv pair, "
                        "0 = off otherwise)")
    p.add_argument("--epochs", type=_positive(int), default=None,
                   help="epochs (default 3 for the conv pair, 8 when conditional; 2 for the DCGAN, 10 "
                        "when conditional; 30 for the MLP; 15 on the 2-D mixtures)")
    p.add_argument("--batch-size", type=_positive(int), default=None, help="batch size (default 64)")
    p.add_argument("--lr", type=_positive(float), default=None, help="Adam learning rate (default 1.5e-3 for the conv pair, 4e-4 when "
                        "conditional; 2e-4 otherwise)")
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
                        "(default 0.995 for the conv pair, 0.999 for the MLP and the conditional "
                        "conv pair; 0, off, for the DCGAN and the mixtures)")
    p.add_argument("--beta1", type=float, default=None, help="Adam beta1 (default 0.5)")
    p.add_argument("--beta2", type=float, default=None, help="Adam beta2 (default 0.999)")
    p.add_argument("--device", choices=["cpu", "gpu"], default=None,
                   help="where to compute (default cpu); gpu needs CuPy seeing a GPU (README: On a GPU)")
    p.add_argument("--width", type=_positive(float), default=None,
                   help="scale the networks' hidden sizes and channel counts (default 1: the seed networks)")
    p.add_argument("--seed", type=SEED, default=None, help="random seed (default 0)")
    p.add_argument("--out", default=None,
                   help="output folder (default runs/<model>, or runs/<model>-2, -3, ... when that "
                        "holds a run); a folder that holds a run needs --resume or --overwrite")
    p.add_argument("--limit", type=_number(int, (0, True)), default=None,
                   help="train on the first N images only")
    p.add_argument("--checkpoint-every", type=_positive(int), default=None,
                   help="steps between mid-epoch checkpoints (default 200)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (its checkpoint, logs and pictures) with a new one")
    p.add_argument("--mnist-dir", default=None, help="a directory holding the four MNIST IDX files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _train(args):
    from .gan.config import ConfigError, default_out, run_config  # noqa: PLC0415
    from .gan.run_log import CHECKPOINT, clear_run  # noqa: PLC0415
    from .gan.trainer import Trainer, TrainingInterrupted  # noqa: PLC0415

    if args.mnist_dir:
        os.environ["MINIGAN_MNIST_DIR"] = args.mnist_dir
    given = {k: v for k, v in {
        "dataset": args.dataset, "model": args.model, "loss": args.loss, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "beta1": args.beta1, "beta2": args.beta2,
        "device": args.device, "seed": args.seed, "out": args.out, "limit": args.limit,
        "checkpoint_every": args.checkpoint_every, "pack": args.pack, "lr_d": args.lr_d,
        "lr_decay": args.lr_decay, "d_bias_init": args.d_bias_init, "g_ema": args.g_ema,
        "eval_every": args.eval_every, "conditional": args.conditional, "width": args.width,
        "clusters": args.clusters,
    }.items() if v is not None}
    try:
        cfg = run_config(given, resume=args.resume, overwrite=args.overwrite)
    except ConfigError as e:
        raise SystemExit(f"minigan train: {e}") from None
    out, ck = cfg.out, os.path.join(cfg.out, CHECKPOINT)
    # the data is loaded and checked against the batch before anything in the folder changes
    trainer = Trainer(cfg, progress=not args.quiet)
    if args.resume:
        trainer.restore(ck)
        print(f"resuming {cfg.model} in {out} from epoch {trainer.epoch + 1}, step {trainer.step_in_epoch} "
              f"of {trainer.steps_per_epoch}")
    else:
        if args.overwrite and clear_run(out):
            print(f"--overwrite: removed the earlier run in {out}")
        default = default_out(cfg.dataset, cfg.model, cfg.conditional, cfg.pack)
        if "out" not in given and out != default:
            print(f"{default} holds an earlier run; this one goes to {out} "
                  f"(--out {default} --overwrite would replace that one)")
        what = "points" if cfg.is_mixture else "images"
        selfc = f", self-conditioned on {cfg.clusters} clusters of the {what}" if cfg.clusters else ""
        if cfg.is_mixture:
            print(f"training the {cfg.model} GAN (pack {cfg.pack}, {cfg.loss} loss{selfc}) on {len(trainer.data)} "
                  f"{cfg.dataset} points for {cfg.epochs} epoch(s) of {trainer.steps_per_epoch} steps "
                  f"on the {cfg.device}, into {out}")
        else:
            kind = "conditional " if cfg.conditional else ""
            print(f"training the {kind}{cfg.model} GAN ({cfg.loss} loss{selfc}) on {len(trainer.data)} images for "
                  f"{cfg.epochs} epoch(s) of {trainer.steps_per_epoch} steps on the {cfg.device}, into {out}")
    resume = f"minigan train --resume --out {out}"
    try:
        with _stop_on_ctrl_c(trainer):
            trainer.fit()
    except TrainingInterrupted as e:
        where = (f"saved the run at step {e.step} in {e.checkpoint}" if e.saved else
                 f"the last good checkpoint is {e.checkpoint} (step {e.step})" if e.step is not None else
                 "no checkpoint was written yet")
        print(f"minigan train: stopped by Ctrl-C; {where}. "
              + (f"Continue with: {resume}" if e.step is not None else ""), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        kept = (f"the last checkpoint, {ck} (step {trainer.checkpoint_step}), is intact. Continue with: {resume}"
                if trainer.checkpoint_step is not None else "no checkpoint was written yet")
        print(f"minigan train: stopped by Ctrl-C at once; {kept}", file=sys.stderr)
        return 130
    print(f"done. Pictures: {os.path.join(out, 'samples')}/ (a grid per epoch), "
          f"{os.path.join(out, 'samples.gif')} (the epochs animated), "
          f"{os.path.join(out, 'losses.png')}, {os.path.join(out, 'gradient_flow.png')}; "
          f"log: {os.path.join(out, 'log.csv')}; checkpoint: {ck}")


@contextlib.contextmanager
def _stop_on_ctrl_c(trainer):
    """While training: the first Ctrl-C (SIGINT) asks the trainer to stop between two steps
    and save (:meth:`minigan.gan.trainer.Trainer.request_stop`); a second one stops at once,
    abandoning the step under way (the last checkpoint stays as it was)."""
    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.request_stop()
        print("\nminigan train: stopping after this step to save the run (Ctrl-C again: stop at once)",
              file=sys.stderr, flush=True)

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: Ctrl-C keeps its usual meaning
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _add_sample(sub):
    p = sub.add_parser("sample", help="draw samples from a trained generator",
                       description="Write a PNG grid of generated digits, or with an .npz OUT the raw "
                                   "images (key 'images', float32 in [0, 1], shape (N, 28, 28)).  For a "
                                   "2-D mixture model: a scatter plot over the true modes, or with an "
                                   ".npz OUT the points (key 'points', float32, shape (N, 2)).  From a "
                                   "conditional checkpoint: --digit D gives N images of digit D; "
                                   "without --digit, a grid with one row per digit (10 rows of "
                                   "--per-row images).  With --interpolate: a latent interpolation, "
                                   "--n rows of --steps images, each row walking from one noise "
                                   "vector to another.")
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint.npz written by minigan train, or the run folder holding it")
    p.add_argument("--n", type=_number(int, 0, MAX_SAMPLES), default=None,
                   help=f"how many samples (default 64; at most {MAX_PICTURE:,} in a picture, "
                        f"{MAX_SAMPLES:,} in an .npz); from a conditional checkpoint without --digit, "
                        f"a multiple of 10 (N/10 per digit row); with --interpolate, the rows")
    p.add_argument("--out", default="samples.png",
                   help="output picture (.png, .jpg) or array (.npz) (default samples.png)")
    p.add_argument("--seed", type=SEED, default=0, help="noise seed (default 0)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--digit", type=int, default=None,
                   help="the digit 0-9 to draw (conditional checkpoints only)")
    p.add_argument("--per-row", type=_number(int, 0, MAX_PICTURE // 10), default=None,
                   help="conditional checkpoint without --digit: images per digit row (default 8, "
                        "or --n / 10)")
    p.add_argument("--live", action="store_true",
                   help="from a run trained with --g-ema: draw from the live generator, not the "
                        "weight average")
    p.add_argument("--interpolate", nargs="?", const="slerp", choices=["slerp", "lerp"], default=None,
                   help="a latent interpolation: --n rows (default 8; 10, one per digit, from a "
                        "conditional checkpoint without --digit) of --steps images, row r going from "
                        "noise vector 2r to 2r+1 of --seed (its ends are the samples 2r and 2r+1 "
                        "that 'minigan sample --n 2N' draws with that seed, and --digit).  Spherical "
                        "interpolation (slerp, "
                        "along the arc between the two vectors, keeping the norm of Gaussian noise) "
                        "by default; '--interpolate lerp' goes along the straight line.  A conditional "
                        "checkpoint keeps one digit per row: --digit, or 0-9 in turn")
    p.add_argument("--steps", type=_number(int, (2, True), MAX_PICTURE), default=None,
                   help="with --interpolate: images per row, both ends included (default 10)")


def _checkpoint_file(path, command):
    """The checkpoint ``--checkpoint`` names: the file, or ``checkpoint.npz`` in a run folder."""
    from .gan.run_log import CHECKPOINT  # noqa: PLC0415

    if os.path.isdir(path):
        inside = os.path.join(path, CHECKPOINT)
        if not os.path.isfile(inside):
            raise SystemExit(f"minigan {command}: --checkpoint {path} is a folder without a {CHECKPOINT}")
        return inside
    if not os.path.exists(path):
        raise SystemExit(f"minigan {command}: no checkpoint at {path}")
    return path


def _output_file(path, option, command):
    """Refuse, naming ``option``, an output ``path`` that is a folder or cannot be written."""
    from .gan.config import ConfigError, check_writable  # noqa: PLC0415

    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise SystemExit(f"minigan {command}: {option} {path} is a folder; give a file name")
    if os.path.lexists(path) and not os.access(path, os.W_OK):
        raise SystemExit(f"minigan {command}: {option} {path}: cannot write it")
    try:
        check_writable(os.path.dirname(path) or ".", f"{option} {path}")
    except ConfigError as e:
        raise SystemExit(f"minigan {command}: {e}") from None


def _sample(args):
    from .gan.sampler import OUTPUT_KINDS, sample, sample_rows, write_samples  # noqa: PLC0415
    from .io import read_checkpoint_meta  # noqa: PLC0415

    def refuse(msg):
        raise SystemExit(f"minigan sample: {msg}")

    _output_file(args.out, "--out", "sample")
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in OUTPUT_KINDS:
        refuse(f"--out {args.out}: write a picture (.png, .jpg, .jpeg) or an array (.npz), "
               f"not {ext or 'a name without an extension'!r}")
    ck = _checkpoint_file(args.checkpoint, "sample")
    meta = read_checkpoint_meta(ck)
    conditional = bool(meta.get("conditional", False))
    if args.digit is not None and not conditional:
        refuse(f"--digit needs a conditional checkpoint (minigan train --conditional); {ck} holds an "
               f"unconditional {meta.get('model')!r} generator")
    if args.digit is not None and not 0 <= args.digit <= 9:
        refuse(f"--digit must be one of 0-9, got {args.digit}")
    if args.interpolate is not None:
        return _interpolate(args, ck, meta, ext)
    if args.steps is not None:
        refuse("--steps is the length of an interpolation's rows: it needs --interpolate")
    rows = conditional and args.digit is None
    if args.per_row is not None and not rows:
        refuse("--per-row is for a conditional checkpoint without --digit (one row per digit)")
    if rows:
        if args.n is not None and args.n % 10:
            refuse(f"--n {args.n}: a conditional checkpoint without --digit draws one row per digit, "
                   f"so --n must be a multiple of 10 (or give --per-row, or --digit)")
        if args.n is not None and args.per_row is not None and args.n != 10 * args.per_row:
            refuse(f"--n {args.n} and --per-row {args.per_row} disagree: 10 rows of {args.per_row} "
                   f"are {10 * args.per_row} images")
        per_row = args.per_row or (args.n // 10 if args.n is not None else 8)
        n = 10 * per_row
    else:
        n = 64 if args.n is None else args.n
    if ext != ".npz" and n > MAX_PICTURE:
        refuse(f"--n {n}: at most {MAX_PICTURE:,} images fit in one picture; write an .npz for more")
    if rows:
        images = sample_rows(ck, per_row, args.seed, args.device, not args.live)
        write_samples(images, args.out, row_labels=list(range(10)), nrow=per_row)
        print(f"wrote {len(images)} samples, one row of {per_row} per digit, to {args.out}")
        return
    images = sample(ck, n, args.seed, args.device, digit=args.digit, averaged=not args.live)
    write_samples(images, args.out, dataset=meta.get("dataset"))
    what = f"samples of digit {args.digit}" if args.digit is not None else "samples"
    print(f"wrote {n} {what} to {args.out}")


def _interpolate(args, ck, meta, ext):
    """``minigan sample --interpolate``: rows of images between pairs of noise vectors."""
    from .gan.models import MIXTURE_MODEL  # noqa: PLC0415
    from .gan.sampler import interpolation, write_samples  # noqa: PLC0415

    def refuse(msg):
        raise SystemExit(f"minigan sample: {msg}")

    if meta.get("model") == MIXTURE_MODEL:
        refuse(f"--interpolate draws images; {ck} holds a 2-D mixture generator ({MIXTURE_MODEL!r}), "
               f"whose samples are points")
    if args.per_row is not None:
        refuse("--per-row is not for --interpolate: give the images per row with --steps")
    conditional = bool(meta.get("conditional", False))
    rows = args.n if args.n is not None else (10 if conditional and args.digit is None else 8)
    steps = 10 if args.steps is None else args.steps
    if ext != ".npz" and rows * steps > MAX_PICTURE:
        refuse(f"--n {rows} rows of --steps {steps}: at most {MAX_PICTURE:,} images fit in one "
               f"picture; write an .npz for more")
    if rows * steps > MAX_SAMPLES:
        refuse(f"--n {rows} rows of --steps {steps}: at most {MAX_SAMPLES:,} images")
    images, digits = interpolation(ck, rows, steps, args.seed, args.device, digit=args.digit,
                                   averaged=not args.live, method=args.interpolate)
    write_samples(images, args.out, row_labels=digits, nrow=steps)
    how = {"slerp": "spherical", "lerp": "linear"}[args.interpolate]
    of = f" of digit {args.digit}" if args.digit is not None else " (digits 0-9 in turn)" if digits else ""
    print(f"wrote {rows} rows{of} of {steps} images ({how} interpolation between noise vectors) "
          f"to {args.out}")


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
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint.npz written by minigan train, or the run folder holding it")
    p.add_argument("--n", type=_number(int, 0, MAX_SAMPLES), default=None,
                   help=f"samples to score (default 10000 on MNIST, 2500 on a mixture; at most "
                        f"{MAX_SAMPLES:,})")
    p.add_argument("--seed", type=SEED, default=None,
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

    ck = _checkpoint_file(args.checkpoint, "eval")
    path = None
    if not args.no_csv:  # checked before the minutes of scoring
        path = args.csv or os.path.join(os.path.dirname(os.path.abspath(ck)), "eval.csv")
        _output_file(path, "--csv" if args.csv else "the scores' CSV", "eval")
    scores = score_checkpoint(ck, args.n, args.seed, args.device, averaged=not args.live)
    refs = None if args.no_reference else reference_for(scores["dataset"])
    where = (("conditional " if "conditional" in scores else "") + f"{scores['model']}"
             + (f", pack {scores['pack']}" if scores["dataset"] != "mnist" else ""))
    which = {"averaged": ", weight-averaged generator", "live": ""}.get(scores.get("generator"), "")
    print(f"{ck}: {where} on {scores['dataset']}, epoch {scores.get('epoch')}, "
          f"step {scores.get('step')}{which}, noise seed {scores['seed']}")
    print(format_scores(scores, refs))
    if path is not None:
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
    p.add_argument("--model", choices=["conv", "dcgan", "mlp"], default="dcgan", help="network (default dcgan)")
    p.add_argument("--conditional", action="store_true",
                   help="the class-conditional networks (a LabelJoin first in G and D)")
    p.add_argument("--clusters", type=_number(int, (0, True)), default=None, metavar="K",
                   help="the self-conditioned networks on K clusters (default: as minigan train "
                        "builds the model, 50 for the unconditional conv pair)")


@_quiet_on_closed_pipe
def _summary(args):
    from .gan.models import build, image_shape, noise_dim  # noqa: PLC0415

    from .gan.config import TrainConfig  # noqa: PLC0415

    clusters = args.clusters
    if clusters is None:  # as minigan train builds the model
        clusters = TrainConfig.for_dataset("mnist", model=args.model, conditional=args.conditional).clusters
    try:
        G, D = build(args.model, conditional=args.conditional, clusters=clusters)
    except ValueError as e:
        raise SystemExit(f"minigan summary: {e}") from None
    image = image_shape(args.model)
    # a conditional model takes the same noise and images: its LabelJoin adds the labels
    print(G.summary((noise_dim(args.model),), name="G"))
    print()
    print(D.summary(image, name="D"))


def main(argv=None):
    parser = _Parser(
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
    from .gpu_env import GpuUnavailable  # noqa: PLC0415
    from .io import CheckpointError  # noqa: PLC0415
    from .tuning import tune_cpu  # noqa: PLC0415

    tune_cpu()
    try:
        handler = {"train": _train, "sample": _sample, "eval": _eval, "gradcheck": _gradcheck,
                   "summary": _summary}[args.command]
        return handler(args) or 0
    except GpuUnavailable as e:  # the machine, not the command: a failure at run time
        print(f"minigan {args.command}: {e}", file=sys.stderr)
        return 1
    except (CheckpointError, ValueError, RuntimeError) as e:
        print(f"minigan {args.command}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # no space, no permission, a read-only disk, a file for a folder, ...
        print(f"minigan {args.command}: {_os_error(e)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"minigan {args.command}: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minigan {args.command}: stopped by Ctrl-C", file=sys.stderr)
        return 130


def _os_error(e: OSError) -> str:
    """One line: the path and what went wrong (``PATH: No space left on device``)."""
    why = e.strerror or str(e)
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(map(str, paths))}: {why}" if paths else why


if __name__ == "__main__":
    sys.exit(main())

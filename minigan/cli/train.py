"""``minigan train``: a GAN on MNIST or a 2-D mixture, its options' defaults read from
:class:`minigan.gan.config.TrainConfig` (the one place they are set)."""
from __future__ import annotations

import contextlib
import os
import signal
import sys

from ..gan.config import ConfigError, default_out, run_config
from ..gan.run_log import CHECKPOINT, clear_run
from ..gan.trainer import Trainer, TrainingInterrupted
from .args import SEED, number, positive

def add_parser(sub):
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
    p.add_argument("--pack", type=positive(int), default=None,
                   help="PacGAN packing: the discriminator judges this many samples at once "
                        "(2-D mixtures; default 1, a plain GAN)")
    p.add_argument("--eval-every", type=number(int, (0, True)), default=None,
                   help="score the generator every N epochs into eval.csv (MNIST: Fréchet distance, "
                        "Inception Score, ...; default 0 = never on MNIST, 1 on the mixtures)")
    p.add_argument("--model", choices=["conv", "dcgan", "mlp", "mlp2d"], default=None,
                   help="network (default conv on MNIST, the lean conv pair; mlp2d on the mixtures)")
    p.add_argument("--loss", choices=["bce", "lsgan", "hinge"], default=None, help="GAN loss (default bce)")
    p.add_argument("--conditional", action="store_true", default=None,
                   help="class-conditional GAN (MNIST): the digit label is joined to G's noise and to "
                        "D's input; the sample grid has one row per digit; default out runs/c<model>")
    p.add_argument("--clusters", type=number(int, (0, True)), default=None, metavar="K",
                   help="self-conditioning (unconditional models): the training data falls into K "
                        "k-means clusters, G draws a cluster with its share of the data and D judges each "
                        "sample against its cluster; no labels are used (default 50 for the conv pair, "
                        "0 = off otherwise)")
    p.add_argument("--epochs", type=positive(int), default=None,
                   help="epochs (default 3 for the conv pair, 8 when conditional; 2 for the DCGAN, 10 "
                        "when conditional; 30 for the MLP; 15 on the 2-D mixtures)")
    p.add_argument("--batch-size", type=positive(int), default=None, help="batch size (default 64)")
    p.add_argument("--lr", type=positive(float), default=None, help="Adam learning rate (default 1.5e-3 for the conv pair, 4e-4 when "
                        "conditional; 2e-4 otherwise)")
    p.add_argument("--lr-d", type=positive(float), default=None,
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
    p.add_argument("--width", type=positive(float), default=None,
                   help="scale the networks' hidden sizes and channel counts (default 1: the seed networks)")
    p.add_argument("--seed", type=SEED, default=None, help="random seed (default 0)")
    p.add_argument("--out", default=None,
                   help="output folder (default runs/<model>, or runs/<model>-2, -3, ... when that "
                        "holds a run); a folder that holds a run needs --resume or --overwrite")
    p.add_argument("--limit", type=number(int, (0, True)), default=None,
                   help="train on the first N images only")
    p.add_argument("--checkpoint-every", type=positive(int), default=None,
                   help="steps between mid-epoch checkpoints (default 200)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (its checkpoint, logs and pictures) with a new one")
    p.add_argument("--mnist-dir", default=None, help="a directory holding the four MNIST IDX files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
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

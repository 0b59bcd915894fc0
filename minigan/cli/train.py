"""``minigan train``: a GAN on MNIST or a 2-D mixture, its options' defaults read from
:class:`minigan.gan.config.TrainConfig` (the one place they are set)."""
from __future__ import annotations

import contextlib
import os
import signal
import sys

from ..gan.config import DATASETS, ConfigError, TrainConfig, default_out, run_config
from ..gan.models import MIXTURE_MODEL, MNIST_MODEL, MODELS
from ..gan.run_log import CHECKPOINT, clear_run
from ..gan.trainer import MIXTURE_POINTS, TooFewSamples, Trainer, TrainingInterrupted
from ..losses import GANLoss
from .args import SEED, add_threads, mnist_folder, number, positive

# The defaults the help states, read from the config (minigan.gan.config), which applies them
BASE = TrainConfig()
CONV, DCGAN, MLP = "conv", "dcgan", "mlp"


def _of(model: str, name: str, conditional: bool = False, dataset: str = "mnist"):
    """The default of option ``name`` for ``model`` (and ``conditional``) on ``dataset``."""
    return getattr(TrainConfig.for_dataset(dataset, model=model, conditional=conditional), name)


def _rate(x: float) -> str:
    """A learning rate as the help writes it: ``1.5e-3``, ``2e-4``."""
    mantissa, exponent = f"{x:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _mixture(name: str):
    return getattr(TrainConfig.for_dataset("ring"), name)


def add_parser(sub):
    conv_epochs, conv_lr = _of(MNIST_MODEL, "epochs"), _of(MNIST_MODEL, "lr")
    p = sub.add_parser("train", help="train a GAN on MNIST or a 2-D mixture",
                       description=f"Train a GAN on MNIST.  With no arguments: the lean conv pair, on the "
                                   f"CPU, for {conv_epochs} epochs at Adam {_rate(conv_lr)}, drawing from the generator's "
                                   f"weight average; pictures go to runs/<model>/.  --model dcgan: the "
                                   f"TensorFlow tutorial's DCGAN and recipe ({_of(DCGAN, 'epochs')} epochs at "
                                   f"{_rate(_of(DCGAN, 'lr'))}).  With --dataset ring or "
                                   f"grid: PacGAN's MLP pair on that 2-D Gaussian mixture (defaults: "
                                   f"{_mixture('epochs')} epochs of {MIXTURE_POINTS:,} points, batch "
                                   f"{_mixture('batch_size')}, Adam {_rate(_mixture('lr'))} decaying "
                                   f"linearly); a scatter plot and the mode scores each epoch; pictures "
                                   f"go to runs/<dataset>-pack<m>/.")
    p.add_argument("--dataset", choices=list(DATASETS), default=None,
                   help=f"training data (default {BASE.dataset})")
    p.add_argument("--pack", type=positive(int), default=None,
                   help=f"PacGAN packing: the discriminator judges this many samples at once "
                        f"(2-D mixtures; default {BASE.pack}, a plain GAN)")
    p.add_argument("--eval-every", type=number(int, (0, True)), default=None,
                   help=f"score the generator every N epochs into eval.csv (MNIST: Fréchet distance, "
                        f"Inception Score, ...; default {BASE.eval_every} = never on MNIST, "
                        f"{_mixture('eval_every')} on the mixtures)")
    p.add_argument("--model", choices=[m for m in MODELS], default=None,
                   help=f"network (default {MNIST_MODEL} on MNIST, the lean conv pair; {MIXTURE_MODEL} on "
                        f"the mixtures)")
    p.add_argument("--loss", choices=list(GANLoss.NAMES), default=None, help=f"GAN loss (default {BASE.loss})")
    p.add_argument("--conditional", action="store_true", default=None,
                   help="class-conditional GAN (MNIST): the digit label is joined to G's noise and to "
                        "D's input; the sample grid has one row per digit; default out runs/c<model>")
    p.add_argument("--clusters", type=number(int, (0, True)), default=None, metavar="K",
                   help=f"self-conditioning (unconditional models): the training data falls into K "
                        f"k-means clusters, G draws a cluster with its share of the data and D judges each "
                        f"sample against its cluster; no labels are used (default {_of(CONV, 'clusters')} "
                        f"for the conv pair, {_mixture('clusters')} on the mixtures, 0 = off otherwise)")
    p.add_argument("--epochs", type=positive(int), default=None,
                   help=f"epochs (default {_of(CONV, 'epochs')} for the conv pair, "
                        f"{_of(CONV, 'epochs', True)} when conditional; {_of(DCGAN, 'epochs')} for the DCGAN, "
                        f"{_of(DCGAN, 'epochs', True)} when conditional; {_of(MLP, 'epochs')} for the MLP; "
                        f"{_mixture('epochs')} on the 2-D mixtures)")
    p.add_argument("--batch-size", type=positive(int), default=None,
                   help=f"batch size (default {BASE.batch_size}; {_mixture('batch_size')} on the mixtures)")
    p.add_argument("--lr", type=positive(float), default=None,
                   help=f"Adam learning rate (default {_rate(_of(CONV, 'lr'))} for the conv pair, "
                        f"{_rate(_of(CONV, 'lr', True))} when conditional; {_rate(BASE.lr)} otherwise)")
    p.add_argument("--lr-d", type=positive(float), default=None,
                   help="the discriminator's learning rate (default: the same as --lr)")
    p.add_argument("--lr-decay", choices=["none", "linear"], default=None,
                   help=f"learning-rate schedule over the epochs (default {BASE.lr_decay} on MNIST, "
                        f"{_mixture('lr_decay')} on the mixtures)")
    p.add_argument("--d-bias-init", choices=["zeros", "data"], default=None,
                   help=f"2-D mixtures: 'data' starts D's first-layer hyperplanes through random points "
                        f"of the training data's bounding box (default {BASE.d_bias_init!r}: all through "
                        f"the origin)")
    p.add_argument("--g-ema", type=float, default=None, metavar="DECAY",
                   help=f"keep an exponential moving average of the generator's weights, avg = "
                        f"DECAY*avg + (1-DECAY)*weights after every generator step (e.g. 0.999, about "
                        f"the last 1,000 steps); the average is what is scored, drawn each epoch and "
                        f"sampled from the checkpoint, training goes on with the live weights "
                        f"(default {_of(CONV, 'g_ema'):g} for the conv pair, {_of(MLP, 'g_ema'):g} for the "
                        f"MLP and {_of(CONV, 'g_ema', True):g} for the conditional conv pair; "
                        f"{_of(DCGAN, 'g_ema'):g}, off, for the DCGAN and the mixtures)")
    p.add_argument("--beta1", type=float, default=None, help=f"Adam beta1 (default {BASE.beta1:g})")
    p.add_argument("--beta2", type=float, default=None, help=f"Adam beta2 (default {BASE.beta2:g})")
    p.add_argument("--device", choices=["cpu", "gpu"], default=None,
                   help=f"where to compute (default {BASE.device}); gpu needs CuPy seeing a GPU "
                        f"(README: On a GPU)")
    p.add_argument("--width", type=positive(float), default=None,
                   help=f"scale the networks' hidden sizes and channel counts (default {BASE.width:g}: "
                        f"the seed networks)")
    p.add_argument("--seed", type=SEED, default=None, help=f"random seed (default {BASE.seed})")
    p.add_argument("--out", default=None,
                   help="output folder (default runs/<model>, or runs/<model>-2, -3, ... when that "
                        "holds a run); a folder that holds a run needs --resume or --overwrite")
    p.add_argument("--limit", type=number(int, (0, True)), default=None,
                   help="train on the first N images only")
    p.add_argument("--checkpoint-every", type=positive(int), default=None,
                   help=f"steps between mid-epoch checkpoints (default {BASE.checkpoint_every})")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (its checkpoint, logs and pictures) with a new one")
    p.add_argument("--mnist-dir", default=None,
                   help="a folder holding MNIST's four IDX files (train-images-idx3-ubyte and friends, "
                        "each may end in .gz), for a machine that cannot download them; read even when "
                        "$MINIGAN_HOME holds a cache (the files must be the standard ones, checked by "
                        "SHA-256)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads(p)
    # -- data parallelism (minigan.distributed, docs/distributed.md)
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes mpiexec starts (mpiexec -n N minigan train "
                        "--distributed ...): --batch-size stays the global batch, split across them; "
                        "rank 0 writes; needs pip install 'minigan[mpi]'")


def run(args):
    given = {k: v for k, v in {
        "dataset": args.dataset, "model": args.model, "loss": args.loss, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "beta1": args.beta1, "beta2": args.beta2,
        "device": args.device, "seed": args.seed, "out": args.out, "limit": args.limit,
        "checkpoint_every": args.checkpoint_every, "pack": args.pack, "lr_d": args.lr_d,
        "lr_decay": args.lr_decay, "d_bias_init": args.d_bias_init, "g_ema": args.g_ema,
        "eval_every": args.eval_every, "conditional": args.conditional, "width": args.width,
        "clusters": args.clusters,
    }.items() if v is not None}
    if args.mnist_dir is not None:
        mnist_folder(args.mnist_dir, "train")
    try:
        cfg = run_config(given, resume=args.resume, overwrite=args.overwrite)
    except ConfigError as e:
        raise SystemExit(f"minigan train: {e}") from None
    out, ck = cfg.out, os.path.join(cfg.out, CHECKPOINT)
    comm = None
    if getattr(args, "distributed", False):  # -- data parallelism: every process decides the run's
        comm = _world(cfg)                    # folder before any process writes in it
        if comm.size > 1 and not comm.is_root:
            sys.stdout = open(os.devnull, "w")  # rank 0 alone talks
    # the data is loaded and checked against the batch before anything in the folder changes
    try:
        trainer = Trainer(cfg, progress=not args.quiet and (comm is None or comm.is_root),
                          mnist_dir=args.mnist_dir, comm=comm)
    except TooFewSamples as e:
        raise SystemExit(f"minigan train: {_too_few(e, given, cfg)}") from None
    except ValueError as e:
        if comm is None:
            raise
        raise SystemExit(f"minigan train: rank {comm.rank}: {e}") from None
    if comm is not None and comm.size > 1:
        print(f"data-parallel over {comm.size} processes ({comm.name}): {trainer.points_per_step // comm.size} "
              f"of each global batch of {trainer.points_per_step} on each")
    if args.resume:
        trainer.restore(ck)
        print(f"resuming {cfg.model} in {out} from epoch {trainer.epoch + 1}, step {trainer.step_in_epoch} "
              f"of {trainer.steps_per_epoch}")
    else:
        if args.overwrite and (comm is None or comm.is_root) and clear_run(out):
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
        if comm is not None and comm.size > 1:  # Ctrl-C stops every process at once: no stop
            _fit_distributed(trainer, comm)  # between steps that all would have to agree on
        else:
            with _stop_on_ctrl_c(trainer), _compilation_note(cfg):
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


def _too_few(e, given, cfg) -> str:
    """Fewer images than clusters, said in terms of the options the user typed."""
    what = "points" if cfg.is_mixture else "images"
    limit = f"--limit {given['limit']} leaves {e.samples} {what}" if "limit" in given else \
        f"the data has {e.samples} {what}"
    if "clusters" in given:
        return (f"{limit}, fewer than --clusters {e.clusters}: give a K of at most {e.samples} "
                f"(or --clusters 0, no self-conditioning)")
    return (f"{limit}, fewer than the {e.clusters} k-means clusters the {cfg.model} model is "
            f"self-conditioned on by default (--clusters {e.clusters}); give --clusters 0 (no "
            f"self-conditioning) or --clusters K with K at most {e.samples}, or a larger --limit")


def _world(cfg):
    """The communicator of the processes mpiexec started (minigan.distributed.world), after a
    barrier that every process reaches once it has decided the run's configuration."""
    from ..distributed import CommTimeout, world  # noqa: PLC0415  (mpi4py: only when asked for)

    try:
        comm = world(cfg.device)
        comm.barrier()
    except ImportError as e:
        raise SystemExit(f"minigan train --distributed: {e}") from None
    except CommTimeout as e:
        print(f"minigan train: {e}", file=sys.stderr, flush=True)
        comm.abort(3)
    return comm


def _fit_distributed(trainer, comm):
    """``trainer.fit`` in one of several processes: a collective that times out (a process
    died or hangs) ends every process with its message instead of leaving them waiting."""
    from ..distributed import CommTimeout  # noqa: PLC0415  (mpi4py: only when asked for)

    try:
        trainer.fit()
    except CommTimeout as e:
        print(f"minigan train: {e}", file=sys.stderr, flush=True)
        comm.abort(3)


def _compilation_note(cfg):
    """A line, above the progress bar, when the CPU kernels are being compiled (a fresh install)."""
    if cfg.device != "cpu":
        return contextlib.nullcontext()
    from tqdm.auto import tqdm  # noqa: PLC0415  (start-up: ~40 ms, for a progress bar only)

    from ..runtime.numba_cache import announce_compilation  # noqa: PLC0415  (imports Numba)

    return announce_compilation(tqdm.write)


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

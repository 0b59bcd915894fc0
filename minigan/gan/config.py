"""The configuration of a training run: every default and every check in one place.

:class:`TrainConfig` holds the options; :meth:`TrainConfig.validate` checks them and
fills in the model a dataset implies; :meth:`TrainConfig.for_dataset` applies the
defaults that depend on the dataset, the model and ``conditional``.  :func:`run_config`
builds the config of a run from the options a user gave (the ``minigan train``
options): a new run gets those defaults and a default output folder, a resumed run
gets the config saved in its checkpoint with the given options on top, and refuses
options that would change what the checkpoint's weights and position mean.

It also decides the run folder, reading the disk but writing nothing: a new run never
lands on an earlier one (the default folder ``runs/conv`` gives way to ``runs/conv-2``,
``runs/conv-3``, ...; an explicit folder that holds a run is refused unless
``overwrite``), and a folder that cannot be written is refused before the run starts.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from .. import losses
from ..io import read_checkpoint_meta
from ..runtime import devices
from . import models
from .run_log import CHECKPOINT, run_files

DATASETS = ("mnist", "ring", "grid")
# Defaults that differ on the 2-D mixtures: PacGAN's batch of 100; Adam at 2e-4 (PacGAN: 1e-4)
# falling linearly over 15 epochs, which fits a 5-seed sweep into a CPU budget (docs/metrics.md);
# self-conditioned on 32 k-means clusters of the points, more than either mixture's modes
# (the ring's PacGAN2 run: 84 % of points within 3 std of a mode without, 99.9 % with).
MIXTURE_DEFAULTS = {"batch_size": 100, "lr": 2e-4, "lr_decay": "linear", "beta1": 0.5, "beta2": 0.999,
                    "epochs": 15, "eval_every": 1, "clusters": 32}
# Per model, chosen for sample quality per minute of a 2-core CPU (docs/metrics.md,
# "Quality per minute").  The lean conv pair, MNIST's default: 3 epochs (about 90 s each
# here) at Adam 1.5e-3 for both networks; scores and pictures come from G's weight average
# over about the last 200 steps, which scored better than the live G at every epoch.
# The MLP GAN (2 s an epoch): 30 epochs, about a minute; its weight average draws all 10
# digits for every seed, where the live G missed one or two in two seeds of three.  The
# seed DCGAN keeps the TensorFlow tutorial's recipe (2 epochs, 2e-4, no average).
# The conv pair is self-conditioned on 50 clusters of the images (no labels; models.build,
# docs/metrics.md "Self-conditioning"): its samples read as digits far more often.
MODEL_DEFAULTS = {"conv": {"epochs": 3, "lr": 1.5e-3, "g_ema": 0.995, "clusters": 50},
                  "mlp": {"epochs": 30, "g_ema": 0.999}}
# A conditional GAN must also draw the digit it is asked for, which takes longer than
# drawing some digit.  The conditional conv pair with a weight average over about 1,000
# steps, the share of its samples the classifier reads as the requested digit: at 4e-4
# 87% after 2 epochs, 92% after 3, 96% after 4, 98.6% after 8 (the default until
# 2026-12-08); at the unconditional pair's 1.5e-3 95% after 2, 97.4-97.9% after 3 and
# 98.5-98.6% after 5 (seeds 0 and 1; docs/conditional.md), so 5 epochs.  The conditional
# DCGAN (52% after 2 epochs, 95.9% after 10) keeps 10; the conditional MLP the MLP's 30.
CONDITIONAL_DEFAULTS = {"conv": {"epochs": 5, "lr": 1.5e-3, "g_ema": 0.999, "clusters": 0},
                        "dcgan": {"epochs": 10}}
# What a resumed run may not change: the data, the networks and the batches that the
# checkpoint's weights and its position in the epoch belong to.
KEPT_ON_RESUME = ("dataset", "model", "loss", "batch_size", "limit", "seed", "pack", "width", "clusters")


class ConfigError(ValueError):
    """Options that cannot start or resume a run; the message is one line for the user."""


@dataclass
class TrainConfig:
    model: str = ""  # "" picks the dataset's default: "conv" on MNIST, "mlp2d" on a 2-D mixture
    loss: str = "bce"
    epochs: int = 2
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    device: str = "cpu"
    seed: int = 0
    out: str = "runs/conv"
    limit: int = 0  # use only the first `limit` training images (0: all)
    log_every: int = 50  # steps between log rows and gradient-norm records
    checkpoint_every: int = 200  # steps between mid-epoch checkpoints
    n_samples: int = 64  # images in each sample grid
    dataset: str = "mnist"  # "mnist", "ring" or "grid"
    pack: int = 1  # PacGAN packing degree of the discriminator (2-D mixtures only)
    eval_every: int = 0  # epochs between scores written to eval.csv (0: never)
    lr_d: float = 0.0  # the discriminator's learning rate (0: the same as lr)
    lr_decay: str = "none"  # "linear": both rates fall linearly over the epochs, to 1/epochs of their start
    conditional: bool = False  # class-conditional G and D (MNIST only)
    # "data": the mixture D's first-layer hyperplanes start through random points of the
    # training data's bounding box instead of all through the origin (zero biases)
    d_bias_init: str = "zeros"
    # decay d of an exponential moving average of G's weights (0: none); with d > 0 the
    # average is what is scored, drawn and sampled (minigan.gan.averaging)
    g_ema: float = 0.0
    # scales the networks' hidden sizes and channel counts (1: the seed networks; the GPU
    # tests train tiny ones under a simulator)
    width: float = 1.0
    # self-conditioning (unconditional models): the training data falls into this many
    # k-means clusters, whose numbers G's code and D's last layer take as labels (0: none)
    clusters: int = 0

    @property
    def is_mixture(self) -> bool:
        return self.dataset in ("ring", "grid")

    def validate(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose from {list(DATASETS)}")
        if not self.model:
            self.model = models.MIXTURE_MODEL if self.is_mixture else models.MNIST_MODEL
        if self.model not in models.MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose from {models.MODELS}")
        if self.is_mixture != (self.model == models.MIXTURE_MODEL):
            raise ValueError(f"model {self.model!r} does not fit dataset {self.dataset!r}: the 2-D "
                             f"mixtures use {models.MIXTURE_MODEL!r}, MNIST uses 'conv', 'dcgan' or 'mlp'")
        if self.conditional and self.is_mixture:
            raise ValueError("--conditional is implemented for MNIST only (the 2-D mixtures have no labels)")
        if not (isinstance(self.clusters, int) and (self.clusters == 0 or self.clusters >= 2)):
            raise ValueError(f"clusters must be 0 (none) or at least 2, got {self.clusters!r}")
        if self.clusters and self.conditional:
            raise ValueError("--clusters (self-conditioning) is for unconditional models: drop it "
                             "with --conditional")
        if self.clusters > models.NOISE_DIM and not self.is_mixture:
            raise ValueError(f"clusters: at most {models.NOISE_DIM} on MNIST (the code takes that many "
                             f"of the {models.NOISE_DIM} noise values), got {self.clusters}")
        if self.pack < 1:
            raise ValueError(f"pack must be at least 1, got {self.pack}")
        if self.d_bias_init not in ("zeros", "data"):
            raise ValueError(f"d-bias-init must be 'zeros' or 'data', got {self.d_bias_init!r}")
        if self.d_bias_init == "data" and not self.is_mixture:
            raise ValueError("--d-bias-init data is implemented for the 2-D mixtures (ring, grid) only")
        if self.pack > 1 and not self.is_mixture:
            raise ValueError("--pack is implemented for the 2-D mixtures (ring, grid) only")
        if self.eval_every < 0:
            raise ValueError(f"eval-every must be >= 0, got {self.eval_every}")
        if not 0.0 <= self.g_ema < 1.0:
            raise ValueError(f"g-ema must lie in [0, 1) (0: no averaging; e.g. 0.999), got {self.g_ema}")
        losses.GANLoss(self.loss)
        for name in ("epochs", "batch_size", "log_every", "checkpoint_every", "n_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.lr_decay not in ("none", "linear"):
            raise ValueError(f"lr-decay must be 'none' or 'linear', got {self.lr_decay!r}")
        if not (math.isfinite(self.lr_d) and self.lr_d >= 0):
            raise ValueError(f"lr-d must be a positive finite number (or 0 for the same as lr), "
                             f"got {self.lr_d}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed must be an integer from 0 to 2**63 - 1, got {self.seed!r}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got ({self.beta1}, {self.beta2})")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if not 0 < self.width <= 8:
            raise ValueError(f"width must lie in (0, 8], got {self.width}")
        self.device = devices.normalize_device(self.device)
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def for_dataset(cls, dataset: str = "mnist", **given) -> "TrainConfig":
        """A config with ``dataset``'s defaults (PacGAN's on the mixtures), overridden by ``given``."""
        model = given.get("model") or ("" if dataset in ("ring", "grid") else models.MNIST_MODEL)
        base = (dict(MIXTURE_DEFAULTS) if dataset in ("ring", "grid")
                else dict(MODEL_DEFAULTS.get(model, {})))
        if given.get("conditional"):
            base.update(CONDITIONAL_DEFAULTS.get(model, {}))
        return cls.from_dict({**base, **given, "dataset": dataset})


def default_out(dataset: str = "mnist", model: str | None = None, conditional: bool = False,
                pack: int = 1) -> str:
    """The run folder when none is given: ``runs/<model>`` on MNIST (``runs/c<model>`` when
    conditional), ``runs/<dataset>-pack<pack>`` on a 2-D mixture."""
    if dataset == "mnist":
        prefix = "c" if conditional else ""  # runs/cconv, runs/cmlp
        return os.path.join("runs", prefix + (model or models.MNIST_MODEL))
    return os.path.join("runs", f"{dataset}-pack{pack}")


def free_out(out: str) -> str:
    """``out`` if it holds no run, else the first of ``out-2``, ``out-3``, ... that holds none
    (and is not a file)."""
    candidate, k = out, 1
    while run_files(candidate) or (os.path.lexists(candidate) and not os.path.isdir(candidate)):
        k += 1
        candidate = f"{out}-{k}"
    return candidate


def check_writable(folder: str, label: str | None = None):
    """Raise :class:`ConfigError` (its message starting with ``label``, default ``--out
    FOLDER``) unless ``folder`` exists or can be made, and can be written: its nearest
    existing ancestor must be a folder, writable and not on a read-only file system."""
    label = label or f"--out {folder}"
    here = os.path.abspath(folder)
    while not os.path.lexists(here):
        here = os.path.dirname(here)
    if not os.path.isdir(here):
        raise ConfigError(f"{label}: {here} is a file, not a folder")
    if not os.access(here, os.W_OK | os.X_OK):
        why = "a read-only file system" if _read_only(here) else "no permission"
        raise ConfigError(f"{label}: cannot write in {here} ({why})")


def _read_only(path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def run_config(given: dict, resume: bool = False, overwrite: bool = False) -> TrainConfig:
    """The config of a run from the options ``given`` (``TrainConfig`` field names; options
    not given are absent), checked by :meth:`TrainConfig.validate`.

    A new run: the defaults of :meth:`TrainConfig.for_dataset` under ``given``, in
    ``given["out"]`` or :func:`default_out`.  A folder that holds a run
    (:func:`minigan.gan.run_log.run_files`) is taken only with ``overwrite``; otherwise
    an explicit ``out`` is refused and the default one gives way to :func:`free_out`.
    ``resume``: the config saved in the run folder's checkpoint with ``given`` on top;
    the dataset, when not given, is the checkpoint's.

    Raises ValueError for an option :meth:`TrainConfig.validate` refuses, and
    :class:`ConfigError` for a folder that cannot be written, ``resume`` with ``overwrite``, a missing checkpoint, a
    run that has already done the epochs asked for, or an option in
    :data:`KEPT_ON_RESUME` (or ``conditional``) that differs from the checkpoint's.
    Nothing is written.
    """
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it: choose one")
    given = dict(given)
    dataset = given.pop("dataset", None)
    if given.get("eval_every") is not None and given["eval_every"] < 0:
        raise ConfigError(f"--eval-every must be >= 0, got {given['eval_every']}")
    if resume and dataset is None and given.get("out"):
        ck = os.path.join(given["out"], CHECKPOINT)
        if os.path.isfile(ck):
            dataset = read_checkpoint_meta(ck).get("dataset")
    dataset = dataset or "mnist"
    explicit = bool(given.get("out"))
    out = given.get("out") or default_out(dataset, given.get("model"), given.get("conditional"),
                                          given.get("pack", 1))
    if not resume:
        if os.path.lexists(out) and not os.path.isdir(out) and explicit:
            raise ConfigError(f"--out {out} is a file, not a folder")
        held = run_files(out) if not overwrite else []
        if held and explicit:
            raise ConfigError(f"--out {out} holds a run ({', '.join(held[:3])}"
                              f"{', ...' if len(held) > 3 else ''}): continue it with --resume, or "
                              f"replace it with --overwrite")
        out = out if explicit or overwrite else free_out(out)
        check_writable(out)
        given["out"] = out
        return TrainConfig.for_dataset(dataset, **given).validate()
    given["out"] = out
    ck = os.path.join(out, CHECKPOINT)
    if not os.path.exists(ck):
        raise ConfigError(f"--resume, but there is no checkpoint at {ck}")
    meta = read_checkpoint_meta(ck)
    saved = dict(meta.get("config", {}))
    saved.setdefault("dataset", "mnist")
    given["dataset"] = dataset
    if "conditional" in given and not saved.get("conditional", False):
        raise ConfigError(f"the checkpoint in {out} holds an unconditional model; "
                          f"drop --conditional to resume it")
    for key in KEPT_ON_RESUME:
        if key in given and key in saved and given[key] != saved[key]:
            raise ConfigError(f"the checkpoint in {out} was trained with {key}={saved[key]!r}, "
                              f"not {given[key]!r}")
    try:
        cfg = TrainConfig.from_dict({**saved, **given}).validate()
    except TypeError as e:  # a value of the wrong type, which no option gives
        raise ConfigError(f"the checkpoint in {out} is corrupt: its config holds a value of the wrong "
                          f"type ({e})") from None
    done = meta.get("epoch")
    if isinstance(done, int) and done >= cfg.epochs:
        what = (f"--epochs {cfg.epochs}: the run in {out} has already done {done} epoch(s)"
                if "epochs" in given else f"the run in {out} has finished its {done} epoch(s)")
        raise ConfigError(f"{what}; to train it on, resume with --epochs N, N > {done}")
    check_writable(out)
    return cfg


"""The GAN training loop, with checkpoints, scores and exact resume.

The trainer wires three rooms together: the step (:mod:`minigan.gan.step`: one D
step and one G step), the configuration (:mod:`minigan.gan.config`: every default
and check) and the run's logs and pictures (:mod:`minigan.gan.run_log`).  What it
keeps is the loop over epochs and batches, the checkpoints and the scores.

On the 2-D mixtures (``dataset="ring"`` or ``"grid"``) the model is the
PacGAN MLP pair (:mod:`minigan.gan.mixture_models`) and a step draws
``batch_size * pack`` real and fake points, which the discriminator sees
packed as ``batch_size`` rows of ``pack`` points each.

Conditional GAN (``conditional=True``, MNIST only; Mirza & Osindero 2014): both
networks start with :class:`minigan.nn.LabelJoin`.  A real batch carries its own
labels, the fake batch labels drawn uniformly from the global RNG (after the
noise, so exact resume still holds); D sees each image with its label, the joint
real+fake batch with the two label vectors concatenated.  The sample grid has one
row per digit (10 x 8).

Self-conditioned GAN (``clusters = K``, the default of the conv pair and the mixtures;
Liu et al. 2020): before training, the training images (or points) fall into K k-means
clusters (:mod:`minigan.data.clusters`, seeded from ``seed``, so a resumed run finds the
same ones), and each sample's cluster is its label for D's
:class:`minigan.nn.LabelProjection`.  G's first layer, a :class:`minigan.nn.DiscreteCode`,
draws each cluster with its share of the data; the code it draws from a fake's noise is
that fake's label.  No class labels are used.

Weight averaging (``g_ema = d > 0``; :mod:`minigan.gan.averaging`): after every G step
``avg = d * avg + (1 - d) * theta`` over G's parameters.  The average, with BatchNorm
statistics estimated for its own weights, is what is scored, drawn each epoch and stored
in the checkpoint (``G_ema``) for ``minigan sample`` and ``eval``; the live G's scores go
to ``eval_live.csv``.  Estimating those statistics takes a few hundred ms (2,500 noise
points through G), so the checkpoints written within an epoch store the average without
them (meta ``g_ema_batchnorm = "stale"``) and whoever loads it to draw estimates them
(:func:`minigan.gan.sampler.load_generator`); the checkpoint at the end of each epoch,
and one written on a stop, store them.  It draws nothing from the training generators, so the live run is
the same with or without it.

Scores (:mod:`minigan.metrics`) go to ``eval.csv`` in the run directory:
on the mixtures every ``eval_every`` epochs (default 1; modes covered,
% high quality, reverse KL on 2,500 points), on MNIST every ``eval_every``
epochs when it is set (Fréchet distance, Inception Score, class histogram).
Scoring draws nothing from the training generators, so it does not disturb
an exact resume.

Everything random comes from seeded generators whose state is saved: the
order of each epoch's batches is drawn from ``(seed, epoch)``, noise and
dropout masks from :func:`minigan.runtime.devices.global_rng`.  A checkpoint holds
the weights, BatchNorm buffers, Adam moments and step counts, that RNG
state and the position in the epoch, so a run killed at any moment and
resumed ends with exactly the weights of a run that never stopped.  An
epoch's pictures are drawn before its checkpoint is written: a run killed in
between resumes from the checkpoint before and draws them again, from the same
weights, so every finished epoch has its pictures.

Divergence and Ctrl-C are watched by the guards of :mod:`minigan.gan.guards`
(:class:`TrainingDiverged`, :class:`TrainingInterrupted`, :class:`RunAway`).
"""
from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np

from .. import io, losses, optim, viz
from ..data import load_mnist, sample_mixture
from ..data.clusters import kmeans
from ..metrics import append_scores, format_scores
from ..nn import Dropout, set_labels
from ..runtime import devices, randomness
from .._version import __version__
from . import models
from .averaging import GeneratorAverage
from .config import (CHECKPOINT, CONDITIONAL_DEFAULTS, DATASETS, MIXTURE_DEFAULTS,  # noqa: F401
                     MODEL_DEFAULTS, TrainConfig)
from .guards import Health, RunAway, TrainingDiverged, TrainingInterrupted, Window
from .mixture_models import place_first_hyperplanes
from .run_log import EVAL_LIVE_LOG, EVAL_LOG, GRID_COLUMNS, LOG_COLUMNS, RunLog  # noqa: F401
from .scoring import score_generator
from .step import gan_step, joins_batches

EVAL_POINTS = 2_500  # generated points scored on a 2-D mixture (as in PacGAN)
MIXTURE_POINTS = 100_000  # training points drawn from a 2-D mixture (as in PacGAN)
KMEANS_STREAM = 0x6B6D65616E73  # the k-means seed is [seed, this]: no small number an epoch's order uses


def mnist_images(model: str, limit: int = 0, labels: bool = False, idx_dir=None):
    """MNIST training images as float32 in [-1, 1]: (N, 1, 28, 28) for conv nets, (N, 784) for MLPs.

    ``labels=True``: ``(images, labels)`` with the labels (N,) int64.  ``idx_dir``: a folder
    holding the four IDX files, read when no cache holds MNIST yet (:func:`minigan.data.load_mnist`).
    """
    x, y = load_mnist("train", idx_dir=idx_dir)
    if limit:
        x, y = x[:limit], y[:limit]
    x = prepare_images(x, model)
    return (x, np.asarray(y, np.int64)) if labels else x


def mixture_points(name: str, seed: int = 0, n: int = MIXTURE_POINTS) -> np.ndarray:
    """The training set of a 2-D mixture: ``n`` points (n, 2) float32 drawn with ``seed``."""
    return sample_mixture(name, n, np.random.default_rng([seed, 2]))


def prepare_images(x_uint8, model: str) -> np.ndarray:
    x = (np.asarray(x_uint8, dtype=np.float32) / 127.5 - 1.0).astype(np.float32)
    return x.reshape(len(x), *models.image_shape(model))


class TooFewSamples(ValueError):
    """Fewer training samples than k-means clusters to split them into."""

    def __init__(self, clusters: int, samples: int):
        self.clusters, self.samples = clusters, samples
        super().__init__(f"--clusters {clusters}: needs at least {clusters} training samples, got "
                         f"{samples}; ask for fewer (--clusters 0 turns self-conditioning off)")


class Trainer:
    """Trains ``G`` against ``D`` on ``data`` (float32 in [-1, 1]) and writes to ``config.out``."""

    def __init__(self, config: TrainConfig, data=None, progress: bool = True, labels=None, mnist_dir=None,
                 comm=None):
        """``mnist_dir``: a folder of MNIST's IDX files to read instead of the cache or a download.
        ``comm``: a :class:`minigan.distributed.Communicator` of several processes to train
        data-parallel with (each takes its share of every global batch; rank 0 alone writes);
        None or one process: this process trains alone."""
        self.config = config.validate()
        cfg = self.config
        devices.manual_seed(cfg.seed)
        self.G, self.D = models.build(cfg.model, cfg.pack, cfg.conditional, cfg.width, cfg.clusters)
        self.noise_dim = models.noise_dim(cfg.model, cfg.clusters)
        self.device = devices.device(cfg.device)
        self.xp = self.device.xp
        self.G.to(self.device), self.D.to(self.device)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_G = optim.Adam(self.G, cfg.lr, betas)
        self.opt_D = optim.Adam(self.D, cfg.lr_d or cfg.lr, betas)
        self.loss = losses.GANLoss(cfg.loss)
        self.labels = None  # (N,) int64 class of each training sample, for a conditional model
        if data is not None:
            self.data = np.asarray(data, np.float32)
            if cfg.conditional:
                if labels is None:
                    raise ValueError("a conditional model needs the labels of the data given")
                self.labels = np.asarray(labels).reshape(-1)
                if len(self.labels) != len(self.data):
                    raise ValueError(f"{len(self.labels)} labels for {len(self.data)} training samples")
                if (not np.issubdtype(self.labels.dtype, np.integer) or self.labels.min() < 0
                        or self.labels.max() >= models.NUM_CLASSES):
                    raise ValueError(f"labels must be integers in 0..{models.NUM_CLASSES - 1}")
                self.labels = self.labels.astype(np.int64)
        elif cfg.is_mixture:
            self.data = mixture_points(cfg.dataset, cfg.seed)
            self.data = self.data[:cfg.limit] if cfg.limit else self.data
        elif cfg.conditional:
            self.data, self.labels = mnist_images(cfg.model, cfg.limit, labels=True, idx_dir=mnist_dir)
        else:
            self.data = mnist_images(cfg.model, cfg.limit, idx_dir=mnist_dir)
        if cfg.clusters:
            self.labels = self.cluster(self.data, cfg.clusters, cfg.seed)
            self.G.layers[0].set_probs(np.bincount(self.labels, minlength=cfg.clusters) / len(self.labels))
        if cfg.d_bias_init == "data":  # D's first hyperplanes through the data's box (after the data)
            lo, hi = self.data.min(axis=0), self.data.max(axis=0)
            place_first_hyperplanes(self.D, np.tile(lo, cfg.pack), np.tile(hi, cfg.pack))
        self.points_per_step = cfg.batch_size * cfg.pack  # real (and fake) samples per step
        if len(self.data) < self.points_per_step:
            raise ValueError(f"{len(self.data)} training samples is fewer than one batch of "
                             f"{self.points_per_step}")
        self.steps_per_epoch = len(self.data) // self.points_per_step
        # the training set lives on the device for the whole run: a step only indexes it
        self.data_on_device = self.device.asarray(self.data)
        self.labels_on_device = None if self.labels is None else self.device.asarray(self.labels)
        self.joint_D = joins_batches(self.D)  # real and fake through D as one batch
        self.run_log = RunLog(cfg)
        self.progress = progress
        self.epoch = 0  # epochs completed
        self.step_in_epoch = 0  # batches done in the current epoch
        n_fixed = EVAL_POINTS if cfg.is_mixture else cfg.n_samples
        self.fixed_labels = None
        if cfg.conditional:  # one row per digit
            self.fixed_labels = np.repeat(np.arange(models.NUM_CLASSES), GRID_COLUMNS)
            n_fixed = len(self.fixed_labels)
        z = np.random.default_rng([cfg.seed, 1]).standard_normal((n_fixed, self.noise_dim))
        self.fixed_noise = self.xp.asarray(z.astype(np.float32))
        # last, and drawing nothing from the global RNG: the live run is the same with or without it
        self.ema = GeneratorAverage(self.G, cfg.g_ema, self.noise_dim, cfg.seed) if cfg.g_ema else None
        self.health = Health(self.device)
        self.window = Window(self.xp)
        self.runaway = RunAway()
        self.checkpoint_step = None  # the global step of the last checkpoint written or restored
        self.stop_requested = False
        # -- data parallelism (minigan.distributed): after the weight average's copies of G,
        # which keep BatchNorm local (it estimates statistics on rank 0's own noise)
        self.parallel, self.shard, self.writes = None, slice(None), True
        if comm is not None and comm.size > 1:
            from ..distributed import DataParallel  # noqa: PLC0415

            if any(isinstance(m, Dropout) for net in (self.G, self.D) for m in net.modules()):
                # each process would hash its masks from its own rows' indices, so its rows
                # would not get the masks one process gives them: not the same computation
                raise ValueError(f"--distributed: the {cfg.model} model has Dropout, whose masks are "
                                 f"not yet drawn per global row; train it in one process")
            self.parallel = DataParallel(comm)
            self.shard = self.parallel.shard(self.points_per_step)
            self.writes = comm.is_root
            self.parallel.attach(self.G, self.D)
            self.parallel.broadcast(self.G, self.D)
            if self.ema is not None:
                self.ema.reset_to(self.G)

    @staticmethod
    def cluster(images, k: int, seed: int):
        """The k-means cluster (N,) int64 of each training sample (``images`` or points), from ``seed``."""
        if len(images) < k:
            raise TooFewSamples(k, len(images))
        return kmeans(images, k, np.random.default_rng([seed, KMEANS_STREAM]))[1]

    def drawing_generator(self):
        """The generator that is scored and drawn: the weight average with ``g_ema``, else G."""
        return self.ema.model() if self.ema is not None else self.G

    # -- paths -----------------------------------------------------------------
    def path(self, *parts):
        return self.run_log.path(*parts)

    @property
    def global_step(self):
        return self.epoch * self.steps_per_epoch + self.step_in_epoch

    # -- one step ----------------------------------------------------------------
    def step_inputs(self, idx):
        """The real batch at indices ``idx`` (on the device), its labels, and the step's noise
        and fake labels, drawn on the device from keys of (seed, step): no transfer, and a
        resumed run draws what an uninterrupted one would."""
        cfg, B = self.config, self.points_per_step
        idx = idx[self.shard]  # data parallelism: this process's rows of the global batch and noise
        real = self.data_on_device[idx]
        z = randomness.normal(self.device, (B, self.noise_dim),
                              randomness.key(cfg.seed, randomness.NOISE, self.global_step), np.float32)
        z = z[self.shard]
        if cfg.clusters:  # the fake's label is the cluster its code draws
            return real, z, self.labels_on_device[idx], self.G.layers[0].codes(z)
        if not cfg.conditional:
            return real, z, None, None
        y_fake = randomness.integers(self.device, (B,),
                                     randomness.key(cfg.seed, randomness.LABELS, self.global_step),
                                     models.NUM_CLASSES)
        return real, z, self.labels_on_device[idx], y_fake[self.shard]

    def train_step(self, real, z, y_real=None, y_fake=None):
        """One D step and one G step (:func:`minigan.gan.step.gan_step`); returns the step's
        numbers ``{"d_loss", "d_real", "d_fake", "g_loss"}`` as 0-d values on the device.

        A conditional model takes the real batch's labels ``y_real`` and the labels
        ``y_fake`` the generator is asked for (arrays of ints in 0..9).  A loss that is not
        finite is recorded on the device (:class:`Health`) and stops the run where the
        numbers are next read: at the next log row or checkpoint.
        """
        if self.config.conditional or self.config.clusters:
            if y_real is None or y_fake is None:
                raise ValueError("a conditional or self-conditioned model's train_step needs y_real and "
                                 "y_fake")
        else:
            y_real = y_fake = None
        stats = gan_step(self.G, self.D, self.opt_G, self.opt_D, self.loss, real, z, y_real, y_fake,
                         joint=self.joint_D,
                         reduce_grads=None if self.parallel is None else self.parallel.reduce_grads)
        self.health.record(stats["d_loss"], stats["g_loss"], self.global_step + 1)
        if self.ema is not None:
            self.ema.update()
        return stats

    def _where(self, step: int) -> str:
        epoch, in_epoch = (step - 1) // self.steps_per_epoch + 1, (step - 1) % self.steps_per_epoch + 1
        return f"epoch {epoch}, step {in_epoch} (step {step} of the run)"

    def _stopped(self, what: str) -> TrainingDiverged:
        if self.checkpoint_step is None:
            kept = "no checkpoint was written yet"
        else:
            kept = f"the last good checkpoint is {self.path(CHECKPOINT)} (step {self.checkpoint_step})"
        return TrainingDiverged(f"{what}; training stopped and {kept}. Try a smaller --lr or another --loss.")

    def _diverged(self, step: int, which: int, value: float):
        name = ("the discriminator loss", "the generator loss")[which]
        return self._stopped(f"{name} became {value} at {self._where(step)}")

    def _state_flags(self) -> list:
        """``(what, flag)`` pairs: a 0-d float64 device value, 1 when every number of ``what``
        is finite (weights and buffers, Adam moments, the weight average), 0 otherwise."""
        xp = self.xp
        parts = [("the generator's weights", self.G), ("the discriminator's weights", self.D)]
        if self.ema is not None:
            parts.append(("the generator's weight average", self.ema.avg))
        arrays = [(what, [g.params for g in m.flat().groups] + [lay.buffers[k] for _, lay, k in m.named_buffers()])
                  for what, m in parts]
        arrays += [(f"the {who} Adam moments", [a for bufs in opt.state.values() for a in bufs])
                   for who, opt in (("generator's", self.opt_G), ("discriminator's", self.opt_D))]
        flags = []
        for what, arrs in arrays:
            ok = xp.ones((), dtype=xp.float64)
            for a in arrs:
                ok = ok * xp.isfinite(a).all()
            flags.append((what, ok))
        return flags

    def _read(self, names, extra=(), arrays=()):
        """One transfer: the window sums of ``names``, the health flags and the state flags,
        ``extra`` (0-d float64 device values) and ``arrays`` (device arrays of any dtype and
        shape, copied whole); raises :class:`TrainingDiverged` for a non-finite loss or state.
        Returns ``(sums as floats, extra as floats, arrays as NumPy arrays)``."""
        state = self._state_flags()
        sums = [self.window.sums[k] for k in names]
        if self.parallel is not None and names:  # the means over every process's share
            sums = list(self.parallel.mean(self.xp.stack(sums)))
        stack = self.xp.stack(sums + self.health.flags() + [flag for _, flag in state] + list(extra))
        vals, *host = devices.to_numpy_many([stack] + list(arrays))
        n = len(names) + 3 + len(state)
        self.health.check(vals[len(names):len(names) + 3], self._diverged)
        for (what, _), ok in zip(state, vals[len(names) + 3:n]):
            if ok != 1:
                raise self._stopped(f"{what} are not finite after {self._where(self.global_step)}")
        return {k: float(v) for k, v in zip(names, vals)}, [float(v) for v in vals[n:]], host

    def read_window(self):
        """The means of the step numbers since the last log row, as floats, read from the device
        in one transfer with the health flags; raises :class:`TrainingDiverged` if a loss, a
        weight or an Adam moment is not finite."""
        sums = self._read(sorted(self.window.sums))[0]
        return {k: v / self.window.count for k, v in sums.items()}

    def log_row(self, seconds: float):
        """Read the window, write its row (and the gradient norms) and start a new window;
        raises :class:`TrainingDiverged` when the losses are not finite or ran away
        (:class:`RunAway`: the row that completes the run-away is written first)."""
        # the gradient norms of gradients.csv are reduced on the device and read in the same
        # transfer as the window and the flags: one transfer a row
        norms = {m: viz.device_gradient_norms(net) for m, net in (("G", self.G), ("D", self.D))}
        sums, values, _ = self._read(sorted(self.window.sums), extra=[v for n in norms.values() for v in n.values()])
        stats = {k: v / self.window.count for k, v in sums.items()}
        self.window.clear()
        read = iter(values)
        by_net = {m: {name: next(read) for name in n} for m, n in norms.items()}
        if self.writes:  # rank 0 alone writes
            self.run_log.log_step(self.epoch + 1, self.global_step, stats, seconds, {"G": self.G, "D": self.D},
                                  norms=by_net)
        ran_away = self.runaway.add_row(stats, self.global_step)
        if ran_away:
            raise self._stopped(ran_away)
        return stats

    # -- checkpoints ---------------------------------------------------------------
    def save(self, estimate_average: bool = True) -> bool:
        """Write the checkpoint, if the run is sound; returns whether it was written.

        ``estimate_average=False`` stores G's weight average without first estimating its
        BatchNorm statistics for its present weights (a mid-epoch checkpoint; the meta says
        so, and :func:`minigan.gan.sampler.load_generator` estimates them on loading).

        Raises :class:`TrainingDiverged` when a loss, a weight, a buffer or an Adam moment
        is not finite.  While the losses are running away (a :class:`RunAway` streak, or
        the steps since the last row above its bound) nothing is written, so that the
        checkpoint on disk stays the last good one."""
        names = sorted(self.window.sums)
        models_ = {"G": self.G, "D": self.D}
        if self.ema is not None:
            if estimate_average:
                self.ema.model()  # its BatchNorm estimates go into the checkpoint with it
            models_["G_ema"] = self.ema.avg
        optimizers = {"G": self.opt_G, "D": self.opt_D}
        device_state = io.checkpoint_arrays(models_, optimizers)
        # one transfer: the flags, the window's losses so far and every array of the checkpoint
        sums, _, host = self._read(names, arrays=list(device_state.values()))
        partial = {k: v / self.window.count for k, v in sums.items()} if self.window.count else {}
        if self.runaway.streak or self.runaway.out(partial):
            return False
        meta = {"model": self.config.model, "dataset": self.config.dataset, "pack": self.config.pack,
                "conditional": bool(self.config.conditional),
                "config": dataclasses.asdict(self.config),
                "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step, "steps_per_epoch": self.steps_per_epoch,
                "n_data": len(self.data), "version": __version__, "window": self.window.state(sums),
                "runaway": self.runaway.state()}
        if self.ema is not None:
            meta["g_ema_batchnorm"] = "estimated" if self.ema.estimated else "stale"
        if self.writes:  # rank 0 alone writes
            self.run_log.sync()  # the rows this checkpoint covers reach the disk before it does
            io.save_checkpoint(self.path(CHECKPOINT), models=models_, optimizers=optimizers, meta=meta,
                               state=dict(zip(device_state, host)))
        self.checkpoint_step = self.global_step
        return True

    def restore(self, path=None):
        """Continue from a checkpoint written by :meth:`save` (weights, moments, RNG, position).

        With ``g_ema``, a checkpoint written without a weight average (an older one, or
        one trained without ``g_ema``) starts the average from the restored G.
        """
        path = path or self.path(CHECKPOINT)
        models_ = {"G": self.G, "D": self.D}
        has_average = self.ema is not None and "G_ema" in io.checkpoint_model_names(path)
        if has_average:
            models_["G_ema"] = self.ema.avg
        meta = io.load_checkpoint(path, models=models_,
                                  optimizers={"G": self.opt_G, "D": self.opt_D},
                                  expect_model=self.config.model)
        if self.ema is not None:
            self.ema.loaded() if has_average else self.ema.reset_to(self.G)
        if bool(meta.get("conditional", False)) != bool(self.config.conditional):
            kind = "conditional" if meta.get("conditional") else "unconditional"
            raise io.CheckpointMismatchError(f"{path}: the checkpoint holds a {kind} model; this run's "
                                             f"conditional={self.config.conditional}")
        if meta.get("n_data") != len(self.data) or meta.get("steps_per_epoch") != self.steps_per_epoch:
            raise io.CheckpointMismatchError(
                f"{path}: the checkpoint was trained on {meta.get('n_data')} images in batches giving "
                f"{meta.get('steps_per_epoch')} steps an epoch; this run has {len(self.data)} images "
                f"and {self.steps_per_epoch} steps")
        epoch, step = meta.get("epoch"), meta.get("step_in_epoch")
        if not (isinstance(epoch, int) and isinstance(step, int) and epoch >= 0
                and 0 <= step < self.steps_per_epoch):
            raise io.CheckpointError(f"{path}: the checkpoint is corrupt: its position (epoch {epoch!r}, "
                                     f"step {step!r}) is not one of this run's")
        try:
            self.window.load(meta.get("window"))
            self.runaway.load(meta.get("runaway"))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise io.CheckpointError(f"{path}: the checkpoint is corrupt: its log window or run-away "
                                     f"record is malformed ({type(e).__name__}: {e})") from None
        self.epoch, self.step_in_epoch = epoch, step
        self.checkpoint_step = self.global_step
        if self.writes:  # rank 0 alone writes
            self.run_log.truncate(self.global_step)
            io.remove_leftovers(path)  # half-written checkpoints of a run that was killed
        return meta

    # -- pictures ----------------------------------------------------------------------
    def generate(self, z, labels=None):
        """Output of the :meth:`drawing_generator` for noise ``z`` (and digit ``labels`` if
        conditional) in eval mode."""
        G = self.drawing_generator()
        was_training = G.training
        G.eval()
        if self.config.conditional:
            set_labels(G, self.xp.asarray(labels))
        try:
            return G.forward(z)
        finally:
            G.train(was_training)

    def pictures(self):
        """Sample grid (or scatter plot of points) for this epoch, loss curves and gradient flow
        (:meth:`minigan.gan.run_log.RunLog.pictures`); returns the epoch's picture."""
        return self.run_log.pictures(self.epoch, self.generate(self.fixed_noise, self.fixed_labels),
                                     labels={"G": self.G, "D": self.D})

    # -- scores ----------------------------------------------------------------------
    def wants_eval(self) -> bool:
        """Whether the epoch just completed gets scored (every ``eval_every`` epochs and the last)."""
        every = self.config.eval_every
        return every > 0 and (self.epoch % every == 0 or self.epoch == self.config.epochs)

    def evaluate(self, log=print):
        """Score the generator now (:func:`minigan.gan.scoring.score_generator`) and append to eval.csv.

        With ``g_ema`` the weight average is scored into eval.csv and the live G into
        eval_live.csv (same noise), so the two can be compared epoch by epoch.
        """
        cfg = self.config
        # Scores draw from their own generators and restore the global one: exact resume holds.
        state = devices.rng_state()
        try:
            scores = score_generator(self.drawing_generator(), cfg.dataset, cfg.model, seed=cfg.seed,
                                     device=cfg.device)
            live = (score_generator(self.G, cfg.dataset, cfg.model, seed=cfg.seed, device=cfg.device)
                    if self.ema is not None else None)
        finally:
            devices.set_rng_state(state)
        append_scores(self.path(EVAL_LOG), scores, epoch=self.epoch, step=self.global_step)
        if live is None:
            log(f"epoch {self.epoch} scores: {format_scores(scores, short=True)}")
        else:
            append_scores(self.path(EVAL_LIVE_LOG), live, epoch=self.epoch, step=self.global_step)
            log(f"epoch {self.epoch} scores (weight average): {format_scores(scores, short=True)}")
            log(f"epoch {self.epoch} scores (live G): {format_scores(live, short=True)}")
        return scores

    # -- the loop ----------------------------------------------------------------------
    def set_learning_rates(self):
        """This epoch's rates: constant, or with ``lr_decay="linear"`` scaled by (epochs - epoch) / epochs."""
        cfg = self.config
        scale = (cfg.epochs - self.epoch) / cfg.epochs if cfg.lr_decay == "linear" else 1.0
        self.opt_G.lr = cfg.lr * scale
        self.opt_D.lr = (cfg.lr_d or cfg.lr) * scale

    def batch_indices(self, epoch):
        perm = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.data))
        B = self.points_per_step
        return perm[: self.steps_per_epoch * B].reshape(self.steps_per_epoch, B)

    def request_stop(self):
        """Ask :meth:`fit` to stop before its next step: it saves a checkpoint there and raises
        :class:`TrainingInterrupted` (safe to call from a signal handler: it only sets a flag)."""
        self.stop_requested = True

    def _stop(self):
        saved = self.save()
        raise TrainingInterrupted(self.path(CHECKPOINT), self.checkpoint_step, saved)

    def fit(self, log=print):
        cfg = self.config
        if self.writes:  # rank 0 alone writes
            self.run_log.write_config()
        else:
            log = lambda *args, **kwargs: None  # noqa: E731  rank 0 alone talks
        from tqdm.auto import tqdm  # noqa: PLC0415  (start-up: ~40 ms, for a progress bar only)

        while self.epoch < cfg.epochs:
            self.set_learning_rates()
            order = self.device.asarray(self.batch_indices(self.epoch))  # one transfer an epoch
            bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, unit="step",
                       desc=f"epoch {self.epoch + 1}/{cfg.epochs}", disable=not self.progress,
                       dynamic_ncols=True, file=sys.stderr)
            t0 = time.perf_counter()
            try:
                while self.step_in_epoch < self.steps_per_epoch:
                    if self.stop_requested:  # between two steps: the state is whole
                        self._stop()
                    stats = self.train_step(*self.step_inputs(order[self.step_in_epoch]))
                    self.step_in_epoch += 1
                    bar.update(1)
                    self.window.add(stats)  # on the device: no synchronisation in a step without a row
                    if self.step_in_epoch % cfg.log_every == 0 or self.step_in_epoch == self.steps_per_epoch:
                        stats = self.log_row(time.perf_counter() - t0)
                        bar.set_postfix(d_loss=f"{stats['d_loss']:.3f}", g_loss=f"{stats['g_loss']:.3f}",
                                        refresh=False)
                    if (self.step_in_epoch % cfg.checkpoint_every == 0
                            and self.step_in_epoch < self.steps_per_epoch):
                        self.save(estimate_average=False)
            finally:
                bar.close()
            seconds = time.perf_counter() - t0
            self.epoch += 1
            self.step_in_epoch = 0
            # The epoch's scores and pictures come before its checkpoint: a run killed in
            # between resumes from the checkpoint before and redoes them from the same weights.
            grid = None
            if self.writes:  # rank 0 alone scores and draws
                if self.wants_eval():
                    self.evaluate(log)
                grid = self.pictures()
            self.save()
            log(f"epoch {self.epoch}/{cfg.epochs}: {seconds:.1f} s, d_loss {stats['d_loss']:.3f}, "
                f"g_loss {stats['g_loss']:.3f}, D(x) {stats['d_real']:.2f}, D(G(z)) {stats['d_fake']:.2f}; "
                f"samples in {grid}")
            if self.stop_requested and self.epoch < cfg.epochs:
                self._stop()
        return self

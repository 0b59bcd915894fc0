"""The run's logs and pictures, in its folder ``config.out``.

Logs (CSV, appended as training goes, so every finished row survives a kill)::

    log.csv          epoch, step, d_loss, g_loss, d_real, d_fake, seconds
                     (means over the steps since the previous row)
    gradients.csv    step, model (G or D), param, norm: the L2 norm of each
                     parameter's gradient at the logged step; param is the parameter's
                     name in the checkpoint (``0.W``), which gradient_flow.png's legend
                     shows as its layer's readable name (``dense1.W``)
    eval.csv         the scores (written by minigan.metrics.append_scores);
    eval_live.csv    with g_ema, the live generator's scores beside the average's

A resumed run first drops the rows written after its checkpoint (they are redone),
and any row a kill cut short.  That rewrite is atomic, as is every picture: a kill
at any moment leaves the old file or the new one.

Pictures, redrawn after every epoch (before the epoch's checkpoint, so a run killed
in between redoes the epoch's end and draws them again)::

    samples/epoch_NNN.png   this epoch's sample grid (one row per digit when
                            conditional), or on a 2-D mixture a scatter plot over
                            the true modes with the mode scores in its title
    samples.png             the latest of those
    samples.gif             an animation of the epoch pictures in samples/, one frame per
                            epoch (the last held longer), looping: built from the files
                            there, so it stays whole across kills and resumes; redrawn
                            after epochs 1, 2, 4, 8, ... and the run's last
                            (:func:`animation_due`)
    losses.png              log.csv's losses over the steps
    gradient_flow.png       gradients.csv's norms per layer (legend: G.dense1.W, D.conv2.b, ...)

:func:`run_files` lists what of a run a folder holds; a new run refuses such a folder
unless told to replace it, and :func:`clear_run` removes them then (and nothing else).
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import io as text_io
import json
import os

from .. import io, viz
from ..data import MIXTURES, mode_stats
from ..runtime import devices
from . import models

LOG = "log.csv"
GRADIENTS_LOG = "gradients.csv"
EVAL_LOG = "eval.csv"
EVAL_LIVE_LOG = "eval_live.csv"  # with g_ema: the live generator's scores, beside the average's
LOG_COLUMNS = ["epoch", "step", "d_loss", "g_loss", "d_real", "d_fake", "seconds"]
GRADIENT_COLUMNS = ["step", "model", "param", "norm"]
GRID_COLUMNS = 8  # samples per digit row in a conditional model's grid
CHECKPOINT = "checkpoint.npz"  # in the run folder; a resumed run reads its config from it
CONFIG = "config.json"
SAMPLES = "samples"  # the folder of the epoch grids
# What a run writes into its folder (beside the epoch grids in samples/)
ANIMATION = "samples.gif"  # the epoch pictures, one frame each
RUN_FILES = (CONFIG, CHECKPOINT, LOG, GRADIENTS_LOG, EVAL_LOG, EVAL_LIVE_LOG, "samples.png",
             ANIMATION, "losses.png", "gradient_flow.png")


def run_files(out: str) -> list:
    """The files of a run that the folder ``out`` holds (names relative to it; empty when
    ``out`` holds no run or does not exist)."""
    found = [name for name in RUN_FILES if os.path.lexists(os.path.join(out, name))]
    grids = sorted(glob.glob(os.path.join(glob.escape(out), SAMPLES, "epoch_*.png")))
    return found + [os.path.relpath(p, out) for p in grids]


def clear_run(out: str) -> list:
    """Remove the run in ``out`` (:func:`run_files`, and the temporary files of writes cut
    short), leaving anything else there; returns what was removed."""
    gone = run_files(out)
    for name in gone:
        os.remove(os.path.join(out, name))
    remove_leftovers(out)
    return gone


def epoch_pictures(out: str, upto: int | None = None) -> list:
    """The epoch pictures ``samples/epoch_NNN.png`` in the run folder ``out``, in the order
    of their epochs (up to epoch ``upto`` when given)."""
    found = []
    for p in glob.glob(os.path.join(glob.escape(out), SAMPLES, "epoch_*.png")):
        number = os.path.basename(p)[len("epoch_"):-len(".png")]
        if number.isdigit() and (upto is None or int(number) <= upto):
            found.append((int(number), p))
    return [p for _, p in sorted(found)]


def animation_due(epoch: int, last: int) -> bool:
    """Whether samples.gif is redrawn after epoch ``epoch`` of a run of ``last`` epochs: after
    its last epoch and after epochs 1, 2, 4, 8, ...  Each redraw encodes every epoch picture
    again (about 40 ms a frame), so a redraw every epoch costs time quadratic in the epochs
    (19 s of the MLP default's 99); on this schedule the frames encoded stay below three
    times the epochs."""
    return epoch >= last or epoch & (epoch - 1) == 0


def remove_leftovers(out: str):
    """Delete the hidden temporary files that writes in ``out`` and ``out/samples`` left
    when their process was killed (:func:`minigan.io.atomic_write`)."""
    for name in RUN_FILES:
        io.remove_leftovers(os.path.join(out, name))
    for p in glob.glob(os.path.join(glob.escape(out), SAMPLES, ".epoch_*.png.*.tmp")):
        os.remove(p)


def _step_of(row, header):
    """The ``step`` of a complete CSV row, or None for a row a kill cut short."""
    if len(row) != len(header):
        return None
    try:
        return int(row[header.index("step")])
    except ValueError:
        return None


class RunLog:
    """The logs and pictures of the run configured by ``config`` (a :class:`TrainConfig`)."""

    def __init__(self, config):
        self.config = config

    def path(self, *parts):
        return os.path.join(self.config.out, *parts)

    def write_config(self):
        """Create the run folder and write the config into it (``config.json``)."""
        with io.atomic_write(self.path(CONFIG), "w") as f:
            json.dump(dataclasses.asdict(self.config), f, indent=2)

    # -- logs ------------------------------------------------------------------------
    def truncate(self, upto_step: int):
        """Drop log rows written after the checkpoint we resume from (they will be redone),
        and rows a kill cut short; each log is rewritten atomically."""
        remove_leftovers(self.config.out)
        for name in (LOG, GRADIENTS_LOG, EVAL_LOG, EVAL_LIVE_LOG):
            p = self.path(name)
            if not os.path.exists(p):
                continue
            with open(p, newline="") as f:
                text = f.read()
            rows = list(csv.reader(text_io.StringIO(text)))
            header = rows[0] if rows else []
            keep = [header] + [r for r in rows[1:] if _step_of(r, header) is not None
                               and _step_of(r, header) <= upto_step] if "step" in header else []
            if not text.endswith("\n") or len(keep) < len(rows):
                with io.atomic_write(p, "w") as f:  # a kill here leaves the old log, rows and all
                    csv.writer(f).writerows(keep)

    def sync(self):
        """Flush the logs to the disk (fsync): called before each checkpoint, so that the rows
        it covers are on the disk when it is, even if the machine loses power."""
        for name in (LOG, GRADIENTS_LOG, EVAL_LOG, EVAL_LIVE_LOG):
            p = self.path(name)
            if os.path.exists(p):
                try:
                    fd = os.open(p, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                except OSError as e:
                    raise io.named_os_error(e, p) from e

    def append(self, name, header, rows):
        """Append ``rows`` to the CSV ``name``, writing ``header`` first when it is new."""
        p = self.path(name)
        try:
            new = not os.path.exists(p) or os.path.getsize(p) == 0
            with open(p, "a", newline="") as f:
                w = csv.writer(f)
                if new:
                    w.writerow(header)
                w.writerows(rows)
        except OSError as e:
            raise io.named_os_error(e, p) from e

    def log_step(self, epoch: int, step: int, stats: dict, seconds: float, nets: dict, norms=None):
        """A row of log.csv for epoch ``epoch`` (from 1) at global ``step``, and the gradient
        norms of ``nets`` (name -> model, e.g. ``{"G": G, "D": D}``) into gradients.csv;
        ``norms`` (``{net: {param: norm}}``), when given, are those norms read already."""
        row = [epoch, step, stats["d_loss"], stats["g_loss"], stats["d_real"], stats["d_fake"],
               round(seconds, 3)]
        self.append(LOG, LOG_COLUMNS, [row])
        grads = []
        for mname, model in nets.items():
            for pname, norm in (norms[mname] if norms is not None else viz.gradient_norms(model)).items():
                grads.append([step, mname, pname, norm])
        self.append(GRADIENTS_LOG, GRADIENT_COLUMNS, grads)

    # -- pictures --------------------------------------------------------------------
    def pictures(self, epoch: int, samples, labels=None):
        """Draw ``samples`` of epoch ``epoch`` (epochs completed): images (N, 1, 28, 28) or
        (N, 784), or points (N, 2) on a 2-D mixture; the animation of the epoch pictures so
        far; then the loss curves and gradient flow (its legend by the readable layer names
        of ``labels``, ``{"G": G, "D": D}``: :func:`minigan.viz.plot_gradient_flow`).
        Returns the path of the epoch's picture."""
        cfg = self.config
        grid = self.path("samples", f"epoch_{epoch:03d}.png")
        if cfg.is_mixture:
            pts = devices.to_numpy(samples)
            s = mode_stats(pts, cfg.dataset)
            title = (f"{cfg.dataset}, pack {cfg.pack}, epoch {epoch}: {s['modes_covered']}/"
                     f"{len(s['counts'])} modes, {100 * s['high_quality']:.1f}% high quality, "
                     f"KL {s['reverse_kl']:.3f}")
            mix = MIXTURES[cfg.dataset]
            viz.plot_points(pts, mix.modes, grid, std=mix.std, title=title)
            viz.plot_points(pts, mix.modes, self.path("samples.png"), std=mix.std, title=title)
        else:
            if cfg.conditional:
                kw = {"nrow": GRID_COLUMNS, "row_labels": list(range(models.NUM_CLASSES)),
                      "title": f"conditional {cfg.model}, epoch {epoch}"}
            else:
                kw = {"title": f"{cfg.model}, epoch {epoch}"}
            viz.save_image_grid(samples, grid, **kw)
            viz.save_image_grid(samples, self.path("samples.png"), **kw)
        if animation_due(epoch, cfg.epochs):
            # the epochs drawn so far, by the files there (a resumed run's earlier ones included)
            viz.save_gif(epoch_pictures(cfg.out, upto=epoch), self.path(ANIMATION))
        if os.path.exists(self.path(LOG)):
            viz.plot_losses(self.path(LOG), self.path("losses.png"), x="step")
        if os.path.exists(self.path(GRADIENTS_LOG)):
            with open(self.path(GRADIENTS_LOG), newline="") as f:
                viz.plot_gradient_flow(list(csv.DictReader(f)), self.path("gradient_flow.png"),
                                       labels=labels)
        return grid

"""The run's logs and pictures, in its folder ``config.out``.

Logs (CSV, appended as training goes, so every finished row survives a kill)::

    log.csv          epoch, step, d_loss, g_loss, d_real, d_fake, seconds
                     (means over the steps since the previous row)
    gradients.csv    step, model (G or D), param, norm: the L2 norm of each
                     parameter's gradient at the logged step
    eval.csv         the scores (written by minigan.metrics.append_scores);
    eval_live.csv    with g_ema, the live generator's scores beside the average's

A resumed run first drops the rows written after its checkpoint (they are redone).

Pictures, redrawn after every epoch::

    samples/epoch_NNN.png   this epoch's sample grid (one row per digit when
                            conditional), or on a 2-D mixture a scatter plot over
                            the true modes with the mode scores in its title
    samples.png             the latest of those
    losses.png              log.csv's losses over the steps
    gradient_flow.png       gradients.csv's norms per layer
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os

from .. import backend, viz
from . import models

LOG = "log.csv"
GRADIENTS_LOG = "gradients.csv"
EVAL_LOG = "eval.csv"
EVAL_LIVE_LOG = "eval_live.csv"  # with g_ema: the live generator's scores, beside the average's
LOG_COLUMNS = ["epoch", "step", "d_loss", "g_loss", "d_real", "d_fake", "seconds"]
GRADIENT_COLUMNS = ["step", "model", "param", "norm"]
GRID_COLUMNS = 8  # samples per digit row in a conditional model's grid
NEW_RUN_REMOVES = (LOG, GRADIENTS_LOG, EVAL_LOG)  # the logs a new run in an old folder starts afresh


def remove_logs(out: str):
    """Delete the logs of an earlier run in ``out``, so that a new run starts new ones."""
    for name in NEW_RUN_REMOVES:
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))


class RunLog:
    """The logs and pictures of the run configured by ``config`` (a :class:`TrainConfig`)."""

    def __init__(self, config):
        self.config = config

    def path(self, *parts):
        return os.path.join(self.config.out, *parts)

    def write_config(self):
        """Create the run folder and write the config into it (``config.json``)."""
        os.makedirs(self.config.out, exist_ok=True)
        with open(self.path("config.json"), "w") as f:
            json.dump(dataclasses.asdict(self.config), f, indent=2)

    # -- logs ------------------------------------------------------------------------
    def truncate(self, upto_step: int):
        """Drop log rows written after the checkpoint we resume from (they will be redone)."""
        for name in (LOG, GRADIENTS_LOG, EVAL_LOG, EVAL_LIVE_LOG):
            p = self.path(name)
            if not os.path.exists(p):
                continue
            with open(p, newline="") as f:
                rows = list(csv.reader(f))
            if not rows:
                continue
            header, body = rows[0], rows[1:]
            i = header.index("step")
            keep = [r for r in body if len(r) == len(header) and int(r[i]) <= upto_step]
            with open(p, "w", newline="") as f:
                csv.writer(f).writerows([header] + keep)

    def append(self, name, header, rows):
        """Append ``rows`` to the CSV ``name``, writing ``header`` first when it is new."""
        p = self.path(name)
        new = not os.path.exists(p)
        with open(p, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(header)
            w.writerows(rows)

    def log_step(self, epoch: int, step: int, stats: dict, seconds: float, nets: dict):
        """A row of log.csv for epoch ``epoch`` (from 1) at global ``step``, and the gradient
        norms of ``nets`` (name -> model, e.g. ``{"G": G, "D": D}``) into gradients.csv."""
        row = [epoch, step, stats["d_loss"], stats["g_loss"], stats["d_real"], stats["d_fake"],
               round(seconds, 3)]
        self.append(LOG, LOG_COLUMNS, [row])
        grads = []
        for mname, model in nets.items():
            for pname, norm in viz.gradient_norms(model).items():
                grads.append([step, mname, pname, norm])
        self.append(GRADIENTS_LOG, GRADIENT_COLUMNS, grads)

    # -- pictures --------------------------------------------------------------------
    def pictures(self, epoch: int, samples):
        """Draw ``samples`` of epoch ``epoch`` (epochs completed): images (N, 1, 28, 28) or
        (N, 784), or points (N, 2) on a 2-D mixture; then the loss curves and gradient flow.
        Returns the path of the epoch's picture."""
        cfg = self.config
        grid = self.path("samples", f"epoch_{epoch:03d}.png")
        if cfg.is_mixture:
            from ..data import MIXTURES, mode_stats  # noqa: PLC0415

            pts = backend.to_numpy(samples)
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
        if os.path.exists(self.path(LOG)):
            viz.plot_losses(self.path(LOG), self.path("losses.png"), x="step")
        if os.path.exists(self.path(GRADIENTS_LOG)):
            with open(self.path(GRADIENTS_LOG), newline="") as f:
                viz.plot_gradient_flow(list(csv.DictReader(f)), self.path("gradient_flow.png"))
        return grid

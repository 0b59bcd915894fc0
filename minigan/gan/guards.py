"""What stops a run: divergence, a run-away loss, and a stop asked for.

Divergence stops training with :class:`TrainingDiverged`, which names the step and
the last good checkpoint; a checkpoint is written only when it is good:

* a loss that is NaN or infinite (recorded on the device at every step, read with
  the log rows and checkpoints);
* weights, BatchNorm buffers or Adam moments that are not finite (one reduction
  per tensor, read with the log rows and before each checkpoint);
* a loss that has run away while staying finite (:class:`RunAway`): at a log row
  whose D or G loss exceeds ``RunAway.FACTOR`` (1000) times the median of its
  magnitudes over the previous ``RunAway.HISTORY`` (20) log rows (at least
  ``RunAway.FLOOR``, 1), for ``RunAway.PATIENCE`` (3) such rows in a row.  While
  such a stretch lasts, and while the steps since the last row are above the
  bound, no checkpoint is written, so the last one predates the run-away.

:meth:`minigan.gan.trainer.Trainer.request_stop` (the command line's Ctrl-C)
stops the run between two steps, never between D's update and G's: it saves a
checkpoint there and raises :class:`TrainingInterrupted`.
"""
from __future__ import annotations

import numpy as np


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or infinite, or a loss ran away (:class:`RunAway`); the
    last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """The run stopped between two steps as asked (:meth:`minigan.gan.trainer.Trainer.request_stop`).

    ``checkpoint`` is the path of the checkpoint to resume from, ``step`` its global step
    (None when none was written), ``saved`` whether it was written at the stop."""

    def __init__(self, checkpoint, step, saved):
        super().__init__(checkpoint)
        self.checkpoint, self.step, self.saved = checkpoint, step, saved


class Health:
    """The first step whose loss was not finite, kept on the device so that a step reads nothing.

    ``step`` (-1 while all is well), ``which`` (0: D's loss, 1: G's) and ``value`` are 0-d
    device arrays, updated with a few elementwise operations per step and read with the
    log rows and before each checkpoint.
    """

    def __init__(self, device):
        xp = self.xp = device.xp
        self.step = xp.full((), -1, dtype=xp.int64)
        self.which = xp.zeros((), dtype=xp.int64)
        self.value = xp.zeros((), dtype=xp.float64)

    def record(self, d_loss, g_loss, step: int):
        xp = self.xp
        d_bad = ~xp.isfinite(xp.asarray(d_loss, dtype=xp.float64))
        g_bad = ~xp.isfinite(xp.asarray(g_loss, dtype=xp.float64))
        first = (self.step < 0) & (d_bad | g_bad)
        self.which = xp.where(first, xp.where(d_bad, 0, 1), self.which)
        self.value = xp.where(first, xp.where(d_bad, d_loss, g_loss), self.value)
        self.step = xp.where(first, step, self.step)

    def flags(self) -> list:
        """The three flags as float64 0-d device values (to be read with other numbers)."""
        return [self.xp.asarray(a, dtype=self.xp.float64) for a in (self.step, self.which, self.value)]

    @staticmethod
    def check(vals, diverged):
        """Raise ``diverged(step, which, value)`` if the read flags ``vals`` mark a bad step."""
        step, which, value = vals
        if step >= 0:
            raise diverged(int(step), int(which), float(value))


class Window:
    """The sums of the step numbers since the last log row (0-d device values) and their count.

    Kept in the checkpoint, so that a run resumed in the middle of a window writes the
    row an uninterrupted run would."""

    def __init__(self, xp):
        self.xp = xp
        self.clear()

    def clear(self):
        self.sums, self.count = {}, 0

    def add(self, stats: dict):
        for k, v in stats.items():
            v = self.xp.asarray(v, dtype=self.xp.float64)  # summed in float64, as a resumed window is
            self.sums[k] = v if k not in self.sums else self.sums[k] + v
        self.count += 1

    def state(self, sums: dict | None = None) -> dict:
        """The count and the sums as floats (``sums``: those floats, read already)."""
        sums = sums if sums is not None else {k: float(v) for k, v in self.sums.items()}
        return {"count": self.count, "sums": {k: float(sums[k]) for k in self.sums}}

    def load(self, state):
        self.clear()
        if state:
            self.count = int(state["count"])
            self.sums = {k: self.xp.asarray(v, dtype=self.xp.float64) for k, v in state["sums"].items()}


class RunAway:
    """The rule that stops a run whose losses stay finite but explode, fed the log rows.

    For each loss ``L`` (``d_loss``, ``g_loss``) and a log row's value ``x_r`` (its mean
    over the steps since the previous row)::

        ref_r = max(FLOOR, median of |x| over the last HISTORY rows within bounds)
                (FLOOR while there are none)
        row r is out  <=>  |x_r| > FACTOR * ref_r  for D's loss or G's

    and the run has run away at the ``PATIENCE``-th row out in a row.  A value out of
    bounds does not join the median, so a run that explodes from its first row is
    measured against the floor, not against itself.  A GAN's losses stay within a few
    units (BCE near log 4 and log 2; least squares and hinge below a few), so a
    thousandfold jump over their recent median that lasts ``PATIENCE * log_every``
    steps (150 by default) is an explosion, not noise, and a lone spike does not stop
    the run.  The state (the recent values and the streak) goes into the checkpoint,
    so a resumed run decides as an uninterrupted one would.
    """

    FACTOR = 1e3
    FLOOR = 1.0
    HISTORY = 20
    PATIENCE = 3
    LOSSES = ("d_loss", "g_loss")

    def __init__(self):
        self.history = {k: [] for k in self.LOSSES}
        self.streak = 0  # rows out in a row, up to the last one
        self.since = None  # the step of the first row of that streak

    def bound(self, name: str) -> float:
        """``FACTOR * ref`` for the loss ``name``, from the rows so far."""
        h = self.history[name]
        return self.FACTOR * max(self.FLOOR, float(np.median(h)) if h else 0.0)

    def out(self, values: dict):
        """The first loss of ``values`` (name -> float) above its bound, or None."""
        return next((k for k in self.LOSSES if k in values and abs(values[k]) > self.bound(k)), None)

    def add_row(self, values: dict, step: int):
        """Take the log row ``values`` at global ``step``; returns a description of the
        run-away when this row completes ``PATIENCE`` rows out in a row, else None."""
        bad = self.out(values)
        bounds = {k: self.bound(k) for k in self.LOSSES}
        self.streak = self.streak + 1 if bad else 0
        self.since = (self.since if self.streak > 1 else step) if bad else None
        for k in self.LOSSES:
            if k in values and abs(values[k]) <= bounds[k]:
                self.history[k] = (self.history[k] + [abs(float(values[k]))])[-self.HISTORY:]
        if bad and self.streak >= self.PATIENCE:
            out = " and ".join(f"{k} {values[k]:.3g} (bound {bounds[k]:.3g})" for k in self.LOSSES
                               if k in values and abs(values[k]) > bounds[k])
            return (f"the losses ran away: {out} at step {step}, out of bounds in {self.streak} log rows "
                    f"in a row since step {self.since} (bound: {self.FACTOR:g} x the median of the "
                    f"loss's recent log rows, at least {self.FACTOR * self.FLOOR:g})")
        return None

    def state(self) -> dict:
        return {"history": self.history, "streak": self.streak, "since": self.since}

    def load(self, state):
        self.__init__()
        if state:
            self.history = {k: [float(v) for v in state["history"].get(k, [])] for k in self.LOSSES}
            self.streak, self.since = int(state["streak"]), state.get("since")

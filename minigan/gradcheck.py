"""Finite-difference gradient checks, in float64.

For a layer ``f`` and a fixed random upstream gradient ``dy`` the checker
looks at the scalar ``L(x, theta) = sum(f(x; theta) * dy)``, whose gradient
is exactly what ``backward(dy)`` returns (``dL/dx``) and accumulates
(``dL/dtheta``).  It compares that with central differences

    dL/du ~ (L(u + eps e) - L(u - eps e)) / (2 eps)

along every coordinate e of a small tensor, or along ``directions`` random
unit vectors of a large one (then the analytic side is ``<grad, e>``).  A
random ``dy`` matters: with ``dy = 1`` a wrong backward can still pass
(BatchNorm's dx sums to zero against a constant).

The error reported for each tensor is ``max |analytic - numeric|`` divided
by the largest magnitude on either side: a relative error on the scale of
that gradient, robust to entries that happen to be near zero.  That scale
is floored at ``floor`` (1e-2): a gradient that is zero in truth (the bias
of a layer feeding BatchNorm) is then judged by its absolute error, since
float64 central differences carry noise near 1e-10 and a ratio of two
noises means nothing.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from . import losses, nn
from .runtime import devices


@dataclass
class GradCheckEntry:
    """One tensor's check.  ``index`` is the element where analytic and numeric
    differ most (None when the check ran along random directions: then no single
    element is to blame, and ``direction`` is the worst one's number, from 0);
    ``analytic`` and ``numeric`` are the two values there."""

    name: str
    size: int
    mode: str  # "all" or "N dirs"
    rel_err: float
    abs_err: float
    index: tuple | None = None
    direction: int | None = None
    analytic: float = float("nan")
    numeric: float = float("nan")

    @property
    def where(self) -> str:
        """``"[1, 0, 2]"`` (the worst element), or which random direction was worst."""
        if self.index is not None:
            return "[" + ", ".join(str(i) for i in self.index) + "]"
        if self.direction is not None:
            return f"random direction {self.direction + 1} of {self.mode.split()[0]}"
        return "-"


@dataclass
class GradReport:
    """The outcome of one check: one entry per input and parameter."""

    label: str
    entries: list = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max((e.rel_err for e in self.entries), default=0.0)

    def ok(self, tol: float = 1e-6) -> bool:
        return not self.failures(tol)

    def assert_ok(self, tol: float = 1e-6):
        if not self.ok(tol):
            raise AssertionError(f"gradient check failed (tolerance {tol:g}):\n{self}")
        return self

    def failures(self, tol: float = 1e-6) -> list:
        """The entries whose relative error exceeds ``tol``."""
        return [e for e in self.entries if not e.rel_err <= tol]

    def __str__(self):
        lines = [f"{self.label}", f"  {'tensor':<14}{'size':>8}  {'checked':<9}{'rel err':>10}{'abs err':>10}"
                                  f"  worst at"]
        for e in self.entries:
            lines.append(f"  {e.name:<14}{e.size:>8}  {e.mode:<9}{e.rel_err:>10.2e}{e.abs_err:>10.2e}"
                         f"  {e.where}")
        return "\n".join(lines)


FLOOR = 1e-2


def _numeric_vs_analytic(loss, u, grad, eps, max_elements, directions, rng):
    """Compare ``grad`` (analytic dL/du) with central differences of ``loss()`` in ``u`` (edited in place).

    Returns the fields of :class:`GradCheckEntry` after ``name`` and ``size``.
    """
    xp = devices.get_xp(u)
    flat = u.reshape(-1)  # a view: editing it edits u
    g = devices.to_numpy(grad).reshape(-1)
    if u.size <= max_elements:
        num = np.empty(u.size)
        for i in range(u.size):
            old = float(flat[i])
            flat[i] = old + eps
            lp = loss()
            flat[i] = old - eps
            lm = loss()
            flat[i] = old
            num[i] = (lp - lm) / (2 * eps)
        ana, mode = g, "all"
    else:
        num = np.empty(directions)
        ana = np.empty(directions)
        base = u.copy()
        for d in range(directions):
            e = rng.standard_normal(u.size)
            e /= np.linalg.norm(e)
            e_dev = xp.asarray(e.reshape(u.shape))
            u[...] = base + eps * e_dev
            lp = loss()
            u[...] = base - eps * e_dev
            lm = loss()
            num[d] = (lp - lm) / (2 * eps)
            ana[d] = float(g @ e)
        u[...] = base
        mode = f"{directions} dirs"
    if not num.size:
        return mode, 0.0, 0.0, None, None, float("nan"), float("nan")
    diff = np.abs(ana - num)
    # a NaN anywhere is the worst place there is (argmax of NaN-free values otherwise)
    worst = int(np.argmax(np.where(np.isnan(diff), np.inf, diff)))
    abs_err = float(np.max(diff))
    scale = max(float(np.max(np.abs(num), initial=0.0)), float(np.max(np.abs(ana), initial=0.0)))
    rel_err = abs_err / max(scale, FLOOR)
    if mode == "all":
        index, direction = tuple(int(i) for i in np.unravel_index(worst, u.shape)), None
    else:
        index, direction = None, worst
    return mode, rel_err, abs_err, index, direction, float(ana[worst]), float(num[worst])


# Tensors of up to MAX_ELEMENTS entries are checked entry by entry, larger ones along
# DIRECTIONS random unit vectors (the defaults of the two checks below).
MAX_ELEMENTS = 400
DIRECTIONS = 12


def check_layer(layer, x, dy=None, *, eps=1e-6, max_elements=None, directions=None, seed=0,
                check_input=True, label=None) -> GradReport:
    """Check ``backward`` of ``layer`` (any Layer, Sequential included) at input ``x``.

    The layer is copied and cast to float64, so the original is untouched.
    Randomness inside the layer (dropout masks) is replayed identically for
    every evaluation.  Returns a :class:`GradReport`; call ``.assert_ok()``.
    """
    max_elements = MAX_ELEMENTS if max_elements is None else max_elements
    directions = DIRECTIONS if directions is None else directions
    layer = copy.deepcopy(layer).astype(np.float64)
    xp = devices.get_xp(x)
    x = xp.array(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    saved_rng = copy.deepcopy(devices.rng_state())
    replay = copy.deepcopy(saved_rng)

    def forward(inp):
        devices.set_rng_state(copy.deepcopy(replay))
        return layer.forward(inp)

    try:
        y = forward(x)
        if dy is None:
            dy = xp.asarray(rng.standard_normal(y.shape))
        dy = xp.asarray(dy, dtype=np.float64)
        layer.zero_grad()
        dx = layer.backward(dy)
        report = GradReport(label or repr(layer).replace("\n", " "))

        def loss():
            return float((forward(x) * dy).sum())

        if check_input:
            report.entries.append(GradCheckEntry(
                "x", x.size, *_numeric_vs_analytic(loss, x, dx, eps, max_elements, directions, rng)))
        for name, lyr, key in list(layer.named_parameters()):
            grad = lyr.grads[key].copy()
            report.entries.append(GradCheckEntry(
                name, lyr.params[key].size,
                *_numeric_vs_analytic(loss, lyr.params[key], grad, eps, max_elements, directions, rng)))
    finally:
        devices.set_rng_state(saved_rng)
    return report


def check_loss(loss_fn, x, *args, eps=1e-6, max_elements=None, directions=None, seed=0,
               label=None) -> GradReport:
    """Check a loss ``loss_fn(x, *args) -> (value, grad)`` in float64 at ``x``."""
    max_elements = MAX_ELEMENTS if max_elements is None else max_elements
    directions = DIRECTIONS if directions is None else directions
    xp = devices.get_xp(x)
    x = xp.array(x, dtype=np.float64)
    _, grad = loss_fn(x, *args)
    rng = np.random.default_rng(seed)
    report = GradReport(label or getattr(loss_fn, "__name__", "loss"))
    report.entries.append(GradCheckEntry(
        "x", x.size, *_numeric_vs_analytic(lambda: loss_fn(x, *args)[0], x, grad, eps,
                                           max_elements, directions, rng)))
    return report


def standard_cases():
    """The layers and losses that ``minigan gradcheck`` checks: ``(label, kind, object, x, args)``."""
    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape)

    def away(a, gap=0.05):  # keep values off the kinks of ReLU-like functions
        return a + np.sign(a) * gap

    def on_engine(layer, engine):
        layer.engine = engine
        return layer

    c = []
    c.append(("Dense 7->5", "layer", nn.Dense(7, 5), r(4, 7), ()))
    c.append(("Conv2D 3->4 k3 s1 p1", "layer", nn.Conv2D(3, 4, 3, 1, 1), r(2, 3, 6, 5), ()))
    c.append(("Conv2D 2->3 k5 s2 same", "layer", nn.Conv2D(2, 3, 5, 2, "same"), r(2, 2, 9, 8), ()))
    c.append(("Conv2D 2->3 k2 s3 valid", "layer", nn.Conv2D(2, 3, 2, 3, "valid"), r(2, 2, 8, 7), ()))
    c.append(("Conv2DTranspose 3->2 k3 s2 p1 op1", "layer",
              nn.Conv2DTranspose(3, 2, 3, 2, 1, output_padding=1), r(2, 3, 4, 5), ()))
    c.append(("Conv2DTranspose 3->2 k5 s2 same", "layer",
              nn.Conv2DTranspose(3, 2, 5, 2, "same"), r(2, 3, 4, 3), ()))
    c.append(("Conv2DTranspose 2->2 k1 s2 same", "layer",
              nn.Conv2DTranspose(2, 2, 1, 2, "same"), r(2, 2, 3, 3), ()))
    # no padding on the right and a kernel that is a multiple of the stride: the last
    # window ends on the image's last column (8 wide) or one short of it (5 wide)
    c.append(("Conv2D 3->4 k4 s2 p(1,0)", "layer", nn.Conv2D(3, 4, 4, 2, (1, 0)), r(2, 3, 7, 8), ()))
    c.append(("Conv2D 2->3 k2 s2 valid", "layer", nn.Conv2D(2, 3, 2, 2, "valid"), r(2, 2, 6, 5), ()))
    c.append(("Conv2DTranspose 3->2 k4 s2 p(1,0)", "layer",
              nn.Conv2DTranspose(3, 2, 4, 2, (1, 0)), r(2, 3, 3, 4), ()))
    c.append(("Conv2DTranspose 2->3 k2 s2 valid", "layer",
              nn.Conv2DTranspose(2, 3, 2, 2, "valid"), r(2, 2, 3, 3), ()))
    # the spectral engine: where it pays (16 channels a side, a batch of 8), and forced
    # onto it for strided geometries too small to pay
    c.append(("Conv2D 16->16 k5 s1 same (spectral)", "layer", nn.Conv2D(16, 16, 5, 1, "same"),
              r(8, 16, 5, 5), ()))
    c.append(("Conv2DTranspose 16->16 k4 s1 p2 (spectral)", "layer", nn.Conv2DTranspose(16, 16, 4, 1, 2),
              r(8, 16, 6, 6), ()))
    c.append(("Conv2D 3->4 k4 s2 p(1,0) on spectral", "layer",
              on_engine(nn.Conv2D(3, 4, 4, 2, (1, 0)), "spectral"), r(2, 3, 7, 8), ()))
    c.append(("Conv2D 2->3 k5 s2 same on spectral", "layer",
              on_engine(nn.Conv2D(2, 3, 5, 2, "same"), "spectral"), r(2, 2, 9, 8), ()))
    c.append(("Conv2DTranspose 3->2 k5 s2 same on spectral", "layer",
              on_engine(nn.Conv2DTranspose(3, 2, 5, 2, "same"), "spectral"), r(2, 3, 4, 3), ()))
    c.append(("Conv2DTranspose 3->2 k4 s2 p(1,0) on spectral", "layer",
              on_engine(nn.Conv2DTranspose(3, 2, 4, 2, (1, 0)), "spectral"), r(2, 3, 3, 4), ()))
    c.append(("Dense -> BatchNorm (N, C)", "layer",
              nn.Sequential(nn.Dense(5, 4), nn.BatchNorm(4)), r(6, 5), ()))
    c.append(("Conv2D -> BatchNorm (N, C, H, W)", "layer",
              nn.Sequential(nn.Conv2D(2, 3, 3, 1, 1), nn.BatchNorm(3)), r(3, 2, 4, 4), ()))
    bn_eval = nn.Sequential(nn.Dense(5, 4), nn.BatchNorm(4)).astype(np.float64)
    bn_eval.forward(r(8, 5))
    c.append(("BatchNorm eval", "layer", bn_eval.eval(), r(6, 5), ()))
    # spectral normalisation with u held (eval mode), after a training-mode forward moved it
    for label, layer, x in (("SpectralNorm(Dense) eval", nn.Dense(5, 4), r(3, 5)),
                            ("SpectralNorm(Conv2D) eval", nn.Conv2D(2, 3, 3, 2, 1), r(2, 2, 5, 5)),
                            ("SpectralNorm(Conv2DTranspose) eval",
                             nn.Conv2DTranspose(3, 2, 3, 2, 1, output_padding=1), r(2, 3, 3, 3))):
        sn = nn.SpectralNorm(layer).astype(np.float64)
        sn.forward(x)
        c.append((label, "layer", sn.eval(), x, ()))
    c.append(("ReLU", "layer", nn.ReLU(), away(r(4, 6)), ()))
    c.append(("LeakyReLU(0.2)", "layer", nn.LeakyReLU(0.2), away(r(4, 6)), ()))
    c.append(("Tanh", "layer", nn.Tanh(), r(4, 6), ()))
    c.append(("Sigmoid", "layer", nn.Sigmoid(), r(4, 6), ()))
    c.append(("Dropout(0.3)", "layer", nn.Dropout(0.3), r(4, 6), ()))
    c.append(("Flatten -> Dense", "layer", nn.Sequential(nn.Flatten(), nn.Dense(12, 3)), r(2, 3, 2, 2), ()))
    c.append(("Dense -> Reshape", "layer", nn.Sequential(nn.Dense(3, 12), nn.Reshape((3, 2, 2))), r(2, 3), ()))
    join_f = nn.Sequential(nn.LabelJoin(4), nn.Dense(9, 3))
    nn.set_labels(join_f, rng.integers(0, 4, 5))
    c.append(("LabelJoin(4) (N, F) -> Dense", "layer", join_f, r(5, 5), ()))
    join_c = nn.Sequential(nn.LabelJoin(3), nn.Conv2D(5, 2, 3, 2, "same"))
    nn.set_labels(join_c, rng.integers(0, 3, 2))
    c.append(("LabelJoin(3) (N, C, H, W) -> Conv2D", "layer", join_c, r(2, 2, 5, 4), ()))
    # the two above run as one layer on the CPU (the conv absorbs the join); this one alone
    join_t = nn.Sequential(nn.LabelJoin(3), nn.Tanh())
    nn.set_labels(join_t, rng.integers(0, 3, 2))
    c.append(("LabelJoin(3) (N, C, H, W) -> Tanh", "layer", join_t, r(2, 2, 5, 4), ()))
    proj = nn.Sequential(nn.Dense(4, 6), nn.LabelProjection(6, 3))
    proj.layers[1].params["E"][...] = r(3, 6)  # E starts at zero, which would leave its dx term unchecked
    nn.set_labels(proj, rng.integers(0, 3, 5))
    c.append(("Dense -> LabelProjection(6, 3)", "layer", proj, r(5, 4), ()))
    packed = nn.Sequential(nn.Dense(4, 6), nn.LabelProjection(6, 3, group=2))
    packed.layers[1].params["E"][...] = r(6, 6)
    nn.set_labels(packed, rng.integers(0, 3, 10))
    c.append(("Dense -> LabelProjection(6, 3, group=2)", "layer", packed, r(5, 4), ()))
    code_z = r(5, 7)
    code_z[np.arange(5), rng.integers(0, 4, 5)] += 3.0  # a clear argmax: no code flips under the differences
    c.append(("DiscreteCode(4) -> Dense", "layer", nn.Sequential(nn.DiscreteCode(4, 2.0), nn.Dense(7, 3)),
              code_z, ()))
    c.append(("bce_with_logits", "loss", losses.bce_with_logits, r(6, 1) * 3, (rng.integers(0, 2, (6, 1)),)))
    c.append(("bce (probabilities)", "loss", losses.bce, rng.uniform(0.05, 0.95, (6, 1)), (0.3,)))
    c.append(("generator_nonsaturating", "loss", losses.generator_nonsaturating, r(6, 1), ()))
    c.append(("mse", "loss", losses.mse, r(6, 1), (1.0,)))
    c.append(("hinge real", "loss", losses.hinge, away(r(6, 1)) + 1, (+1,)))
    c.append(("hinge fake", "loss", losses.hinge, away(r(6, 1)) - 1, (-1,)))
    c.append(("softmax_cross_entropy", "loss", losses.softmax_cross_entropy, r(5, 4),
              (rng.integers(0, 4, 5),)))
    return c


def run_standard(tol: float = 1e-6, out=print) -> bool:
    """Check every case of :func:`standard_cases`, print one table, return True if all pass."""
    ok = True
    out(f"{'case':<46}{'tensor':<10}{'checked':>9}{'rel err':>11}  result")
    for label, kind, obj, x, args in standard_cases():
        if kind == "layer":
            rep = check_layer(obj, x, label=label)
        else:
            rep = check_loss(obj, x, *args, label=label)
        for i, e in enumerate(rep.entries):
            good = e.rel_err <= tol
            ok &= good
            out(f"{label if i == 0 else '':<46}{e.name:<10}{e.mode:>9}{e.rel_err:>11.2e}  "
                f"{'ok' if good else 'FAIL'}")
    out(f"\nall gradients agree with central differences to {tol:g}" if ok
        else f"\nsome gradients disagree (tolerance {tol:g})")
    return ok

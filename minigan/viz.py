"""Pictures of a run: sample grids, loss curves, gradient flow, 2-D point clouds, GIFs.

Every function draws on its own :class:`matplotlib.figure.Figure` with the
Agg canvas and writes a PNG (or a JPEG, for a path ending in ``.jpg`` or
``.jpeg``), so nothing here touches pyplot's global state or the backend a user
has chosen, and it works on machines without a display.  A picture is written
whole or not at all (:func:`minigan.io.atomic_write`): a run killed while
drawing leaves the previous picture, never a torn one.
"""
from __future__ import annotations

import csv
import math
import os

import numpy as np

from .io import atomic_write
from .runtime import devices

__all__ = ["image_grid", "save_image_grid", "plot_losses", "gradient_norms", "device_gradient_norms", "parameter_labels",
           "plot_gradient_flow", "plot_points", "save_gif", "IMAGE_FORMATS", "image_format"]

# The picture formats, by the extension of the path written: matplotlib writes JPEG
# through Pillow, which it depends on.
IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


def _figure(width, height):
    # start-up: matplotlib's import takes ~0.4 s, and only the pictures need it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def image_format(path) -> str:
    """The format a picture at ``path`` is written in, by its extension (:data:`IMAGE_FORMATS`);
    a ValueError for any other."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in IMAGE_FORMATS:
        raise ValueError(f"{os.fspath(path)}: pictures are written as .png or .jpg (.jpeg), "
                         f"not {ext or 'a name without an extension'!r}")
    return IMAGE_FORMATS[ext]


def _save(fig, path):
    path = os.fspath(path)
    fmt = image_format(path)
    with atomic_write(path) as f:
        fig.savefig(f, format=fmt)
    return path


# -- sample grids ---------------------------------------------------------------
def _as_images(images) -> np.ndarray:
    """(N, H, W) float64 from (N, H, W), (N, 1, H, W) or (N, H*W) with a square H*W."""
    x = np.asarray(devices.to_numpy(images), dtype=np.float64)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"image_grid: flat images of size {x.shape[1]} are not square")
        x = x.reshape(len(x), side, side)
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"image_grid: expected (N, H, W), (N, 1, H, W) or (N, H*W) with N > 0, "
                         f"got shape {np.shape(images)}")
    return x


def image_grid(images, nrow: int | None = None, value_range=(-1.0, 1.0), padding: int = 2,
               pad_value: float = 0.5) -> np.ndarray:
    """Tile grayscale images into one 2-D array with values in [0, 1].

    ``images``: (N, H, W), (N, 1, H, W) or (N, H*W) with square images, on
    any device.  ``nrow`` images go in each row (default ceil(sqrt(N))), so
    the grid has ceil(N / nrow) rows; empty cells and the ``padding``-pixel
    borders take ``pad_value``.  Values are mapped linearly from
    ``value_range`` to [0, 1] and clipped; NaN becomes 0.  Returns an array
    of shape (rows*(H+p)+p, nrow*(W+p)+p) for p = ``padding``.
    """
    x = _as_images(images)
    n, h, w = x.shape
    nrow = math.ceil(math.sqrt(n)) if nrow is None else int(nrow)
    if nrow < 1:
        raise ValueError(f"image_grid: nrow must be positive, got {nrow}")
    lo, hi = map(float, value_range)
    if not hi > lo:
        raise ValueError(f"image_grid: value_range {value_range} must have low < high")
    x = np.clip(np.nan_to_num((x - lo) / (hi - lo), nan=0.0), 0.0, 1.0)
    rows = math.ceil(n / nrow)
    p = padding
    grid = np.full((rows * (h + p) + p, nrow * (w + p) + p), float(pad_value))
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[p + r * (h + p): p + r * (h + p) + h, p + c * (w + p): p + c * (w + p) + w] = x[i]
    return grid


def save_image_grid(images, path, nrow: int | None = None, value_range=(-1.0, 1.0),
                    title: str | None = None, row_labels=None, scale: int = 3) -> str:
    """Write :func:`image_grid` of ``images`` to a grayscale PNG at ``path``.

    Each grid pixel becomes about ``scale`` x ``scale`` screen pixels.
    ``row_labels`` (one per grid row, e.g. the digit a conditional generator
    was asked for) are written at the left of each row.  Returns the path.
    """
    grid = image_grid(images, nrow=nrow, value_range=value_range)
    x = _as_images(images)
    h = x.shape[1]
    nrow = math.ceil(math.sqrt(len(x))) if nrow is None else int(nrow)
    rows = math.ceil(len(x) / nrow)
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"save_image_grid: {len(row_labels)} row labels for {rows} rows")
    # Leave room around the image for the title and labels, in inches.
    left = 0.45 if row_labels is not None else 0.05
    top = 0.4 if title else 0.05
    gw, gh = grid.shape[1] * scale / 100, grid.shape[0] * scale / 100
    fig = _figure(gw + left + 0.05, gh + top + 0.05)
    ax = fig.add_axes((left / (gw + left + 0.05), 0.05 / (gh + top + 0.05),
                       gw / (gw + left + 0.05), gh / (gh + top + 0.05)))
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if row_labels is not None:
        ax.set_yticks([2 + r * (h + 2) + h / 2 for r in range(rows)], [str(s) for s in row_labels])
        ax.tick_params(axis="y", length=0)
    else:
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


# -- loss curves ----------------------------------------------------------------
def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan  # blank cells, e.g. a column only some rows fill


def _columns(source) -> dict:
    """Columns as float arrays from a CSV path, a dict of columns, or a list of row dicts."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, newline="") as f:
            rows = list(csv.DictReader(f))
    elif isinstance(source, dict):
        return {k: np.array([_float(v) for v in vals]) for k, vals in source.items()}
    else:
        rows = list(source)
    keys = dict.fromkeys(k for row in rows for k in row if k is not None)
    return {k: np.array([_float(row.get(k)) for row in rows]) for k in keys}


def _x_axis(cols, x, n):
    if x is None:
        x = next((k for k in ("step", "epoch") if k in cols), None)
    if x is None:
        return np.arange(n), "record"
    if x not in cols:
        raise KeyError(f"no column {x!r}; columns: {sorted(cols)}")
    return cols[x], x


def plot_losses(source, path, x: str | None = None, title: str | None = None) -> str:
    """Loss curves and discriminator outputs from a training log, as a PNG.

    ``source``: a CSV path (columns such as epoch, step, d_loss, g_loss,
    d_real, d_fake; extra columns are ignored), a dict of columns, or a list
    of row dicts.  Top panel: ``d_loss`` and ``g_loss``; bottom panel (when
    the log has them): mean D(x) (``d_real``) and D(G(z)) (``d_fake``).  The x
    axis is ``x`` if given, else ``step``, else ``epoch``.  Returns the path.
    """
    cols = _columns(source)
    losses = [k for k in ("d_loss", "g_loss") if k in cols]
    probs = [k for k in ("d_real", "d_fake") if k in cols]
    if not losses and not probs:
        raise ValueError(f"plot_losses: no d_loss, g_loss, d_real or d_fake column in {sorted(cols)}")
    n = len(next(iter(cols.values())))
    xs, xlabel = _x_axis(cols, x, n)
    panels = [p for p in (losses, probs) if p]
    fig = _figure(7, 2.8 * len(panels) + 0.4)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    names = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x), real", "d_fake": "D(G(z)), fake"}
    # Many points per epoch make a noisy line; thinner lines keep it readable.
    lw = 0.8 if n > 200 else 1.5
    for ax, keys in zip(axes, panels):
        for k in keys:
            ax.plot(xs, cols[k], label=names[k], lw=lw)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    if losses:
        axes[0].set_ylabel("loss")
    if probs:
        axes[-1].set_ylabel("mean D output")
        axes[-1].set_ylim(-0.02, 1.02)
        # 0.5 is where an optimal D sits when G matches the data.
        axes[-1].axhline(0.5, color="grey", ls=":", lw=1)
    axes[-1].set_xlabel(xlabel)
    axes[0].set_title(title or "training losses")
    fig.tight_layout()
    return _save(fig, path)


# -- gradient flow --------------------------------------------------------------
def gradient_norms(model) -> dict:
    """L2 norm of each parameter's gradient, keyed by name (``"0.W"``, ``"1.gamma"``, ...)."""
    return {name: float(devices.to_numpy(v)) for name, v in device_gradient_norms(model).items()}


def device_gradient_norms(model) -> dict:
    """:func:`gradient_norms` as 0-d float64 values on the model's device, for a caller that
    reads many numbers in one transfer (the trainer's log rows)."""
    out = {}
    for name, layer, key in model.named_parameters():
        g = layer.grads[key]
        xp = devices.get_xp(g)
        g = g.astype(xp.float64, copy=False)
        out[name] = xp.sqrt(xp.sum(g * g))
    return out


# The short names of the layers that hold parameters, for :func:`parameter_labels`; any
# other layer class is named by its class name in lower case.
LAYER_NAMES = {"Dense": "dense", "Conv2D": "conv", "Conv2DTranspose": "deconv", "BatchNorm": "bn"}


def parameter_labels(model) -> dict:
    """Readable names for the parameters of ``model``: ``{"0.W": "dense1.W", "1.gamma":
    "bn1.gamma", ...}``, keyed by the names of :func:`gradient_norms` (which are also the
    checkpoint's keys, and stay as they are).

    Each layer is named by its kind and its place among the layers of that kind,
    counted from 1 in the order of the model (the first Conv2D is ``conv1``, the second
    ``conv2``; Conv2DTranspose is ``deconv``, BatchNorm ``bn``; see :data:`LAYER_NAMES`).
    """
    counts, names, out = {}, {}, {}
    for name, layer, key in model.named_parameters():
        if id(layer) not in names:
            kind = type(layer).__name__
            short = LAYER_NAMES.get(kind, kind.lower())
            counts[short] = counts.get(short, 0) + 1
            names[id(layer)] = f"{short}{counts[short]}"
        out[name] = f"{names[id(layer)]}.{key}"
    return out


def _history(history) -> tuple[dict, str]:
    """{model: {param: (xs, norms)}} and the x label, from either accepted layout."""
    if isinstance(history, dict):
        out = {m: {p: (np.arange(1, len(v) + 1), np.asarray(v, dtype=float)) for p, v in params.items()}
               for m, params in history.items()}
        return out, "epoch"
    rows = list(history)
    xkey = next((k for k in ("step", "epoch") if rows and k in rows[0]), None)
    series: dict = {}
    for i, row in enumerate(rows):
        pname = row.get("param", row.get("name"))
        pts = series.setdefault(row.get("model", "model"), {}).setdefault(pname, ([], []))
        # _float: a log cut short by a killed run may end in a partial row.
        pts[0].append(_float(row.get(xkey)) if xkey else i)
        pts[1].append(_float(row.get("norm")))
    out = {m: {p: (np.array(xs), np.array(ys)) for p, (xs, ys) in params.items()}
           for m, params in series.items()}
    return out, xkey or "record"


def _labels_of(labels, model) -> dict:
    """The {param: readable name} map for ``model`` from ``labels`` (maps or models, by name)."""
    given = (labels or {}).get(model)
    if given is None:
        return {}
    return parameter_labels(given) if hasattr(given, "named_parameters") else dict(given)


def gradient_flow_figure(history, title: str | None = None, labels=None):
    """The figure of :func:`plot_gradient_flow` (a :class:`matplotlib.figure.Figure`)."""
    from matplotlib import colormaps  # start-up, as in _figure

    series, xlabel = _history(history)
    if not series:
        raise ValueError("plot_gradient_flow: empty history")
    fig = _figure(6.5 * len(series), 4.2)
    axes = fig.subplots(1, len(series), squeeze=False)[0]
    cmap = colormaps["viridis"]
    for ax, (model, params) in zip(axes, series.items()):
        names = _labels_of(labels, model)
        for i, (pname, (xs, ys)) in enumerate(params.items()):
            # A log axis cannot show zeros (a frozen layer); leave gaps instead.
            ys = np.where(ys > 0, ys, np.nan)
            ax.plot(xs, ys, color=cmap(i / max(len(params) - 1, 1) * 0.9), lw=1.3,
                    marker="o" if len(xs) < 30 else None, ms=3,
                    label=f"{model}.{names.get(pname, pname)}")
        ax.set_yscale("log")
        ax.set_title(f"{model}: gradient norms")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("||dL/dθ||₂")
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.1, which="minor")
        ax.legend(fontsize=7, ncol=2 if len(params) > 8 else 1, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_gradient_flow(history, path, title: str | None = None, labels=None) -> str:
    """Per-parameter gradient norms over time, one panel per model, log y-axis, as a PNG.

    ``history``: ``{model_name: {param_name: [norm per epoch]}}`` (as built
    from :func:`gradient_norms`), or a list of rows ``{"model", "param",
    "norm"}`` with an optional ``"step"`` or ``"epoch"`` (the rows of a run's
    gradients.csv).  Lines are coloured from the first layer (dark) to the last
    (light), so a gradient that vanishes towards the input shows as dark lines
    sinking.

    The legend names each line ``model.param`` (``D.0.W``), or with ``labels``
    (``{model_name: model}`` or ``{model_name: {param_name: label}}``, e.g. from
    :func:`parameter_labels`) by its layer's readable name (``D.conv1.W``).  Returns
    the path.
    """
    return _save(gradient_flow_figure(history, title, labels), path)


# -- 2-D mixtures ---------------------------------------------------------------
def plot_points(points, modes, path, std: float | None = None, title: str | None = None) -> str:
    """Scatter generated ``points`` (n, 2) over the true mode centres ``modes`` (K, 2), as a PNG.

    With ``std``, each mode gets a circle of radius 3*std: points inside it
    count as high quality in :func:`minigan.data.mode_stats`.  The view
    covers the modes and the bulk of the points (far outliers are counted in
    the legend, not drawn off to the horizon).  Returns the path.
    """
    from matplotlib.patches import Circle  # start-up, as in _figure

    pts = np.asarray(devices.to_numpy(points), dtype=np.float64).reshape(-1, 2)
    modes = np.asarray(modes, dtype=np.float64).reshape(-1, 2)
    span = np.ptp(modes, axis=0).max() if len(modes) > 1 else 1.0
    margin = max(0.15 * span, 3 * (std or 0.0))
    lo, hi = modes.min(0) - margin, modes.max(0) + margin
    finite = pts[np.isfinite(pts).all(1)]
    if len(finite):
        lo = np.minimum(lo, np.percentile(finite, 0.5, axis=0))
        hi = np.maximum(hi, np.percentile(finite, 99.5, axis=0))
    outside = len(pts) - int(((pts >= lo) & (pts <= hi)).all(1).sum())

    fig = _figure(5.5, 5.5)
    ax = fig.add_subplot()
    label = f"generated ({len(pts)})" + (f", {outside} outside view" if outside else "")
    # Points drawn over the mode markers, so samples that sit on a mode stay visible.
    ax.scatter(modes[:, 0], modes[:, 1], s=40, marker="x", color="tab:red", lw=1.5,
               label="true modes", zorder=2)
    ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.4, color="tab:blue", lw=0, label=label, zorder=3)
    if std:
        for m in modes:
            ax.add_patch(Circle(m, 3 * std, fill=False, color="tab:red", lw=0.8, alpha=0.7))
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.grid(alpha=0.3)
    legend = ax.legend(loc="upper right", fontsize=8)
    legend.legend_handles[1].set_sizes([16])  # the 4-px sample dots are too small to read there
    # the trainer's title carries the three scores; wrapped, so none is cut off at the edge
    ax.set_title(title or "generated points and true modes", fontsize=10, wrap=True)
    fig.tight_layout()
    return _save(fig, path)


# -- animations -----------------------------------------------------------------
def save_gif(frames, path, duration: int = 400, last: int = 2000, background: str = "white") -> str:
    """An animated GIF at ``path`` of the pictures ``frames`` (paths of PNGs or JPEGs), in
    that order: each shown ``duration`` ms, the last held ``last`` ms, looping forever.

    Frames of different sizes are placed at the top left of a canvas of the largest one
    (filled with ``background``).  Written whole or not at all, as every picture here.
    Returns the path.
    """
    from PIL import Image  # start-up: Pillow for the GIF alone

    path = os.fspath(path)
    if not path.lower().endswith(".gif"):
        raise ValueError(f"{path}: an animation is written as .gif")
    if duration <= 0 or last <= 0:
        raise ValueError(f"save_gif: durations must be positive, got {duration} and {last} ms")
    images = []
    for p in frames:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    if not images:
        raise ValueError(f"save_gif: no frames for {path}")
    size = (max(im.width for im in images), max(im.height for im in images))
    for i, im in enumerate(images):
        if im.size != size:
            canvas = Image.new("RGB", size, background)
            canvas.paste(im, (0, 0))
            images[i] = canvas
    times = [int(duration)] * (len(images) - 1) + [int(last)]
    with atomic_write(path) as f:
        # loop=0: forever.  An adaptive palette per frame: exact for the grayscale grids.
        images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=times,
                       loop=0, disposal=1)
    return path

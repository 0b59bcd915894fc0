"""Drawing samples from a trained generator checkpoint.

MNIST generators give images (N, 28, 28) in [0, 1]; a 2-D mixture generator
(model ``"mlp2d"``) gives points (N, 2) in the plane.

A conditional generator (checkpoint meta ``conditional``) is asked for digits:
``generate(G, model, n, labels=...)`` / ``sample(checkpoint, n, digit=7)``; with no
labels it draws the digits 0, 1, ..., 9, 0, 1, ... in turn (a balanced set).

:func:`interpolation` walks the noise between pairs of samples, one row of images each.
"""
from __future__ import annotations

import os

import numpy as np

from .. import io, viz
from ..data import MIXTURES
from ..nn import is_conditional, set_labels
from ..runtime import devices
from . import models
from .averaging import batchnorm_noise, recompute_batchnorm

NUM_CLASSES = models.NUM_CLASSES
OUTPUT_KINDS = tuple(viz.IMAGE_FORMATS) + (".npz",)  # what write_samples writes, by extension


def load_generator(checkpoint, device="cpu", averaged=True):
    """The generator stored in ``checkpoint`` and the checkpoint's meta dict.

    A run trained with ``g_ema`` stores the average of G's weights beside the live G
    (as ``G_ema``): that average is loaded unless ``averaged=False``.  ``meta["generator"]``
    says which was loaded, ``"averaged"`` or ``"live"``.  An average saved within an epoch
    comes without BatchNorm statistics for its weights (meta ``g_ema_batchnorm = "stale"``):
    they are estimated here, on the noise the trainer would have used.
    """
    meta = io.read_checkpoint_meta(checkpoint)
    name = meta.get("model")
    if name not in models.MODELS:
        raise io.CheckpointError(f"{checkpoint}: holds no generator minigan knows (model {name!r})")
    # the generator does not depend on the discriminator's packing
    config = meta.get("config") or {}
    G, _ = models.build(name, conditional=bool(meta.get("conditional", False)),
                        width=float(config.get("width", 1.0)), clusters=int(config.get("clusters", 0)))
    key = "G_ema" if averaged and "G_ema" in io.checkpoint_model_names(checkpoint) else "G"
    io.load_checkpoint(checkpoint, models={key: G}, restore_rng=False, expect_model=name)
    meta["generator"] = "averaged" if key == "G_ema" else "live"
    G.to(device)
    if key == "G_ema" and meta.get("g_ema_batchnorm") == "stale":  # a checkpoint from within an epoch
        z, labels = batchnorm_noise(G, models.noise_dim(name, int(config.get("clusters", 0))),
                                    int(config.get("seed", 0)))
        recompute_batchnorm(G, z, labels=labels)
    return G.eval(), meta


def check_digit(digit):
    """``digit`` as an int in 0..9, or a ValueError that says so."""
    try:
        d = int(digit)
    except (TypeError, ValueError):
        raise ValueError(f"digit must be an integer in 0..{NUM_CLASSES - 1}, got {digit!r}") from None
    if d != digit or not 0 <= d < NUM_CLASSES:
        raise ValueError(f"digit must be an integer in 0..{NUM_CLASSES - 1}, got {digit!r}")
    return d


def class_labels(n, labels=None):
    """Labels (n,) int64 for a conditional generator: ``labels`` (an int or n ints), or 0..9 in turn."""
    if labels is None:
        return np.arange(n, dtype=np.int64) % NUM_CLASSES
    y = np.asarray(labels)
    if y.ndim == 0:
        y = np.full(n, check_digit(labels), dtype=np.int64)
    y = y.reshape(-1)
    if len(y) != n:
        raise ValueError(f"{len(y)} labels for {n} samples")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES)):
        raise ValueError(f"labels must be integers in 0..{NUM_CLASSES - 1}")
    return y.astype(np.int64)


def generate(G, model, n, seed=0, device="cpu", batch_size=1000, labels=None):
    """``n`` outputs of ``G`` (in eval mode) for noise drawn from ``default_rng(seed)``.

    MNIST models: images (n, 28, 28) float32 in [0, 1]; ``"mlp2d"``: points (n, 2) float32.
    The noise is drawn in one piece, so the first k of n samples do not depend on n.
    A conditional ``G`` makes digit ``labels`` (an int, or n ints in 0..9; default
    0..9 in turn); an unconditional one refuses labels.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return generate_from_noise(G, model, noise(model, n, seed, models.input_width(G)), batch_size=batch_size,
                               labels=labels)


def noise(model, n, seed=0, width=None):
    """The noise :func:`generate` draws for ``n`` samples of ``model`` with ``seed``: (n, width)
    float64 (the generator takes it as float32); ``width`` defaults to ``model``'s noise_dim."""
    return np.random.default_rng(seed).standard_normal((n, width or models.noise_dim(model)))


def generate_from_noise(G, model, z, batch_size=1000, labels=None):
    """:func:`generate` for the given noise ``z`` (n, noise_dim) instead of a seed."""
    n = len(z)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    conditional = is_conditional(G)
    if labels is not None and not conditional:
        raise ValueError("this generator is not conditional: it takes no digit labels")
    y = class_labels(n, labels) if conditional else None
    dev = G.device  # the generator's own device
    z = np.asarray(z, dtype=np.float32)
    G.eval()
    outs = []
    for i in range(0, n, batch_size):
        if conditional:
            set_labels(G, dev.asarray(y[i:i + batch_size]))
        outs.append(devices.to_numpy(G.forward(dev.asarray(z[i:i + batch_size]))))
    out = np.concatenate(outs)
    if not np.isfinite(out).all():
        raise ValueError("the generator's output holds NaN or infinite values: its weights are unusable")
    if model == models.MIXTURE_MODEL:
        return out.reshape(n, 2).astype(np.float32)
    return ((out.reshape(n, 28, 28) + 1.0) / 2.0).clip(0.0, 1.0).astype(np.float32)


def sample(checkpoint, n=64, seed=0, device="cpu", digit=None, averaged=True):
    """``n`` generated images as float32 in [0, 1], shape (n, 28, 28); points (n, 2) for a 2-D model.

    ``averaged``: from a checkpoint trained with ``g_ema``, draw from the weight average
    (default) or, with False, from the live generator.

    ``digit`` (0..9): only that digit, from a conditional checkpoint (a ValueError for
    any other).  A conditional checkpoint without ``digit`` gives 0..9 in turn.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if digit is not None:
        digit = check_digit(digit)
    G, meta = load_generator(checkpoint, device, averaged)
    if digit is not None and not meta.get("conditional", False):
        raise ValueError(f"{checkpoint}: --digit needs a conditional model (minigan train --conditional); "
                         f"this checkpoint holds an unconditional {meta.get('model')!r} generator")
    try:
        return generate(G, meta["model"], n, seed, device, labels=digit)
    except ValueError as e:
        raise ValueError(f"{checkpoint}: {e}") from None


def sample_rows(checkpoint, per_row=8, seed=0, device="cpu", averaged=True):
    """A conditional checkpoint's digits, one row per digit: (10 * per_row, 28, 28), rows 0..9."""
    G, meta = load_generator(checkpoint, device, averaged)
    if not meta.get("conditional", False):
        raise ValueError(f"{checkpoint}: not a conditional model")
    y = np.repeat(np.arange(NUM_CLASSES), per_row)
    try:
        return generate(G, meta["model"], len(y), seed, device, labels=y)
    except ValueError as e:
        raise ValueError(f"{checkpoint}: {e}") from None


INTERPOLATIONS = ("slerp", "lerp")


def interpolate_noise(z0, z1, steps, method="slerp"):
    """``steps`` points from ``z0`` to ``z1`` (each (n, d)), ends included: (n, steps, d).

    ``"slerp"`` (spherical, Shoemake's formula): z(t) = sin((1-t)w)/sin(w) z0 +
    sin(tw)/sin(w) z1, w the angle between z0 and z1, for t = 0, 1/(steps-1), ..., 1.
    It turns along the arc between the two, so the points keep about the norm of
    Gaussian noise, where the generator was trained; a straight line cuts through the
    middle, where the norm sinks (by a factor of 0.71 halfway between two independent
    draws).  ``"lerp"``: the straight line (1-t) z0 + t z1.  The ends are ``z0`` and
    ``z1`` exactly.
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {method!r}")
    if int(steps) != steps or steps < 2:
        raise ValueError(f"an interpolation needs at least 2 steps (its two ends), got {steps}")
    a, b = np.asarray(z0, dtype=np.float64), np.asarray(z1, dtype=np.float64)
    t = np.linspace(0.0, 1.0, int(steps))[None, :, None]
    wa, wb = 1.0 - t, t
    if method == "slerp":
        cos = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                                 1e-300)
        w = np.arccos(np.clip(cos, -1.0, 1.0))[:, None, None]
        sin = np.sin(w)
        curved = sin > 1e-6  # (anti)parallel pairs: the great circle is undefined, use the line
        wa = np.where(curved, np.sin((1.0 - t) * w) / np.where(curved, sin, 1.0), wa)
        wb = np.where(curved, np.sin(t * w) / np.where(curved, sin, 1.0), wb)
    path = wa * a[:, None, :] + wb * b[:, None, :]
    path[:, 0], path[:, -1] = a, b
    return path


def interpolation(checkpoint, rows=8, steps=10, seed=0, device="cpu", digit=None, averaged=True,
                  method="slerp"):
    """A latent interpolation from a generator checkpoint: (images, digits).

    Row ``r`` walks from noise ``z[2r]`` to ``z[2r+1]`` in ``steps`` images (``method``:
    ``"slerp"`` or ``"lerp"``, :func:`interpolate_noise`), ``z`` being the noise that
    :func:`sample` draws for ``2 * rows`` samples with this ``seed``: each row's ends are
    the samples 2r and 2r+1 of ``sample(checkpoint, 2 * rows, seed)`` (of the same digit).
    ``images``: (rows * steps, 28, 28) float32 in [0, 1], row after row.  From a
    conditional checkpoint each row keeps one digit, ``digit`` or else 0, 1, ..., 9 in
    turn (``digits``, one per row; None for an unconditional checkpoint).
    """
    if int(rows) != rows or rows < 1:
        raise ValueError(f"an interpolation needs at least 1 row, got {rows}")
    if digit is not None:
        digit = check_digit(digit)
    G, meta = load_generator(checkpoint, device, averaged)
    model, conditional = meta["model"], bool(meta.get("conditional", False))
    if model == models.MIXTURE_MODEL:
        raise ValueError(f"{checkpoint}: an interpolation draws images; this {model!r} generator "
                         f"makes 2-D points")
    if digit is not None and not conditional:
        raise ValueError(f"{checkpoint}: --digit needs a conditional model (minigan train --conditional); "
                         f"this checkpoint holds an unconditional {model!r} generator")
    z = noise(model, 2 * rows, seed, models.input_width(G))
    path = interpolate_noise(z[0::2], z[1::2], steps, method).astype(np.float32)
    digits = None
    if conditional:
        digits = np.full(rows, digit) if digit is not None else np.arange(rows) % NUM_CLASSES
    labels = None if digits is None else np.repeat(digits, steps)
    try:
        images = generate_from_noise(G, model, path.reshape(rows * steps, -1), labels=labels)
    except ValueError as e:
        raise ValueError(f"{checkpoint}: {e}") from None
    return images, (None if digits is None else [int(d) for d in digits])


def write_samples(images, out, dataset=None, row_labels=None, nrow=None):
    """A picture of the grid (PNG, or JPEG for ``.jpg``/``.jpeg``), or with a ``.npz`` name
    the raw images under the key ``images``; any other extension is a ValueError.  The
    file is written whole or not at all (:func:`minigan.io.atomic_write`).

    ``row_labels`` and ``nrow`` (images per row) go to :func:`minigan.viz.save_image_grid`.
    Points (N, 2) of a 2-D mixture model go to the key ``points`` of an ``.npz``, or
    to a scatter plot over the modes of ``dataset`` ("ring" or "grid") for a picture.
    """
    out = os.fspath(out)
    if os.path.splitext(out)[1].lower() not in OUTPUT_KINDS:
        raise ValueError(f"{out}: samples are written as {', '.join(OUTPUT_KINDS)}, by the extension")
    points = images.ndim == 2 and images.shape[1] == 2
    if out.lower().endswith(".npz"):
        with io.atomic_write(out) as f:
            np.savez(f, **{"points" if points else "images": images})
    elif points:
        if dataset not in MIXTURES:
            raise ValueError(f"plotting 2-D points needs the mixture they model, 'ring' or 'grid' "
                             f"(got {dataset!r}); write an .npz instead")
        mix = MIXTURES[dataset]
        viz.plot_points(images, mix.modes, out, std=mix.std,
                        title=f"{len(images)} samples over the {dataset} modes")
    else:
        viz.save_image_grid(images, out, value_range=(0.0, 1.0), row_labels=row_labels, nrow=nrow)
    return out

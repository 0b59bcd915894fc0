"""Drawing samples from a trained generator checkpoint.

MNIST generators give images (N, 28, 28) in [0, 1]; a 2-D mixture generator
(model ``"mlp2d"``) gives points (N, 2) in the plane.
"""
from __future__ import annotations

import os

import numpy as np

from .. import backend, io, viz
from . import models


def load_generator(checkpoint, device="cpu"):
    """The generator stored in ``checkpoint`` and the checkpoint's meta dict."""
    meta = io.read_checkpoint_meta(checkpoint)
    name = meta.get("model")
    if name not in models.MODELS:
        raise io.CheckpointError(f"{checkpoint}: holds no generator minigan knows (model {name!r})")
    G, _ = models.build(name)  # the generator does not depend on the discriminator's packing
    io.load_checkpoint(checkpoint, models={"G": G}, restore_rng=False, expect_model=name)
    return G.to(device).eval(), meta


def generate(G, model, n, seed=0, device="cpu", batch_size=1000):
    """``n`` outputs of ``G`` (in eval mode) for noise drawn from ``default_rng(seed)``.

    MNIST models: images (n, 28, 28) float32 in [0, 1]; ``"mlp2d"``: points (n, 2) float32.
    The noise is drawn in one piece, so the first k of n samples do not depend on n.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    xp = backend.xp_for(device)
    z = np.random.default_rng(seed).standard_normal((n, models.noise_dim(model))).astype(np.float32)
    G.eval()
    out = np.concatenate([backend.to_numpy(G.forward(xp.asarray(z[i:i + batch_size])))
                          for i in range(0, n, batch_size)])
    if model == models.MIXTURE_MODEL:
        return out.reshape(n, 2).astype(np.float32)
    return ((out.reshape(n, 28, 28) + 1.0) / 2.0).clip(0.0, 1.0).astype(np.float32)


def sample(checkpoint, n=64, seed=0, device="cpu"):
    """``n`` generated images as float32 in [0, 1], shape (n, 28, 28); points (n, 2) for a 2-D model."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    G, meta = load_generator(checkpoint, device)
    return generate(G, meta["model"], n, seed, device)


def write_samples(images, out, dataset=None):
    """A PNG grid, or with a ``.npz`` name the raw images under the key ``images``.

    Points (N, 2) of a 2-D mixture model go to the key ``points`` of an ``.npz``, or
    to a scatter plot over the modes of ``dataset`` ("ring" or "grid") for a PNG.
    """
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    points = images.ndim == 2 and images.shape[1] == 2
    if str(out).endswith(".npz"):
        if points:
            np.savez(out, points=images)
        else:
            np.savez(out, images=images)
    elif points:
        from ..data import MIXTURES  # noqa: PLC0415

        if dataset not in MIXTURES:
            raise ValueError(f"plotting 2-D points needs the mixture they model, 'ring' or 'grid' "
                             f"(got {dataset!r}); write an .npz instead")
        mix = MIXTURES[dataset]
        viz.plot_points(images, mix.modes, out, std=mix.std,
                        title=f"{len(images)} samples over the {dataset} modes")
    else:
        viz.save_image_grid(images, out, value_range=(0.0, 1.0))
    return out

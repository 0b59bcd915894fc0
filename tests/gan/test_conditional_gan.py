"""The conditional GAN: builders, training with labels, exact resume, checkpoints, sampling, the CLI."""
import csv
import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from helpers import fit_until_interrupted  # noqa: E402
from test_trainer import synthetic, weights  # noqa: E402

from minigan import io, nn  # noqa: E402
from minigan.cli import main  # noqa: E402
from minigan.gan import models  # noqa: E402
from minigan.gan.sampler import generate, load_generator, sample, sample_rows  # noqa: E402
from minigan.gan.trainer import CHECKPOINT, GRID_COLUMNS, Trainer, TrainConfig  # noqa: E402
from minigan.gradcheck import check_layer, standard_cases  # noqa: E402


def labels_for(n, seed=0):
    return np.random.default_rng(seed).integers(0, 10, n)


def cfg(tmp_path, name, **kw):
    base = dict(model="mlp", conditional=True, epochs=2, batch_size=16, lr=5e-4, seed=3, log_every=2,
                checkpoint_every=3, n_samples=16, out=str(tmp_path / name))
    base.update(kw)
    return TrainConfig(**base)


def quiet(s):
    pass


# -- defaults ------------------------------------------------------------------------------
def test_conditional_models_train_longer_by_default():
    def epochs(**given):
        return TrainConfig.for_dataset("mnist", **given).epochs

    assert epochs() == epochs(model="conv") == 3 and epochs(model="dcgan") == 2
    assert epochs(conditional=True) == 5 and epochs(model="dcgan", conditional=True) == 10
    assert epochs(model="mlp") == epochs(model="mlp", conditional=True) == 30
    assert epochs(conditional=True, epochs=3) == 3  # an explicit --epochs wins


def test_each_model_has_its_own_recipe_and_the_seed_dcgan_keeps_the_tutorials():
    def recipe(**given):
        c = TrainConfig.for_dataset("mnist", **given).validate()
        return c.model, c.lr, c.g_ema, c.loss, c.batch_size

    assert recipe() == ("conv", 1.5e-3, 0.995, "bce", 64)
    assert recipe(conditional=True) == ("conv", 1.5e-3, 0.999, "bce", 64)
    assert recipe(model="dcgan") == recipe(model="dcgan", conditional=True) == ("dcgan", 2e-4, 0.0, "bce", 64)
    assert recipe(model="mlp") == ("mlp", 2e-4, 0.999, "bce", 64)
    assert recipe(lr=1e-3, g_ema=0.0) == ("conv", 1e-3, 0.0, "bce", 64)  # given options win


# -- builders ------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["mlp", "conv", "dcgan"])
def test_builders_join_the_label_to_both_networks(model):
    G, D = models.build(model, conditional=True)
    assert isinstance(G.layers[0], nn.LabelJoin) and isinstance(D.layers[0], nn.LabelJoin)
    assert nn.is_conditional(G) and nn.is_conditional(D)
    assert not any(nn.is_conditional(m) for m in models.build(model))
    assert G.layers[1].params["W"].shape[0] == 110  # noise 100 + one-hot 10
    if model == "mlp":
        assert D.layers[1].params["W"].shape == (794, 128)
        x = np.zeros((3, 784), np.float32)
    else:
        assert D.layers[1].params["W"].shape[:2] == (64, 11)  # 1 image + 10 label planes
        x = np.zeros((3, 1, 28, 28), np.float32)
    y = np.array([0, 4, 9])
    nn.set_labels(G, y), nn.set_labels(D, y)
    G.eval(), D.eval()
    assert G.forward(np.zeros((3, 100), np.float32)).shape == x.shape
    assert D.forward(x).shape == (3, 1)


def test_conditional_needs_mnist():
    with pytest.raises(ValueError, match="MNIST"):
        models.build("mlp2d", conditional=True)
    with pytest.raises(ValueError, match="MNIST only"):
        TrainConfig(dataset="ring", conditional=True).validate()


def test_gradcheck_covers_the_label_join_and_a_conditional_discriminator():
    assert any("LabelJoin" in c[0] for c in standard_cases())
    rng = np.random.default_rng(0)
    D = nn.Sequential(nn.LabelJoin(10), nn.Conv2D(11, 2, 5, 2, "same"), nn.LeakyReLU(0.3),
                      nn.Flatten(), nn.Dense(2 * 4 * 4, 1))
    nn.set_labels(D, rng.integers(0, 10, 3))
    check_layer(D, rng.standard_normal((3, 1, 7, 7))).assert_ok(1e-6)


# -- training ------------------------------------------------------------------------------
def test_trainer_needs_labels_for_given_data(tmp_path):
    with pytest.raises(ValueError, match="needs the labels"):
        Trainer(cfg(tmp_path, "x"), data=synthetic("mlp", 32), progress=False)
    with pytest.raises(ValueError, match="labels must be integers"):
        Trainer(cfg(tmp_path, "x"), data=synthetic("mlp", 32), labels=np.full(32, 10), progress=False)
    with pytest.raises(ValueError, match="31 labels for 32"):
        Trainer(cfg(tmp_path, "x"), data=synthetic("mlp", 32), labels=np.zeros(31, int), progress=False)


def test_labels_reach_both_networks(tmp_path):
    """The real batch's labels go to D with the real images; the fakes' labels to G and to D."""
    t = Trainer(cfg(tmp_path, "l", epochs=1), data=synthetic("mlp", 32), labels=labels_for(32),
                progress=False)
    seen = {}

    def spy(name, join):  # the labels a LabelJoin hands on, run alone or absorbed by the layer after it
        read = join._labels_for

        def labels_for(x, *args):
            y = read(x, *args)
            seen.setdefault(name, []).append(np.array(y))
            return y
        join._labels_for = labels_for

    spy("G", t.G.layers[0])
    spy("D", t.D.layers[0])
    y_real, y_fake = np.arange(16) % 10, (np.arange(16) + 3) % 10
    t.train_step(t.xp.asarray(t.data[:16]), t.xp.asarray(np.zeros((16, 100), np.float32)), y_real, y_fake)
    np.testing.assert_array_equal(seen["G"][0], y_fake)
    np.testing.assert_array_equal(seen["D"][0], np.concatenate([y_real, y_fake]))  # the joint batch
    np.testing.assert_array_equal(seen["D"][1], y_fake)  # the generator step
    with pytest.raises(ValueError, match="y_real and y_fake"):
        t.train_step(t.xp.asarray(t.data[:16]), t.xp.asarray(np.zeros((16, 100), np.float32)))


@pytest.mark.parametrize("model", ["mlp", "conv", "dcgan"])
def test_conditional_resume_matches_an_uninterrupted_run(tmp_path, model):
    data, y = synthetic(model, 48), labels_for(48)
    ref = Trainer(cfg(tmp_path, "ref", model=model), data=data, labels=y, progress=False).fit(log=quiet)

    broken = Trainer(cfg(tmp_path, "cut", model=model), data=data, labels=y, progress=False)
    fit_until_interrupted(broken, 4, quiet)  # mid-epoch 2, one step after the checkpoint at step 3 of 3
    resumed = Trainer(cfg(tmp_path, "cut", model=model), data=data, labels=y, progress=False)
    resumed.restore()
    resumed.fit(log=quiet)
    a, b = weights(ref), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_resume_refuses_a_checkpoint_of_the_other_kind(tmp_path):
    data, y = synthetic("mlp", 32), labels_for(32)
    Trainer(cfg(tmp_path, "c", epochs=1), data=data, labels=y, progress=False).fit(log=quiet)
    plain = Trainer(cfg(tmp_path, "c", conditional=False), data=data, progress=False)
    with pytest.raises(io.CheckpointError):
        plain.restore()


# -- checkpoints and sampling -------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """A conditional DCGAN and an unconditional MLP, each trained one tiny epoch."""
    root = tmp_path_factory.mktemp("ck")
    c = Trainer(TrainConfig(model="dcgan", conditional=True, epochs=1, batch_size=16, seed=1,
                            out=str(root / "cond")),
                data=synthetic("dcgan", 32), labels=labels_for(32), progress=False).fit(log=quiet)
    Trainer(TrainConfig(model="mlp", epochs=1, batch_size=16, seed=1, n_samples=16, out=str(root / "plain")),
            data=synthetic("mlp", 32), progress=False).fit(log=quiet)
    return c, str(root / "cond" / CHECKPOINT), str(root / "plain" / CHECKPOINT)


def test_conditional_checkpoint_round_trip(tiny_checkpoints):
    trainer, ck, _ = tiny_checkpoints
    meta = io.read_checkpoint_meta(ck)
    assert meta["conditional"] is True and meta["config"]["conditional"] is True
    G, _ = load_generator(ck)
    assert nn.is_conditional(G)
    for digit in (0, 7):
        from_disk = sample(ck, n=12, seed=5, digit=digit)
        in_memory = generate(trainer.G, "dcgan", 12, seed=5, labels=digit)
        np.testing.assert_array_equal(from_disk, in_memory)
    # the label changes the image; the default is the digits in turn
    assert not np.array_equal(sample(ck, 4, seed=5, digit=0), sample(ck, 4, seed=5, digit=1))
    mixed = sample(ck, 20, seed=5)
    np.testing.assert_array_equal(mixed, generate(trainer.G, "dcgan", 20, 5, labels=np.arange(20) % 10))
    rows = sample_rows(ck, per_row=3, seed=2)
    assert rows.shape == (30, 28, 28)
    np.testing.assert_array_equal(rows[6:9], generate(trainer.G, "dcgan", 30, 2,
                                                      labels=np.repeat(np.arange(10), 3))[6:9])


def test_training_grid_has_a_row_per_digit(tiny_checkpoints):
    trainer, ck, _ = tiny_checkpoints
    assert trainer.fixed_noise.shape == (10 * GRID_COLUMNS, 100)
    np.testing.assert_array_equal(trainer.fixed_labels, np.repeat(np.arange(10), GRID_COLUMNS))
    out = os.path.dirname(ck)
    for name in ("samples/epoch_001.png", "samples.png", "losses.png", "gradient_flow.png", "log.csv"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name


def test_sampling_errors(tiny_checkpoints):
    trainer, ck, plain = tiny_checkpoints
    with pytest.raises(ValueError, match="needs a conditional model"):
        sample(plain, 4, digit=3)
    for bad in (10, -1):
        with pytest.raises(ValueError, match=r"0\.\.9"):
            sample(ck, 4, digit=bad)
    with pytest.raises(ValueError, match="not conditional"):
        generate(load_generator(plain)[0], "mlp", 4, labels=3)
    with pytest.raises(ValueError, match="3 labels for 4"):
        generate(trainer.G, "dcgan", 4, labels=[1, 2, 3])


def test_cli_sample_digit_and_rows(tiny_checkpoints, tmp_path, capsys):
    _, ck, plain = tiny_checkpoints
    out = tmp_path / "sevens.npz"
    assert main(["sample", "--checkpoint", ck, "--digit", "7", "--n", "6", "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out)["images"], sample(ck, 6, digit=7))
    png = tmp_path / "sevens.png"
    assert main(["sample", "--checkpoint", ck, "--digit", "7", "--n", "64", "--out", str(png)]) == 0
    assert png.stat().st_size > 0
    rows = tmp_path / "rows.png"
    assert main(["sample", "--checkpoint", ck, "--out", str(rows)]) == 0
    assert rows.stat().st_size > 0 and "one row of 8 per digit" in capsys.readouterr().out
    assert main(["sample", "--checkpoint", plain, "--digit", "7", "--out", str(tmp_path / "x.png")]) == 2  # refused: bad usage or input
    assert re.search("conditional checkpoint", capsys.readouterr().err)
    assert main(["sample", "--checkpoint", ck, "--digit", "12", "--out", str(tmp_path / "x.png")]) == 2  # refused: bad usage or input
    assert re.search("0-9", capsys.readouterr().err)


def test_cli_train_conditional_then_resume(tmp_path, monkeypatch):
    import minigan.gan.trainer as tr

    x, y = synthetic("mlp", 32), labels_for(32)
    monkeypatch.setattr(tr, "mnist_images", lambda model, limit=0, labels=False, idx_dir=None: (x, y) if labels else x)
    out = str(tmp_path / "cm")
    base = ["train", "--model", "mlp", "--conditional", "--batch-size", "16", "--out", out, "--quiet"]
    assert main(base + ["--epochs", "1"]) == 0
    assert io.read_checkpoint_meta(os.path.join(out, CHECKPOINT))["conditional"] is True
    assert main(["train", "--out", out, "--resume", "--epochs", "2", "--quiet"]) == 0
    meta = io.read_checkpoint_meta(os.path.join(out, CHECKPOINT))
    assert (meta["epoch"], meta["conditional"]) == (2, True)
    rows = list(csv.DictReader(open(os.path.join(out, "log.csv"))))
    assert rows and rows[-1]["epoch"] == "2"


def test_conditional_accuracy_plumbing(tiny_checkpoints):
    """A tiny random classifier: the numbers are fractions and agree with the confusion matrix."""
    from minigan.runtime import devices
    from minigan.gan.scoring import conditional_accuracy
    from minigan.metrics import build_classifier, format_conditional

    trainer, _, plain = tiny_checkpoints
    devices.manual_seed(0)
    net = build_classifier().eval()
    acc = conditional_accuracy(trainer.G, net, n_per_class=3, seed=1)
    conf = np.array(acc["confusion"])
    assert conf.shape == (10, 10) and conf.sum() == 30 and (conf.sum(axis=1) == 3).all()
    np.testing.assert_allclose(acc["per_digit"], np.diag(conf) / 3)
    assert acc["overall"] == pytest.approx(np.trace(conf) / 30)
    assert "per digit" in format_conditional(acc)
    with pytest.raises(ValueError, match="conditional generator"):
        conditional_accuracy(load_generator(plain)[0], net, 3)


@pytest.mark.slow
def test_cli_eval_reports_conditional_accuracy(tiny_checkpoints, tmp_path, capsys):
    """``minigan eval`` on a conditional checkpoint adds per-digit and overall conditional accuracy."""
    from minigan.data import mnist_home
    from minigan.metrics import classifier as clf

    if not clf.WEIGHTS_FILE.exists() or not (mnist_home() / "mnist.npz").exists():
        pytest.skip("needs the shipped classifier weights and the MNIST cache")
    _, ck, _ = tiny_checkpoints
    path = tmp_path / "eval.csv"
    assert main(["eval", "--checkpoint", ck, "--n", "200", "--no-reference", "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    assert "conditional dcgan" in out and "conditional accuracy (20 per digit)" in out
    row = next(csv.DictReader(open(path)))
    assert row["n_per_class"] == "20" and 0.0 <= float(row["cond_acc"]) <= 1.0
    assert all(f"cond_acc_{k}" in row for k in range(10))

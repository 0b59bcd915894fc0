"""The 2-D mixture GAN: packing, the MLP pair, training with scores, exact resume, sample and eval."""
import csv
import os
import re

import numpy as np
import pytest
from helpers import fit_until_interrupted

from minigan import io
from minigan.cli import main
from minigan.data import sample_mixture
from minigan.gan.mixture_models import Pack, build_mixture, mixture_discriminator, place_first_hyperplanes
from minigan.gan.trainer import CHECKPOINT, EVAL_LOG, Trainer, TrainConfig
from minigan.gradcheck import check_layer


def test_pack_puts_m_consecutive_samples_side_by_side():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    p = Pack(3)
    y = p.forward(x)
    np.testing.assert_array_equal(y, [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    np.testing.assert_array_equal(p.backward(y), x)
    with pytest.raises(ValueError, match="divisible by 3"):
        p.forward(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError):
        Pack(0)


@pytest.mark.parametrize("pack", [1, 2, 3])
def test_packed_discriminator_gradients(pack):
    D = mixture_discriminator(pack, hidden=7, depth=2)
    x = np.random.default_rng(pack).standard_normal((4 * pack, 2))
    check_layer(D, x).assert_ok(1e-6)
    assert D.forward(x.astype(np.float32)).shape == (4, 1)


@pytest.mark.parametrize("pack", [1, 3])
def test_first_hyperplanes_cross_the_box(pack):
    """Each first-layer hyperplane w.x + b = 0 passes through a point of the box [low, high]."""
    D = mixture_discriminator(pack, hidden=50, depth=1)
    assert not D.layers[1].params["b"].any()  # default: all through the origin
    low = np.tile([-1.0, 2.0], pack)
    high = np.tile([3.0, 4.0], pack)
    place_first_hyperplanes(D, low, high)
    W, b = D.layers[1].params["W"].astype(np.float64), D.layers[1].params["b"].astype(np.float64)
    lo_end = (np.where(W > 0, low[:, None], high[:, None]) * W).sum(axis=0) + b  # min of w.x + b on the box
    hi_end = (np.where(W > 0, high[:, None], low[:, None]) * W).sum(axis=0) + b
    assert (lo_end <= 1e-5).all() and (hi_end >= -1e-5).all()
    assert (np.abs(b) > 0).all()


def test_d_bias_init_data_in_the_trainer(tmp_path):
    t = Trainer(cfg(tmp_path, "a", d_bias_init="data"), progress=False)
    assert t.D.layers[1].params["b"].any()
    t0 = Trainer(cfg(tmp_path, "b"), progress=False)
    assert not t0.D.layers[1].params["b"].any()
    for bad, match in [(dict(d_bias_init="random"), "d-bias-init"),
                       (dict(dataset="mnist", d_bias_init="data"), "d-bias-init")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad).validate()


def test_mixture_pair_shapes():
    G, D = build_mixture(pack=2)
    z = np.random.default_rng(0).standard_normal((10, 2)).astype(np.float32)
    pts = G.forward(z)
    assert pts.shape == (10, 2)
    assert D.forward(pts).shape == (5, 1)


def cfg(tmp_path, name, **kw):
    base = dict(dataset="ring", epochs=2, batch_size=20, pack=2, limit=400, seed=4, log_every=3,
                checkpoint_every=4, out=str(tmp_path / name))
    base.update(kw)
    return TrainConfig.for_dataset(**base)


def test_config_defaults_and_checks():
    c = TrainConfig.for_dataset("grid").validate()
    assert (c.model, c.batch_size, c.lr, c.pack, c.eval_every, c.lr_decay) == ("mlp2d", 100, 2e-4, 1, 1, "linear")
    assert TrainConfig().validate().model == "conv"
    for bad, match in [(dict(dataset="spiral"), "unknown dataset"),
                       (dict(dataset="ring", model="dcgan"), "does not fit"),
                       (dict(model="mlp2d"), "does not fit"),
                       (dict(dataset="mnist", pack=2), "pack"),
                       (dict(dataset="ring", pack=0), "pack")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad).validate()


def test_small_ring_run_writes_scatter_plots_and_scores(tmp_path):
    lines = []
    t = Trainer(cfg(tmp_path, "ring"), progress=False).fit(log=lines.append)
    out = tmp_path / "ring"
    assert t.steps_per_epoch == 400 // (20 * 2)
    for name in ("samples/epoch_001.png", "samples/epoch_002.png", "samples.png", "losses.png", EVAL_LOG):
        assert (out / name).stat().st_size > 0, name
    from PIL import Image

    with Image.open(out / "samples.gif") as gif:  # the scatter plots, animated
        assert gif.n_frames == 2
    rows = list(csv.DictReader(open(out / EVAL_LOG)))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(r["n"] == "2500" and 0 <= int(r["modes_covered"]) <= 8 for r in rows)
    assert any("scores: modes_covered" in s for s in lines)
    meta = io.read_checkpoint_meta(out / CHECKPOINT)
    assert (meta["dataset"], meta["pack"], meta["model"]) == ("ring", 2, "mlp2d")


def test_mixture_resume_matches_an_uninterrupted_run(tmp_path):
    ref = Trainer(cfg(tmp_path, "ref"), progress=False).fit(log=lambda s: None)
    broken = Trainer(cfg(tmp_path, "cut"), progress=False)
    fit_until_interrupted(broken, 15)  # epoch 2, after its first mid-epoch checkpoint
    resumed = Trainer(cfg(tmp_path, "cut"), progress=False)
    resumed.restore()
    assert resumed.epoch == 1
    resumed.fit(log=lambda s: None)
    for name in ("G", "D"):
        a, b = getattr(ref, name).state_dict(), getattr(resumed, name).state_dict()
        for k in a:
            assert np.array_equal(a[k], b[k]), (name, k)
    a = list(csv.DictReader(open(tmp_path / "ref" / EVAL_LOG)))
    b = list(csv.DictReader(open(tmp_path / "cut" / EVAL_LOG)))
    assert a == b


def test_cli_train_sample_eval_on_grid(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["train", "--dataset", "grid", "--pack", "2", "--epochs", "1", "--limit", "400",
                 "--batch-size", "20", "--out", str(out), "--quiet"]) == 0
    ck = str(out / CHECKPOINT)
    assert main(["sample", "--checkpoint", ck, "--n", "33", "--out", str(tmp_path / "p.npz")]) == 0
    pts = np.load(tmp_path / "p.npz")["points"]
    assert pts.shape == (33, 2) and pts.dtype == np.float32
    assert main(["sample", "--checkpoint", ck, "--n", "50", "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["eval", "--checkpoint", ck]) == 0
    text = capsys.readouterr().out
    assert "modes covered (of 25)" in text and "true mixture" in text
    rows = list(csv.DictReader(open(out / EVAL_LOG)))
    assert len(rows) == 2 and rows[0] == rows[1]  # the trainer's row at epoch 1, then eval's
    # resuming keeps the dataset and refuses a different packing
    assert main(["train", "--resume", "--pack", "3", "--out", str(out), "--quiet"]) == 2  # refused: bad usage or input
    assert re.search("pack", capsys.readouterr().err)


def test_example_mixture_curves_plots_eval_csv(tmp_path):
    import importlib.util  # noqa: PLC0415

    from minigan.metrics import append_scores, mixture_scores  # noqa: PLC0415

    # the example script, loaded from its file (examples/ is not a package)
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "mixture_curves.py")
    spec = importlib.util.spec_from_file_location("mixture_curves", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    for run in ("a", "b"):
        for epoch in (1, 2, 3):
            pts = sample_mixture("ring", 200, rng) * (1 + 0.1 / epoch)
            append_scores(str(tmp_path / run / EVAL_LOG), mixture_scores(pts, "ring"), epoch=epoch, step=epoch)
    curve = mod.read_curve(str(tmp_path / "a"))
    assert curve["epoch"] == [1, 2, 3] and len(curve["high_quality"]) == 3
    assert all(0 <= h <= 100 for h in curve["high_quality"])
    out = tmp_path / "c.png"
    mod.main([str(tmp_path / "a"), str(tmp_path / "b"), "--aim", "95", "--out", str(out)])
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="no eval.csv"):
        mod.main([str(tmp_path), "--out", str(out)])

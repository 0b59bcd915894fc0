"""The generator's weight average (``g_ema``): its update, BatchNorm estimates, the trainer, resume."""
import csv
import dataclasses

import numpy as np
import pytest
from helpers import fit_until_interrupted
from test_trainer import synthetic

from minigan import io, nn
from minigan.cli import main
from minigan.gan import models
from minigan.gan.averaging import GeneratorAverage, recompute_batchnorm
from minigan.gan.sampler import load_generator, sample
from minigan.gan.scoring import score_checkpoint
from minigan.gan.trainer import CHECKPOINT, EVAL_LIVE_LOG, EVAL_LOG, TrainConfig, Trainer
from minigan.runtime import devices


def tiny_generator():
    devices.manual_seed(3)
    return nn.Sequential(nn.Dense(2, 5), nn.BatchNorm(5), nn.ReLU(), nn.Dense(5, 2))


def params(model):
    return {n: np.array(layer.params[k], np.float64) for n, layer, k in model.named_parameters()}


def test_update_is_the_exponential_moving_average():
    """After steps theta_1..theta_T: avg = d^T theta_0 + sum_s (1 - d) d^(T-s) theta_s."""
    G, d = tiny_generator(), 0.9
    ema = GeneratorAverage(G, d, noise_dim=2)
    thetas = [params(G)]
    rng = np.random.default_rng(0)
    for _ in range(7):
        for _, layer, k in G.named_parameters():  # stands in for an optimizer step
            layer.params[k] += rng.standard_normal(layer.params[k].shape).astype(np.float32)
        ema.update()
        thetas.append(params(G))
    T = len(thetas) - 1
    for name in thetas[0]:
        want = d ** T * thetas[0][name] + sum((1 - d) * d ** (T - s) * thetas[s][name] for s in range(1, T + 1))
        got = dict((n, layer.params[k]) for n, layer, k in ema.avg.named_parameters())[name]
        assert got.dtype == np.float64  # accumulated in float64
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)
    # the view used for drawing holds the same average in G's dtype; the live G is untouched
    view = ema.model()
    assert view.dtype == np.float32 and view is not G
    for n, layer, k in view.named_parameters():
        np.testing.assert_allclose(layer.params[k], ema.avg.state_dict()["param." + n], rtol=1e-6)
    for name, a in params(G).items():
        np.testing.assert_array_equal(a, thetas[-1][name])


def test_decay_must_lie_strictly_between_0_and_1():
    for bad in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="decay"):
            GeneratorAverage(tiny_generator(), bad, noise_dim=2)


def test_recompute_batchnorm_gives_the_mean_of_the_batch_statistics():
    G = tiny_generator()
    G.train()
    z = np.random.default_rng(1).standard_normal((30, 2)).astype(np.float32)
    recompute_batchnorm(G, z, batch_size=10)
    h = [G.layers[0].forward(z[i:i + 10]).astype(np.float64) for i in (0, 10, 20)]
    bn = G.layers[1]
    np.testing.assert_allclose(bn.buffers["running_mean"], np.mean([x.mean(0) for x in h], 0), rtol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"], np.mean([x.var(0, ddof=1) for x in h], 0), rtol=1e-5)
    assert all(m.training for m in G.modules()) and bn.momentum == 0.1  # modes and momentum restored


def cfg(tmp_path, name, **kw):
    base = dict(dataset="ring", epochs=2, batch_size=20, pack=1, limit=400, seed=4, log_every=3,
                checkpoint_every=4, g_ema=0.9, out=str(tmp_path / name))
    base.update(kw)
    return TrainConfig.for_dataset(**base)


def test_config_checks_the_decay():
    assert TrainConfig.for_dataset("ring").validate().g_ema == 0.0
    for bad in (1.0, -0.1, 2.0):
        with pytest.raises(ValueError, match=r"g-ema must lie in \[0, 1\)"):
            TrainConfig.for_dataset("ring", g_ema=bad).validate()


def test_the_live_run_is_the_same_with_or_without_the_average(tmp_path):
    quiet = dict(log=lambda s: None)
    with_avg = Trainer(cfg(tmp_path, "a", epochs=1), progress=False).fit(**quiet)
    without = Trainer(cfg(tmp_path, "b", epochs=1, g_ema=0.0), progress=False).fit(**quiet)
    for name in ("G", "D"):
        a, b = getattr(with_avg, name).state_dict(), getattr(without, name).state_dict()
        assert all(np.array_equal(a[k], b[k]) for k in a), name
    # eval.csv scores the average; eval_live.csv the live G, as eval.csv does without averaging
    assert (list(csv.DictReader(open(tmp_path / "a" / EVAL_LIVE_LOG)))
            == list(csv.DictReader(open(tmp_path / "b" / EVAL_LOG))))
    assert not (tmp_path / "b" / EVAL_LIVE_LOG).exists()
    assert with_avg.drawing_generator() is with_avg.ema.view


def test_resume_with_the_average_matches_an_uninterrupted_run(tmp_path):
    ref = Trainer(cfg(tmp_path, "ref"), progress=False).fit(log=lambda s: None)
    broken = Trainer(cfg(tmp_path, "cut"), progress=False)
    fit_until_interrupted(broken, 27)  # epoch 2, after a mid-epoch checkpoint
    resumed = Trainer(cfg(tmp_path, "cut"), progress=False)
    resumed.restore()
    assert (resumed.epoch, resumed.step_in_epoch) == (1, 4)
    resumed.fit(log=lambda s: None)
    for a_model, b_model in ((ref.G, resumed.G), (ref.D, resumed.D), (ref.ema.avg, resumed.ema.avg)):
        a, b = a_model.state_dict(), b_model.state_dict()
        for k in a:
            assert np.array_equal(a[k], b[k]), k
    for log in (EVAL_LOG, EVAL_LIVE_LOG):
        assert (list(csv.DictReader(open(tmp_path / "ref" / log)))
                == list(csv.DictReader(open(tmp_path / "cut" / log)))), log


def test_checkpoint_holds_the_average_and_sampling_uses_it(tmp_path):
    t = Trainer(cfg(tmp_path, "s", epochs=1), progress=False).fit(log=lambda s: None)
    ck = str(tmp_path / "s" / CHECKPOINT)
    assert io.checkpoint_model_names(ck) == ["G", "D", "G_ema"]
    G, meta = load_generator(ck)
    assert meta["generator"] == "averaged"
    for k, a in G.state_dict().items():  # the average's weights and its own BatchNorm estimates
        np.testing.assert_array_equal(a, t.drawing_generator().state_dict()[k])
    G_live, meta = load_generator(ck, averaged=False)
    assert meta["generator"] == "live"
    assert not np.array_equal(sample(ck, 50), sample(ck, 50, averaged=False))
    first = list(csv.DictReader(open(tmp_path / "s" / EVAL_LOG)))[0]
    assert t.config.seed != 0
    assert main(["eval", "--checkpoint", ck]) == 0  # with the run's seed, as the trainer scores
    assert main(["eval", "--checkpoint", ck, "--live", "--csv", str(tmp_path / "live.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "s" / EVAL_LOG)))
    assert rows[-1] == first  # eval of the checkpoint scores what the trainer scored
    assert list(csv.DictReader(open(tmp_path / "live.csv"))) == list(
        csv.DictReader(open(tmp_path / "s" / EVAL_LIVE_LOG)))
    assert main(["eval", "--checkpoint", ck, "--seed", "0", "--no-csv"]) == 0  # another noise seed
    assert score_checkpoint(ck) == score_checkpoint(ck, seed=4)
    assert score_checkpoint(ck, seed=0)["seed"] == 0


def test_a_checkpoint_within_an_epoch_gets_the_averages_batchnorm_estimates_on_loading(tmp_path):
    """Mid-epoch checkpoints skip estimating the average's BatchNorm statistics (a few hundred
    ms of the conv pair's epoch each); whoever loads one to draw gets the same estimates as
    the trainer would have stored, and the checkpoint at the end of an epoch stores them."""
    config = TrainConfig(model="conv", clusters=4, epochs=1, batch_size=8, seed=3, log_every=2,
                         checkpoint_every=3, n_samples=8, width=1 / 16, g_ema=0.9,
                         out=str(tmp_path / "mid"))
    data = synthetic("conv", 48)  # 6 steps: a checkpoint after step 3, none after step 4
    t = Trainer(config, data=data, progress=False)
    fit_until_interrupted(t, 4)  # killed before step 5: the checkpoint on disk is step 3's
    ck = str(tmp_path / "mid" / CHECKPOINT)
    meta = io.read_checkpoint_meta(ck)
    assert (meta["step_in_epoch"], meta["g_ema_batchnorm"]) == (3, "stale")
    stored = Trainer(config, data=data, progress=False)
    stored.restore()  # the average as the checkpoint holds it, estimated here by the trainer
    want = stored.drawing_generator().state_dict()
    G, meta = load_generator(ck)
    assert meta["generator"] == "averaged"
    got = G.state_dict()
    buffers = [k for k in want if k.startswith("buffer.")]
    assert buffers
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    # the stored buffers are not those estimates: loading them as they are would draw wrongly
    raw, _ = models.build("conv", clusters=4, width=1 / 16)
    io.load_checkpoint(ck, models={"G_ema": raw}, restore_rng=False, expect_model="conv")
    assert not all(np.array_equal(raw.state_dict()[k], want[k]) for k in buffers)
    end = dataclasses.replace(config, out=str(tmp_path / "end"))
    Trainer(end, data=data, progress=False).fit(log=lambda s: None)
    assert io.read_checkpoint_meta(str(tmp_path / "end" / CHECKPOINT))["g_ema_batchnorm"] == "estimated"


def test_a_checkpoint_without_the_average_still_loads(tmp_path):
    """An older run (or one without g_ema) resumed with g_ema starts the average from its G."""
    Trainer(cfg(tmp_path, "old", epochs=1, g_ema=0.0), progress=False).fit(log=lambda s: None)
    ck = str(tmp_path / "old" / CHECKPOINT)
    assert io.checkpoint_model_names(ck) == ["G", "D"]
    assert load_generator(ck)[1]["generator"] == "live"
    t = Trainer(cfg(tmp_path, "old", epochs=2), progress=False)
    t.restore()
    for k, a in t.G.state_dict().items():
        np.testing.assert_array_equal(t.ema.avg.state_dict()[k], a)
    t.fit(log=lambda s: None)
    assert "G_ema" in io.checkpoint_model_names(ck)
    # and a run with the average resumed without it ignores the average
    t2 = Trainer(cfg(tmp_path, "old", epochs=3, g_ema=0.0), progress=False)
    t2.restore()
    assert t2.ema is None and t2.drawing_generator() is t2.G


def test_cli_flag(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["train", "--dataset", "ring", "--epochs", "1", "--limit", "400", "--batch-size", "20",
                 "--g-ema", "0.99", "--out", str(out), "--quiet"]) == 0
    assert io.read_checkpoint_meta(out / CHECKPOINT)["config"]["g_ema"] == 0.99
    assert (out / EVAL_LIVE_LOG).exists()
    capsys.readouterr()
    assert main(["train", "--dataset", "ring", "--g-ema", "1", "--out", str(tmp_path / "x")]) == 2
    assert "g-ema must lie in [0, 1)" in capsys.readouterr().err


def test_update_kernel_matches_the_reference():
    """The one-launch update gives the reference's bits (float64 averages of float32 weights)."""
    from minigan.gan.averaging import ema_update
    from minigan.runtime import cpu

    rng = np.random.default_rng(5)
    for size in (3, 70 * 300, 40_000):  # the last spans several chunks
        theta = rng.standard_normal(size).astype(np.float32)
        avg = rng.standard_normal(size)
        ref = avg.copy()
        for _ in range(3):
            cpu.ema_update(avg, theta, 1e-3)
            ema_update(ref, theta, 1e-3)
        np.testing.assert_array_equal(avg, ref)

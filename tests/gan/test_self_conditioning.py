"""The self-conditioned GAN: k-means clusters of the images as labels, no class labels."""
import numpy as np
import pytest
from helpers import fit_until_interrupted
from test_trainer import synthetic, weights

from minigan import nn
from minigan.cli import main
from minigan.data.clusters import kmeans
from minigan.gan import models
from minigan.gan.config import TrainConfig, run_config
from minigan.gan.sampler import load_generator
from minigan.gan.trainer import CHECKPOINT, KMEANS_STREAM, Trainer


def cfg(tmp_path, name, **kw):
    base = dict(model="conv", clusters=4, epochs=2, batch_size=8, lr=1e-3, seed=3, log_every=2,
                checkpoint_every=3, n_samples=8, width=1 / 16, out=str(tmp_path / name))
    base.update(kw)
    return TrainConfig(**base)


def test_the_conv_pair_and_the_mixtures_are_self_conditioned_by_default_and_nothing_else_is():
    assert TrainConfig.for_dataset("mnist").validate().clusters == 50
    assert TrainConfig.for_dataset("mnist", conditional=True).validate().clusters == 0
    for model in ("dcgan", "mlp"):
        assert TrainConfig.for_dataset("mnist", model=model).validate().clusters == 0
    assert TrainConfig.for_dataset("ring").validate().clusters == 32
    assert TrainConfig.for_dataset("grid", clusters=0).validate().clusters == 0
    assert TrainConfig.for_dataset("mnist", clusters=0).validate().clusters == 0


def test_bad_cluster_options():
    for bad, match in [(dict(clusters=1), "0 \\(none\\) or at least 2"),
                       (dict(clusters=-3), "0 \\(none\\) or at least 2"),
                       (dict(clusters=5, conditional=True), "drop it with --conditional"),
                       (dict(clusters=101), "at most 100 on MNIST")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad).validate()
    with pytest.raises(ValueError, match="for unconditional models"):
        models.build("conv", conditional=True, clusters=5)
    with pytest.raises(ValueError, match="packing"):
        models.build("conv", pack=2, clusters=5)


def test_build_puts_a_weighted_code_in_g_and_a_projection_head_in_d():
    G, D = models.build("conv", clusters=7)
    code, head = G.layers[0], D.layers[-1]
    assert isinstance(code, nn.DiscreteCode) and code.num_codes == 7
    np.testing.assert_allclose(code.probs, np.full(7, 1 / 7))
    assert isinstance(head, nn.LabelProjection) and (head.in_features, head.num_classes) == (6272, 7)
    # the same networks as without clusters, but for the code's size and the head
    G0, D0 = models.build("conv", clusters=0)
    assert [repr(m) for m in G.layers[1:]] == [repr(m) for m in G0.layers[1:]]
    assert [repr(m) for m in D.layers[:-1]] == [repr(m) for m in D0.layers[:-1]]


def test_the_trainer_labels_images_with_their_clusters_and_fakes_with_their_codes(tmp_path):
    data = synthetic("conv", 48)
    t = Trainer(cfg(tmp_path, "run"), data=data, progress=False)
    want = kmeans(data, 4, np.random.default_rng([3, KMEANS_STREAM]))[1]
    np.testing.assert_array_equal(t.labels, want)
    np.testing.assert_allclose(t.G.layers[0].probs, np.bincount(want, minlength=4) / 48)
    idx = np.arange(8, 16)
    real, z, y_real, y_fake = t.step_inputs(idx)
    np.testing.assert_array_equal(y_real, want[idx])
    np.testing.assert_array_equal(y_fake, t.G.layers[0].codes(z))
    np.testing.assert_array_equal(np.argmax(t.G.layers[0].forward(z)[:, :4], axis=1), y_fake)
    with pytest.raises(ValueError, match="needs y_real and y_fake"):
        t.train_step(real, z)
    t.fit(log=lambda s: None)
    assert np.abs(t.D.layers[-1].params["E"]).max() > 0  # each cluster's row was trained


def test_resume_in_process_matches_an_uninterrupted_run(tmp_path):
    data = synthetic("conv", 48)
    ref = Trainer(cfg(tmp_path, "ref"), data=data, progress=False).fit(log=lambda s: None)
    broken = Trainer(cfg(tmp_path, "cut"), data=data, progress=False)
    fit_until_interrupted(broken, 7)
    resumed = Trainer(cfg(tmp_path, "cut"), data=data, progress=False)
    resumed.restore()
    resumed.fit(log=lambda s: None)
    a, b = weights(ref), weights(resumed)
    assert a.keys() == b.keys() and "G.buffer.0.probs" in a
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_a_checkpoint_samples_with_the_clusters_shares(tmp_path):
    data = synthetic("conv", 48)
    t = Trainer(cfg(tmp_path, "run", epochs=1, g_ema=0.9), data=data, progress=False).fit(log=lambda s: None)
    G, meta = load_generator(tmp_path / "run" / CHECKPOINT)
    np.testing.assert_array_equal(G.layers[0].probs, t.G.layers[0].probs)
    assert meta["generator"] == "averaged"
    assert main(["sample", "--checkpoint", str(tmp_path / "run" / CHECKPOINT), "--n", "6",
                 "--out", str(tmp_path / "g.npz")]) == 0
    assert np.load(tmp_path / "g.npz")["images"].shape == (6, 28, 28)


def test_too_few_images_for_the_clusters_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--clusters 50: needs at least 50 training samples, got 32"):
        Trainer(cfg(tmp_path, "run", clusters=50), data=synthetic("conv", 32), progress=False)


def test_resume_keeps_the_clusters(tmp_path):
    Trainer(cfg(tmp_path, "run", epochs=1), data=synthetic("conv", 48), progress=False).fit(log=lambda s: None)
    from minigan.gan.config import ConfigError

    with pytest.raises(ConfigError, match="clusters=4, not 6"):
        run_config({"out": str(tmp_path / "run"), "clusters": 6, "epochs": 2}, resume=True)
    assert run_config({"out": str(tmp_path / "run"), "epochs": 2}, resume=True).clusters == 4


def test_summary_shows_the_default_networks(capsys):
    assert main(["summary", "--model", "conv"]) in (0, None)
    out = capsys.readouterr().out
    assert "DiscreteCode(50, scale=4, probs=...)" in out and "LabelProjection(6272, 50)" in out
    assert "labels (N,) for its LabelProjection" in out
    assert main(["summary", "--model", "conv", "--clusters", "0"]) in (0, None)
    assert "LabelProjection" not in capsys.readouterr().out


def test_a_packed_mixture_pair_takes_the_code_as_extra_noise_and_labels_per_point(tmp_path):
    G, D = models.build("mlp2d", pack=2, clusters=5)
    assert models.noise_dim("mlp2d", 5) == 7 == models.input_width(G)
    assert isinstance(G.layers[0], nn.DiscreteCode) and G.layers[0].num_codes == 5
    head = D.layers[-1]
    assert (head.num_classes, head.group, head.params["E"].shape) == (5, 2, (10, 200))
    t = Trainer(TrainConfig(dataset="ring", model="mlp2d", pack=2, clusters=8, epochs=1, batch_size=10,
                            lr=1e-3, seed=1, limit=400, log_every=5, checkpoint_every=10,
                            out=str(tmp_path / "ring")), progress=False)
    # the ring's 8 modes, 400 points: k-means finds each mode as one cluster
    from minigan.data import RING

    modes = np.argmin(((t.data[:, None, :] - RING.modes[None]) ** 2).sum(-1), axis=1)
    assert len({(a, b) for a, b in zip(modes, t.labels)}) == 8
    real, z, y_real, y_fake = t.step_inputs(np.arange(20))
    assert z.shape == (20, 10) and y_real.shape == y_fake.shape == (20,)
    t.fit(log=lambda s: None)
    G2, _ = load_generator(tmp_path / "ring" / CHECKPOINT)
    np.testing.assert_array_equal(G2.layers[0].probs, t.G.layers[0].probs)
    from minigan.gan.sampler import generate

    assert generate(G2, "mlp2d", 6).shape == (6, 2)

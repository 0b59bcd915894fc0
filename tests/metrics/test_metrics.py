"""Scores with known answers: Fréchet distance, Inception Score, class counts, the classifier plumbing.

None of these needs MNIST: they use synthetic features, a tiny randomly initialised
classifier, or hand-made probabilities.  The one test that needs the real classifier and
the MNIST cache skips when either is missing.
"""
import csv
import math

import numpy as np
import pytest

from minigan.metrics import (append_scores, build_classifier, class_counts, classes_produced,
    classifier as clf, feature_stats, format_scores, forward_features, frechet_distance,
    frechet_distance_features, inception_score, kl_from_uniform, mixture_scores, prepare_images,
    scores_from_outputs, sqrtm_psd)
from minigan.runtime import devices


# -- Fréchet distance ------------------------------------------------------------------
def test_identical_sets_give_distance_zero(rng):
    f = rng.standard_normal((500, 16)) @ rng.standard_normal((16, 16))
    assert frechet_distance_features(f, f) == pytest.approx(0.0, abs=1e-8)
    mu, s = feature_stats(f)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-8)


def test_rank_deficient_covariance_still_zero_for_identical_sets(rng):
    # 5 samples in 16 dimensions: a singular covariance, as with dead ReLU features.
    f = rng.standard_normal((5, 16))
    f[:, 3] = 0.0
    assert frechet_distance_features(f, f) == pytest.approx(0.0, abs=1e-8)


def test_mean_shift_only():
    s = np.diag([1.0, 2.0, 3.0])
    assert frechet_distance([0, 0, 0], s, [1, 2, 2], s) == pytest.approx(9.0)


def test_one_dimensional_closed_form():
    # (m1 - m2)^2 + (s1 - s2)^2 for 1-D Gaussians with std s1, s2.
    assert frechet_distance([0.0], [[4.0]], [1.0], [[9.0]]) == pytest.approx(1.0 + 1.0)


def test_commuting_covariances_closed_form(rng):
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a, b = rng.uniform(0.5, 3, 6), rng.uniform(0.5, 3, 6)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(6), s1, np.zeros(6), s2) == pytest.approx(expected, rel=1e-9)


def test_general_case_against_eigen_route(rng):
    a = rng.standard_normal((8, 8))
    b = rng.standard_normal((8, 8))
    s1, s2 = a @ a.T, b @ b.T
    # tr sqrt(S1 S2) from the (real, non-negative) eigenvalues of the non-symmetric product.
    w = np.linalg.eigvals(s1 @ s2)
    tr = np.sqrt(np.clip(w.real, 0, None)).sum()
    expected = np.trace(s1) + np.trace(s2) - 2 * tr
    assert frechet_distance(np.zeros(8), s1, np.zeros(8), s2) == pytest.approx(expected, rel=1e-8)
    # symmetric in its two arguments
    assert frechet_distance(np.zeros(8), s2, np.zeros(8), s1) == pytest.approx(expected, rel=1e-8)


def test_sqrtm_psd(rng):
    a = rng.standard_normal((5, 5))
    s = a @ a.T
    r = sqrtm_psd(s)
    np.testing.assert_allclose(r @ r, s, atol=1e-10)
    np.testing.assert_allclose(r, r.T)


def test_frechet_shape_errors():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="n >= 2"):
        feature_stats(np.zeros((1, 4)))


# -- Inception Score, histogram, classes ----------------------------------------------------
def test_inception_score_extremes():
    confident_uniform = np.eye(10)[np.arange(1000) % 10]
    assert inception_score(confident_uniform, splits=10)[0] == pytest.approx(10.0)
    one_class = np.tile(np.eye(10)[3], (1000, 1))
    assert inception_score(one_class)[0] == pytest.approx(1.0)
    unsure = np.full((1000, 10), 0.1)
    assert inception_score(unsure)[0] == pytest.approx(1.0)
    half = np.eye(10)[np.arange(1000) % 2]  # confident, two digits: exp(log 2)
    mean, std = inception_score(half)
    assert mean == pytest.approx(2.0) and std == pytest.approx(0.0, abs=1e-12)


def test_class_histogram_and_kl():
    counts = class_counts([1, 1, 2, 9], 10)
    np.testing.assert_array_equal(counts, [0, 2, 1, 0, 0, 0, 0, 0, 0, 1])
    assert kl_from_uniform(np.full(10, 7)) == pytest.approx(0.0)
    assert kl_from_uniform(np.eye(10)[4] * 50) == pytest.approx(math.log(10))
    assert math.isnan(kl_from_uniform(np.zeros(10)))
    assert classes_produced(np.full(10, 100)) == 10
    assert classes_produced([1000, 0, 0, 0, 0, 0, 0, 0, 0, 0]) == 1
    assert classes_produced([995, 5, 0, 0, 0, 0, 0, 0, 0, 0]) == 1  # 0.5% is below the 1% threshold
    assert classes_produced([990, 10, 0, 0, 0, 0, 0, 0, 0, 0]) == 2


def test_single_mode_generator_scores_one_class(rng):
    """A 'generator' whose every sample the classifier calls a 7: 1 class, KL log 10, IS 1."""
    feats = rng.standard_normal((200, 8))
    logits = np.full((200, 10), -5.0)
    logits[:, 7] = 5.0
    ref = feature_stats(rng.standard_normal((300, 8)))
    s = scores_from_outputs(feats, logits, ref)
    assert s["n_classes"] == 1
    assert s["class_counts"][7] == 200
    assert s["kl_uniform"] == pytest.approx(math.log(10))
    assert s["inception_score"] == pytest.approx(1.0)


def test_scores_on_a_tiny_random_classifier(rng):
    """Same images on both sides give Fréchet 0; the plumbing returns every key, with a real network."""
    devices.manual_seed(0)
    net = build_classifier().eval()
    imgs = rng.random((40, 28, 28)).astype(np.float32)
    feats, logits = forward_features(net, imgs, batch_size=16)
    assert feats.shape == (40, 128) and logits.shape == (40, 10)
    s = scores_from_outputs(feats, logits, feature_stats(feats))
    assert s["frechet"] == pytest.approx(0.0, abs=1e-6)
    assert set(s) >= {"frechet", "inception_score", "kl_uniform", "n_classes", "class_counts"}
    assert sum(s["class_counts"]) == 40 and 1.0 <= s["inception_score"] <= 10.0
    # a copy of one image 40 times: every prediction equal, one class
    same = np.repeat(imgs[:1], 40, axis=0)
    f2, l2 = forward_features(net, same)
    assert scores_from_outputs(f2, l2, feature_stats(feats))["n_classes"] == 1


def test_prepare_images_layouts():
    u8 = np.full((2, 28, 28), 255, np.uint8)
    np.testing.assert_array_equal(prepare_images(u8), 1.0)
    f = np.zeros((3, 784), np.float32)
    out = prepare_images(f)
    assert out.shape == (3, 1, 28, 28) and out.dtype == np.float32 and (out == -1).all()
    assert prepare_images(np.full((1, 1, 28, 28), 2.0)).max() == 1.0  # clipped to [0, 1] first
    with pytest.raises(ValueError, match="MNIST-shaped"):
        prepare_images(np.zeros((2, 27, 28)))
    with pytest.raises(ValueError, match="NaN"):
        prepare_images(np.full((1, 28, 28), np.nan))


def test_weight_file_round_trip_and_hash_check(tmp_path):
    devices.manual_seed(1)
    net = build_classifier()
    path = tmp_path / "w.npz"
    sha = clf.save_weights(net, path, {"test_accuracy": 0.5})
    state, info = clf.read_weights(path, sha)
    assert info["test_accuracy"] == 0.5
    other = build_classifier().load_state_dict(state)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)
    with pytest.raises(clf.ClassifierError, match="SHA-256"):
        clf.read_weights(path, "0" * 64)
    (tmp_path / "w.npz.sha256").write_text(f"{sha}  w.npz\n")
    loaded = clf.load_classifier(path)
    assert not loaded.training


def test_shipped_weights_match_their_hash():
    if not clf.WEIGHTS_FILE.exists():
        pytest.skip("no shipped classifier weights")
    assert clf.sha256_file(clf.WEIGHTS_FILE) == clf.WEIGHTS_SHA256


# -- mixtures, formatting, CSV ----------------------------------------------------------------
def test_mixture_scores_on_hand_placed_points():
    from minigan.data import GRID, RING

    s = mixture_scores(RING.modes[[0, 0, 1, 5]] + 0.005, "ring")
    assert (s["modes_covered"], s["high_quality"], s["n"], s["n_modes"]) == (3, 1.0, 4, 8)
    p = np.array([0.5, 0.25, 0.25])
    assert s["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(8 * p))))
    far = np.array([[1.0, 1.0], [3.0, 3.0]])  # both halfway between grid modes
    g = mixture_scores(np.concatenate([GRID.modes, far]), "grid")
    assert g["modes_covered"] == 25 and g["high_quality"] == pytest.approx(25 / 27)
    assert g["reverse_kl"] == pytest.approx(0.0, abs=1e-12)


def test_format_and_append(tmp_path):
    from minigan.data import RING

    s = mixture_scores(RING.modes, "ring")
    text = format_scores(s, {"true mixture": s})
    assert "modes covered (of 8)" in text and "100.0" in text
    assert "modes_covered 8" in format_scores(s, short=True)
    path = tmp_path / "eval.csv"
    append_scores(path, s, epoch=1, step=10)
    append_scores(path, s, epoch=2, step=20)
    rows = list(csv.DictReader(open(path)))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[1]["modes_covered"] == "8"
    m = {"dataset": "mnist", "n": 5, "frechet": 1.5, "inception_score": 2.0, "inception_score_std": 0.1,
         "kl_uniform": 0.3, "n_classes": 4, "class_counts": [1] * 10}
    with pytest.raises(ValueError, match="other columns"):
        append_scores(path, m)
    append_scores(tmp_path / "m.csv", m, epoch=3, step=4)
    row = next(csv.DictReader(open(tmp_path / "m.csv")))
    assert row["frechet"] == "1.5" and row["count_9"] == "1"
    assert "Fréchet distance" in format_scores(m, {"noise": m})


@pytest.mark.slow
def test_real_classifier_on_mnist():
    """The shipped classifier: >= 99% on the test set, and train-vs-test far closer than noise."""
    from minigan.data import mnist_home

    if not clf.WEIGHTS_FILE.exists() or not (mnist_home() / "mnist.npz").exists():
        pytest.skip("needs the shipped classifier weights and the MNIST cache")
    from minigan.data import load_mnist
    from minigan.metrics import load_classifier, reference_scores

    net = load_classifier(train_if_missing=False)
    x, y = load_mnist("test", progress=False)
    assert clf.accuracy(net, x, y) >= 0.99
    ref = reference_scores(net, n=2000)
    assert ref["train"]["frechet"] < 0.05 * ref["noise"]["frechet"]
    assert ref["train"]["n_classes"] == 10 and ref["train"]["inception_score"] > 9


@pytest.mark.slow
def test_mnist_scores_during_training_keep_exact_resume(tmp_path):
    """Scoring every epoch (classifier loaded mid-run) must not change what a resumed run computes."""
    from minigan.data import mnist_home

    if not clf.WEIGHTS_FILE.exists() or not (mnist_home() / "mnist.npz").exists():
        pytest.skip("needs the shipped classifier weights and the MNIST cache")
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "gan"))
    from test_trainer import synthetic

    from minigan.gan.trainer import Trainer, TrainConfig

    def cfg(name, epochs):
        return TrainConfig(model="mlp", epochs=epochs, batch_size=16, seed=2, eval_every=1, log_every=2,
                           n_samples=16, out=str(tmp_path / name))

    data = synthetic("mlp", 64)
    clf._LOADED.clear()  # force a load (and its initialisation draws) in the middle of the run
    ref = Trainer(cfg("ref", 2), data=data, progress=False).fit(log=lambda s: None)
    Trainer(cfg("cut", 1), data=data, progress=False).fit(log=lambda s: None)
    clf._LOADED.clear()
    resumed = Trainer(cfg("cut", 2), data=data, progress=False)
    resumed.restore()
    resumed.fit(log=lambda s: None)
    for k, v in ref.G.state_dict().items():
        assert np.array_equal(v, resumed.G.state_dict()[k]), k
    rows = list(csv.DictReader(open(tmp_path / "cut" / "eval.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]

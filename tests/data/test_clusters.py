"""k-means, the labels of the self-conditioned GAN."""
import numpy as np
import pytest

from minigan.data.clusters import kmeans, nearest


def _blobs(seed=0, k=4, per=50, spread=0.1):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, 6)) * 5
    truth = np.repeat(np.arange(k), per)
    return centres[truth] + spread * rng.standard_normal((k * per, 6)), truth, centres


def test_separate_blobs_are_found_exactly():
    x, truth, centres = _blobs()
    found, assign = kmeans(x, 4, np.random.default_rng(1))
    # the same partition, whatever the numbering
    pairs = {(t, a) for t, a in zip(truth, assign)}
    assert len(pairs) == 4 and len({a for _, a in pairs}) == 4
    for t, a in pairs:
        np.testing.assert_allclose(found[a], x[truth == t].mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(nearest(x.astype(np.float32), found), assign)


def test_the_centres_minimise_the_squared_distances_better_than_the_start():
    """Lloyd's rounds never raise the sum of squared distances; on overlapping blobs they lower it."""
    x, _, _ = _blobs(seed=2, k=6, spread=3.0)
    one, a1 = kmeans(x, 6, np.random.default_rng(0), iters=1)
    many, a = kmeans(x, 6, np.random.default_rng(0), iters=50)
    cost = lambda c, asg: ((x - c[asg]) ** 2).sum()  # noqa: E731
    assert cost(many, a) < cost(one, a1)
    np.testing.assert_array_equal(a, nearest(x.astype(np.float32), many))  # converged: a fixed point


def test_the_same_seed_gives_the_same_clusters_and_images_are_flattened():
    x, _, _ = _blobs(seed=3, spread=2.0)
    imgs = x.reshape(-1, 1, 2, 3)
    c1, a1 = kmeans(imgs, 5, np.random.default_rng([7, 1]))
    c2, a2 = kmeans(x, 5, np.random.default_rng([7, 1]))
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(c1, c2)
    assert c1.shape == (5, 6) and c1.dtype == np.float32 and a1.dtype == np.int64


def test_as_many_clusters_as_points():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    _, a = kmeans(x, 4, np.random.default_rng(0))
    assert sorted(a) == [0, 1, 2, 3]


def test_errors():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="cannot make 4 clusters of 3 points"):
        kmeans(x, 4, np.random.default_rng(0))
    x[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kmeans(x, 2, np.random.default_rng(0))

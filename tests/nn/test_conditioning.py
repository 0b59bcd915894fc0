"""The label-joining layer of the conditional GANs."""
import numpy as np
import pytest
from helpers import on

from minigan import nn
from minigan.gradcheck import check_layer
from minigan.nn.conditioning import LabelJoin, LabelProjection, is_conditional, set_labels, takes_labels


def test_features_and_channels_layout():
    j = LabelJoin(3)
    j.labels = np.array([2, 0])
    out = j.forward(np.ones((2, 4), np.float32))
    np.testing.assert_array_equal(out, [[1, 1, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 0, 0]])
    img = j.forward(np.full((2, 1, 2, 2), 0.5, np.float32))
    assert img.shape == (2, 4, 2, 2)
    assert (img[0, 3] == 1).all() and (img[0, 1:3] == 0).all() and (img[1, 1] == 1).all()


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 4, 4)])
def test_gradients_behind_and_in_front_of_layers(device, shape):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, shape[0])
    if len(shape) == 2:
        model = nn.Sequential(LabelJoin(4), nn.Dense(8, 3), nn.LeakyReLU(0.2), nn.Dense(3, 2))
    else:
        model = nn.Sequential(LabelJoin(4), nn.Conv2D(6, 3, 3, 2, "same"), nn.Tanh())
    set_labels(model.to(device), on(device, labels, dtype=np.int64))
    check_layer(model, on(device, rng.standard_normal(shape))).assert_ok(1e-6)


def test_errors():
    j = LabelJoin(3)
    with pytest.raises(RuntimeError, match="set the labels"):
        j.forward(np.ones((2, 4), np.float32))
    j.labels = np.array([0, 3])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        j.forward(np.ones((2, 4), np.float32))
    j.labels = np.array([0])
    with pytest.raises(ValueError, match="1 labels for a batch of 2"):
        j.forward(np.ones((2, 4), np.float32))


def _projection(F=5, K=3, seed=0):
    rng = np.random.default_rng(seed)
    head = LabelProjection(F, K).astype(np.float64)
    for key in ("W", "b", "E"):
        head.params[key][...] = rng.standard_normal(head.params[key].shape)
    return head, rng


def test_projection_is_a_dense_plus_the_labels_embedding():
    head, rng = _projection()
    x, y = rng.standard_normal((4, 5)), np.array([2, 0, 0, 1])
    head.labels = y
    W, b, E = (head.params[k] for k in ("W", "b", "E"))
    want = [x[n] @ W[:, 0] + b[0] + x[n] @ E[y[n]] for n in range(4)]
    np.testing.assert_allclose(head.forward(x)[:, 0], want, rtol=1e-12)


def test_a_new_projection_is_the_unconditional_dense():
    head, dense = LabelProjection(6, 4), nn.Dense(6, 1)
    head.params["W"][...], head.params["b"][...] = dense.params["W"], dense.params["b"]
    x = np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)
    head.labels = np.array([3, 1, 0, 2, 3])
    # E starts at zero (the head's own dot products round apart from BLAS's)
    np.testing.assert_allclose(head.forward(x), dense.forward(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1])
def test_projection_gradients_behind_a_dense(device, seed):
    head, rng = _projection(seed=seed)
    model = nn.Sequential(nn.Dense(4, 5), nn.LeakyReLU(0.2), head).astype(np.float64).to(device)
    set_labels(model, on(device, rng.integers(0, 3, 6), dtype=np.int64))
    check_layer(model, on(device, rng.standard_normal((6, 4)))).assert_ok(1e-6)


def test_each_class_trains_its_own_embedding_row():
    head, rng = _projection()
    x = rng.standard_normal((4, 5))
    head.labels = np.array([2, 0, 2, 2])
    head.forward(x)
    dy = rng.standard_normal((4, 1))
    head.backward_weights(dy)
    E = head.grads["E"]
    np.testing.assert_allclose(E[2], dy[0] * x[0] + dy[2] * x[2] + dy[3] * x[3], rtol=1e-12)
    np.testing.assert_allclose(E[0], dy[1] * x[1], rtol=1e-12)
    np.testing.assert_array_equal(E[1], 0)


def test_projection_takes_labels_but_is_not_class_conditional():
    d = nn.Sequential(nn.Dense(4, 5), LabelProjection(5, 3))
    assert takes_labels(d) and not is_conditional(d)
    assert set_labels(d, np.array([1, 2])).layers[1].labels.tolist() == [1, 2]
    assert is_conditional(nn.Sequential(LabelJoin(3))) and not takes_labels(nn.Dense(2, 2))


def test_projection_errors():
    head = LabelProjection(5, 3)
    with pytest.raises(RuntimeError, match="set the labels"):
        head.forward(np.ones((2, 5), np.float32))
    head.labels = np.array([0, 3])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        head.forward(np.ones((2, 5), np.float32))
    head.labels = np.array([0, 1])
    with pytest.raises(nn.ShapeError, match=r"\(N, 5\)"):
        head.forward(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="at least 2"):
        LabelProjection(5, 1)


def test_a_packed_projection_gives_each_sample_of_a_row_its_own_block():
    head = LabelProjection(4, 3, group=2).astype(np.float64)
    rng = np.random.default_rng(5)
    for key in ("W", "b", "E"):
        head.params[key][...] = rng.standard_normal(head.params[key].shape)
    x = rng.standard_normal((2, 4))
    head.labels = np.array([2, 0, 1, 1])  # row 0: samples of classes 2 and 0; row 1: 1 and 1
    W, b, E = (head.params[k] for k in ("W", "b", "E"))
    want = [x[0] @ W[:, 0] + b[0] + x[0] @ (E[2] + E[3 + 0]), x[1] @ W[:, 0] + b[0] + x[1] @ (E[1] + E[3 + 1])]
    np.testing.assert_allclose(head.forward(x)[:, 0], want, rtol=1e-12)
    head.labels = np.array([2, 0, 1])
    with pytest.raises(ValueError, match="3 labels for a batch of 2 \\(2 a row\\)"):
        head.forward(x)


def test_packed_projection_gradients(device):
    head, rng = _projection(F=5, K=3)
    packed = LabelProjection(5, 3, group=3).astype(np.float64)
    for key in ("W", "b", "E"):
        packed.params[key][...] = rng.standard_normal(packed.params[key].shape)
    model = nn.Sequential(nn.Dense(4, 5), nn.LeakyReLU(0.2), packed).astype(np.float64).to(device)
    set_labels(model, on(device, rng.integers(0, 3, 12), dtype=np.int64))
    check_layer(model, on(device, rng.standard_normal((4, 4)))).assert_ok(1e-6)

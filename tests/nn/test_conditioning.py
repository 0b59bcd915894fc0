"""The label-joining layer of the conditional GANs."""
import numpy as np
import pytest
from helpers import on

from minigan import nn
from minigan.gradcheck import check_layer
from minigan.nn.conditioning import LabelJoin, set_labels


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

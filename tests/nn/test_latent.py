"""The discrete code carved out of the generator's noise."""
import numpy as np
import pytest
from helpers import on
from hypothesis import given
from hypothesis import strategies as st

from minigan import backend, nn
from minigan.gradcheck import check_layer


def test_layout():
    z = np.array([[0.1, 2.0, -1.0, 0.5, 0.25], [3.0, 0.0, 1.0, -0.5, 0.75]], np.float32)
    y = nn.DiscreteCode(3, scale=4.0).forward(z)
    np.testing.assert_array_equal(y, [[0, 4, 0, 0.5, 0.25], [4, 0, 0, -0.5, 0.75]])
    assert y.dtype == np.float32


def test_codes_are_uniform_over_gaussian_noise():
    z = np.random.default_rng(0).standard_normal((100_000, 12)).astype(np.float32)
    y = nn.DiscreteCode(10, scale=1.0).forward(z)
    assert (y[:, :10].sum(1) == 1).all()
    counts = y[:, :10].sum(0)
    # each count is Binomial(1e5, 0.1): std ~95, so 5 std is 475
    assert np.abs(counts - 10_000).max() < 475, counts
    np.testing.assert_array_equal(y[:, 10:], z[:, 10:])


@given(st.integers(2, 5), st.integers(0, 3), st.integers(1, 4), st.integers(0, 2**16))
def test_gradients_in_front_of_a_dense(device, k, extra, n, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k + extra))
    z[np.arange(n), rng.integers(0, k, n)] += 3.0  # a clear winner: no code flips under the finite differences
    model = nn.Sequential(nn.DiscreteCode(k, scale=2.0), nn.Dense(k + extra, 3), nn.Tanh()).to(device)
    check_layer(model, on(device, z), seed=seed).assert_ok(1e-6)


def test_the_code_passes_no_gradient(device):
    layer = nn.DiscreteCode(3).to(device)
    z = on(device, np.random.default_rng(1).standard_normal((4, 5)))
    layer.forward(z)
    dz = backend.to_numpy(layer.backward(on(device, np.ones((4, 5)))))
    np.testing.assert_array_equal(dz[:, :3], 0)
    np.testing.assert_array_equal(dz[:, 3:], 1)


def test_errors():
    with pytest.raises(ValueError, match="at least 2"):
        nn.DiscreteCode(1)
    with pytest.raises(ValueError, match="D >= 4"):
        nn.DiscreteCode(4).forward(np.ones((2, 3), np.float32))

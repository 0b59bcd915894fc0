"""The discrete code carved out of the generator's noise."""
import numpy as np
import pytest
from helpers import on
from hypothesis import given
from hypothesis import strategies as st

from minigan import nn
from minigan.gradcheck import check_layer
from minigan.runtime import devices


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
    dz = devices.to_numpy(layer.backward(on(device, np.ones((4, 5)))))
    np.testing.assert_array_equal(dz[:, :3], 0)
    np.testing.assert_array_equal(dz[:, 3:], 1)


def test_errors():
    with pytest.raises(ValueError, match="at least 2"):
        nn.DiscreteCode(1)
    with pytest.raises(ValueError, match="D >= 4"):
        nn.DiscreteCode(4).forward(np.ones((2, 3), np.float32))


def test_upper_tail_matches_erfc_to_its_stated_error_far_into_the_tails():
    import math

    from minigan.nn.latent import upper_tail

    z = np.concatenate([np.linspace(-8, 8, 1601), [-37.0, -20.0, 12.0, 20.0, 30.0]])
    want = np.array([0.5 * math.erfc(v / math.sqrt(2)) for v in z])
    got = upper_tail(z)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1.2e-7, atol=0)


def test_weighted_codes_are_drawn_with_their_probabilities(device):
    p = np.array([0.5, 0.25, 0.15, 0.1, 0.0])
    layer = nn.DiscreteCode(5, scale=1.0, probs=p).to(device)
    z = on(device, np.random.default_rng(3).standard_normal((100_000, 7)).astype(np.float32))
    k = devices.to_numpy(layer.codes(z))
    counts = np.bincount(k, minlength=5)
    # Binomial(1e5, p): 5 std is at most 5 * sqrt(1e5 / 4) = 791; p = 0 is never drawn
    assert np.abs(counts - 100_000 * p).max() < 5 * np.sqrt(100_000 * p * (1 - p)).max(), counts
    assert counts[4] == 0
    y = devices.to_numpy(layer.forward(z))
    np.testing.assert_array_equal(np.argmax(y[:, :5], axis=1), k)


def test_equal_probabilities_draw_what_the_plain_code_draws():
    """Both transforms of the Gumbel-max draw are increasing: with p = 1/K the code is argmax(z)."""
    z = np.random.default_rng(4).standard_normal((20_000, 12)).astype(np.float32)
    plain = nn.DiscreteCode(10, 4.0)
    weighted = nn.DiscreteCode(10, 4.0, probs=np.full(10, 0.1))
    np.testing.assert_array_equal(weighted.codes(z), plain.codes(z))
    np.testing.assert_array_equal(weighted.forward(z), plain.forward(z))


def test_probabilities_are_a_buffer_saved_and_set():
    layer = nn.DiscreteCode(3, probs=[1 / 3] * 3)
    layer.set_probs([0.2, 0.3, 0.5])
    state = nn.Sequential(layer).state_dict()
    np.testing.assert_allclose(state["buffer.0.probs"], [0.2, 0.3, 0.5])
    other = nn.Sequential(nn.DiscreteCode(3, probs=[1 / 3] * 3)).load_state_dict(state)
    np.testing.assert_allclose(other.layers[0].probs, [0.2, 0.3, 0.5])
    assert nn.DiscreteCode(3).state_dict() == {}  # the plain code keeps no buffer: old checkpoints load


def test_weighted_errors():
    for bad in ([0.5, 0.5], [0.5, 0.6, -0.1], [0.2, 0.2, 0.2], [np.nan, 0.5, 0.5]):
        with pytest.raises(ValueError, match="3 non-negative numbers summing to 1"):
            nn.DiscreteCode(3, probs=bad)
    with pytest.raises(ValueError, match="make it with probs="):
        nn.DiscreteCode(3).set_probs([0.2, 0.3, 0.5])

"""2-D Gaussian mixtures (PacGAN ring and grid) and their mode statistics."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigan.data import GRID, MIXTURES, RING, grid_modes, mode_stats, ring_modes, sample_mixture


def test_ring_modes():
    m = ring_modes()
    assert m.shape == (8, 2)
    np.testing.assert_allclose(np.hypot(m[:, 0], m[:, 1]), 1.0)
    # Evenly spaced: neighbours are 2 sin(pi/8) apart.
    np.testing.assert_allclose(np.linalg.norm(m - np.roll(m, 1, axis=0), axis=1), 2 * math.sin(math.pi / 8))
    assert RING.std == 0.01 and MIXTURES["ring"] is RING


def test_grid_modes():
    m = grid_modes()
    assert m.shape == (25, 2)
    assert {tuple(p) for p in m} == {(i, j) for i in (-4, -2, 0, 2, 4) for j in (-4, -2, 0, 2, 4)}
    assert GRID.std == 0.05 and MIXTURES["grid"] is GRID


def test_shared_modes_are_read_only():
    with pytest.raises(ValueError):
        RING.modes[0, 0] = 5.0


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_samples_cover_every_mode(name):
    x = sample_mixture(name, 4000, np.random.default_rng(0))
    assert x.shape == (4000, 2) and x.dtype == np.float32
    s = mode_stats(x, name)
    k = len(MIXTURES[name].modes)
    assert s["modes_covered"] == k
    # In 2-D, P(|noise| > 3 std) = exp(-4.5) ~ 1.1%.
    assert 0.97 < s["high_quality"] <= 1.0
    assert 0 <= s["reverse_kl"] < 0.05
    assert s["counts"].shape == (k,) and s["counts"].sum() == round(s["high_quality"] * 4000)


def test_sampling_is_reproducible():
    a = sample_mixture("grid", 10, np.random.default_rng(3))
    b = sample_mixture("grid", 10, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_points_on_modes(name):
    modes = MIXTURES[name].modes
    s = mode_stats(np.repeat(modes, 3, axis=0), name)
    assert s["modes_covered"] == len(modes)
    assert s["high_quality"] == 1.0
    assert s["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(s["counts"], 3)


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_single_mode(name):
    modes, std = MIXTURES[name]
    pts = modes[2] + np.array([[0, 0], [std, 0], [0, -2 * std], [2 * std, 2 * std]])
    s = mode_stats(pts, name)
    assert s["modes_covered"] == 1 and s["high_quality"] == 1.0
    assert s["reverse_kl"] == pytest.approx(math.log(len(modes)))
    assert s["counts"][2] == 4 and s["counts"].sum() == 4


def test_far_points_are_low_quality():
    # Far outside, and between two ring modes (0.38 from each, far beyond 3 std = 0.03).
    pts = np.array([[100.0, 100.0], [0.0, 0.0], [math.cos(math.pi / 8), math.sin(math.pi / 8)]])
    s = mode_stats(pts, "ring")
    assert s["high_quality"] == 0.0 and s["modes_covered"] == 0
    assert math.isnan(s["reverse_kl"])
    assert s["counts"].sum() == 0


def test_three_std_boundary_and_partial_quality():
    std = GRID.std
    pts = np.array([[2 + 2.9 * std, 0], [2 + 3.1 * std, 0], [0, 0], [-4, 4]])
    s = mode_stats(pts, "grid")
    assert s["high_quality"] == 0.75 and s["modes_covered"] == 3


def test_uneven_histogram_kl():
    modes = RING.modes
    pts = np.concatenate([np.repeat(modes[:1], 3, axis=0), modes[1:2]])
    p = np.array([0.75, 0.25])
    assert mode_stats(pts, "ring")["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(p * 8))))


def test_empty_and_unknown():
    s = mode_stats(np.zeros((0, 2)), "grid")
    assert s["high_quality"] == 0.0 and s["modes_covered"] == 0
    with pytest.raises(ValueError, match="unknown mixture"):
        sample_mixture("spiral", 3, np.random.default_rng())
    with pytest.raises(ValueError, match="unknown mixture"):
        mode_stats(np.zeros((1, 2)), "spiral")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 24), min_size=1, max_size=60))
def test_kl_bounds(which):
    s = mode_stats(GRID.modes[which], "grid")
    assert s["modes_covered"] == len(set(which))
    assert -1e-12 <= s["reverse_kl"] <= math.log(25) + 1e-12
    assert s["counts"].sum() == len(which)

"""Counter-based random numbers: a function of (key, index), with the right distributions."""
import numpy as np
import pytest

from minigan.runtime import devices, randomness


def test_keys_differ_by_every_part_and_are_stable():
    assert randomness.key(0, 1, 2) != randomness.key(0, 1, 3) != randomness.key(1, 1, 2)
    assert randomness.key(0, 1, 2) == randomness.key(0, 1, 2)
    assert 0 <= randomness.key(-5, 2**70) < 2**64


def test_normal_draws_are_standard_normal_and_depend_on_key_and_index_alone():
    dev = devices.device("cpu", "reference")
    z = randomness.normal(dev, (200_000,), randomness.key(3, 1, 7), np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs((z > 1.96).mean() - 0.025) < 0.002  # the tail, not only the moments
    head = randomness.normal(dev, (1000,), randomness.key(3, 1, 7), np.float64)
    np.testing.assert_array_equal(head, z[:1000])  # element i does not depend on the size drawn
    other = randomness.normal(dev, (1000,), randomness.key(3, 1, 8), np.float64)
    assert abs(np.corrcoef(head, other)[0, 1]) < 0.1
    assert randomness.normal(dev, (4, 5), 11, np.float32).dtype == np.float32


@pytest.mark.parametrize("high", [1, 2, 10, 1000])
def test_integers_are_uniform_in_range(high):
    dev = devices.device("cpu", "reference")
    y = randomness.integers(dev, (100_000,), randomness.key(0, 2, 5), high)
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() < high
    counts = np.bincount(y, minlength=high)
    if high <= 10:
        assert counts.min() > 0.9 * len(y) / high

"""Losses: values against their definitions, gradients against central differences, stability."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minigan import losses
from minigan.gradcheck import check_loss

TOL = 1e-6
finite = st.floats(-6, 6, allow_nan=False, allow_infinity=False)


def _away(z, gap=1e-3, at=0.0):
    """Move values off a kink at ``at`` (hinge) so central differences are valid."""
    d = z - at
    return np.where(np.abs(d) < gap, at + np.where(d >= 0, gap, -gap), z)


@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.just(1)), elements=finite),
       st.integers(0, 2**16))
def test_bce_with_logits(z, seed):
    t = np.random.default_rng(seed).integers(0, 2, z.shape).astype(np.float64)
    value, _ = losses.bce_with_logits(z, t)
    p = 1 / (1 + np.exp(-z))
    assert value == pytest.approx(-(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(), rel=1e-9, abs=1e-12)
    check_loss(losses.bce_with_logits, z, t).assert_ok(TOL)


@pytest.mark.parametrize("z,t,want", [(1e4, 0.0, 1e4), (-1e4, 1.0, 1e4), (1e4, 1.0, 0.0), (-1e4, 0.0, 0.0)])
def test_bce_with_logits_is_stable_at_extreme_logits(z, t, want):
    for dtype in (np.float32, np.float64):
        value, grad = losses.bce_with_logits(np.array([[z]], dtype), t)
        assert np.isfinite(value) and value == pytest.approx(want, abs=1e-6)
        assert np.isfinite(grad).all() and grad[0, 0] == pytest.approx((z > 0) - t)


@given(arrays(np.float64, st.integers(1, 8), elements=st.floats(0.02, 0.98)), st.floats(0, 1))
def test_bce_on_probabilities(p, t):
    check_loss(losses.bce, p, t).assert_ok(TOL)


@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 3)), elements=finite))
def test_gan_losses(z):
    check_loss(losses.generator_nonsaturating, z).assert_ok(TOL)
    check_loss(losses.mse, z, 1.0).assert_ok(TOL)
    check_loss(losses.mse, z, 0.0).assert_ok(TOL)
    check_loss(losses.hinge, _away(z, at=1.0), +1).assert_ok(TOL)
    check_loss(losses.hinge, _away(z, at=-1.0), -1).assert_ok(TOL)
    check_loss(losses.mean_negated, z).assert_ok(TOL)


def test_gan_loss_values():
    z = np.array([[2.0], [-0.5], [0.3]])
    assert losses.hinge(z, +1)[0] == pytest.approx(np.mean([0, 1.5, 0.7]))
    assert losses.hinge(z, -1)[0] == pytest.approx(np.mean([3.0, 0.5, 1.3]))
    assert losses.mse(z, 1.0)[0] == pytest.approx(np.mean((z - 1) ** 2))
    assert losses.generator_nonsaturating(z)[0] == pytest.approx(np.mean(np.log1p(np.exp(-z))))
    gl = losses.GANLoss("lsgan")
    assert gl.d_real(z)[0] == losses.mse(z, 1.0)[0] and gl.g(z)[0] == losses.mse(z, 1.0)[0]
    with pytest.raises(ValueError, match="unknown GAN loss"):
        losses.GANLoss("wasserstein")


@given(st.integers(1, 6), st.integers(2, 5), st.integers(0, 2**16))
def test_softmax_cross_entropy(n, k, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k)) * 3
    y = rng.integers(0, k, n)
    value, _ = losses.softmax_cross_entropy(z, y)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    assert value == pytest.approx(-logp[np.arange(n), y].mean(), rel=1e-10)
    check_loss(losses.softmax_cross_entropy, z, y).assert_ok(TOL)
    onehot = np.eye(k)[y]
    assert losses.softmax_cross_entropy(z, onehot)[0] == pytest.approx(value)
    big = losses.softmax_cross_entropy(z * 1e4, y)
    assert np.isfinite(big[0]) and np.isfinite(big[1]).all()


@pytest.mark.parametrize("name", ["bce", "lsgan", "hinge"])
def test_gan_losses_on_every_device(device, name):
    """Values and gradients on the device agree with the CPU's; the value stays a 0-d device value."""
    from minigan.runtime import devices

    z = np.random.default_rng(4).standard_normal((6, 1)).astype(np.float32) * 3
    L, dev = losses.GANLoss(name), devices.device(device)
    for part in (L.d_real, L.d_fake, L.g):
        v_cpu, g_cpu = part(z)
        v, g = part(dev.asarray(z))
        assert devices.device_of(v) is dev and getattr(v, "ndim", 0) == 0
        assert float(v) == pytest.approx(float(v_cpu), rel=1e-6)
        np.testing.assert_allclose(devices.to_numpy(g), g_cpu, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("target", [2, -0.5, float("nan"), np.array([[0.0], [2.0]]), [[1.0], [-1.0]]])
def test_a_cross_entropy_target_outside_0_1_is_refused(target):
    z = np.zeros((2, 1))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        losses.bce_with_logits(z, target)
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        losses.bce(z + 0.5, target)


def test_hinge_refuses_a_sign_other_than_plus_or_minus_one():
    with pytest.raises(ValueError, match="sign"):
        losses.hinge(np.zeros((2, 1)), 0)

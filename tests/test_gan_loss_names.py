"""``GANLoss(name)``: every name's three parts against the formulas of the table in
minigan/losses.py, values and gradients, on every device.

The formulas are written here from scratch in float64 NumPy (softplus, squares,
hinges), not with minigan's own losses, so a part wired to another loss (the
saturating generator loss for ``"bce"``, a swapped real and fake, a wrong
target) fails by name.
"""
import numpy as np
import pytest

from minigan import losses
from minigan.gradcheck import check_loss
from minigan.runtime import devices


def softplus(z):
    return np.logaddexp(0.0, z)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# name -> part -> (value(z), dvalue/dz(z)), each a mean over the n elements of z
FORMULAS = {
    "bce": {
        "d_real": (lambda z: softplus(-z).mean(), lambda z: (sigmoid(z) - 1) / z.size),  # -log D(x)
        "d_fake": (lambda z: softplus(z).mean(), lambda z: sigmoid(z) / z.size),  # -log(1 - D(G(z)))
        "g": (lambda z: softplus(-z).mean(), lambda z: (sigmoid(z) - 1) / z.size),  # -log D(G(z))
    },
    "lsgan": {
        "d_real": (lambda z: ((z - 1) ** 2).mean(), lambda z: 2 * (z - 1) / z.size),
        "d_fake": (lambda z: (z ** 2).mean(), lambda z: 2 * z / z.size),
        "g": (lambda z: ((z - 1) ** 2).mean(), lambda z: 2 * (z - 1) / z.size),
    },
    "hinge": {
        "d_real": (lambda z: np.maximum(0, 1 - z).mean(), lambda z: -(1 - z > 0).astype(float) / z.size),
        "d_fake": (lambda z: np.maximum(0, 1 + z).mean(), lambda z: (1 + z > 0) / z.size),
        "g": (lambda z: -z.mean(), lambda z: np.full_like(z, -1 / z.size)),
    },
}


def test_every_name_has_its_formulas_here():
    assert set(losses.GANLoss.NAMES) == set(FORMULAS)


def _logits(seed, shape=(7, 1)):
    """D's outputs on both sides of 0 and of +-1 (the hinges), none within 0.05 of a kink."""
    z = np.random.default_rng(seed).uniform(-3, 3, shape)
    for kink in (-1.0, 0.0, 1.0):
        near = np.abs(z - kink) < 0.05
        z[near] = kink + 0.1
    return z


@pytest.mark.parametrize("name", sorted(FORMULAS))
@pytest.mark.parametrize("part", ["d_real", "d_fake", "g"])
def test_gan_loss_parts_follow_their_formulas(device, name, part):
    value_of, grad_of = FORMULAS[name][part]
    fn = getattr(losses.GANLoss(name), part)
    dev = devices.device(device)
    for seed, shape in ((0, (7, 1)), (1, (4, 3))):
        z = _logits(seed, shape)
        value, grad = fn(dev.asarray(z))
        assert float(value) == pytest.approx(value_of(z), rel=1e-12, abs=1e-14), (name, part)
        np.testing.assert_allclose(devices.to_numpy(grad), grad_of(z), rtol=1e-12, atol=1e-15,
                                   err_msg=f"{name}.{part}")


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_gan_loss_parts_pass_the_gradient_check(name):
    L = losses.GANLoss(name)
    for part in ("d_real", "d_fake", "g"):
        check_loss(getattr(L, part), _logits(2, (6, 1)), label=f"{name}.{part}").assert_ok(1e-6)


def test_generator_bce_is_the_non_saturating_loss():
    """At a confident discriminator (D(G(z)) near 0) the generator's BCE gradient stays near
    -1/n, where the saturating loss log(1 - D(G(z))) would give almost nothing."""
    z = np.full((4, 1), -12.0)
    value, grad = losses.GANLoss("bce").g(z)
    assert float(value) == pytest.approx(12.0, rel=1e-4)
    np.testing.assert_allclose(grad, -0.25, rtol=1e-4)

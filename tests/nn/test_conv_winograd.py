"""The Winograd engine (minigan/nn/conv/winograd.py): its transforms, its tiles, and its
float32 error on the lean pair's layers.

Every layer check of the other conv tests (gradients, adjoint identity, accumulation,
frozen layers) also runs on it through the ``engine`` fixture; here are the parts
of the engine itself.
"""
import numpy as np
import pytest
from helpers import direct_conv2d

from minigan import nn
from minigan.nn.conv import winograd
from minigan.nn.conv.geometry import ConvGeom


@pytest.mark.parametrize("m,r", [(m, r) for r in (1, 2, 3, 4) for m in range(1, 8)
                                 if m + r - 1 <= winograd.MAX_ALPHA])
def test_toom_cook_computes_the_correlation(m, r):
    """``A^T [(G g) * (B^T d)] = (sum_k g_k d_{i+k})_i`` for random tiles, in float64."""
    AT, G, BT = winograd.toom_cook(m, r)
    rng = np.random.default_rng(m * 10 + r)
    d, g = rng.standard_normal(m + r - 1), rng.standard_normal(r)
    want = np.array([g @ d[i:i + r] for i in range(m)])
    np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("out,r,m", [(7, 2, 7), (14, 2, 7), (4, 2, 4), (1, 2, 1), (5, 3, 5), (12, 4, 4)])
def test_tile_size_takes_the_fewest_products(out, r, m):
    assert winograd.tile_size(out, r) == m
    assert winograd.tile_size(out, r) + r - 1 <= winograd.MAX_ALPHA


def test_the_lean_pair_needs_a_third_of_the_multiplies():
    """D's k4 s2 conv 64 -> 128 on 14 x 14 (and G's transposed conv, its adjoint): one 8 x 8
    tile a sample on 4C phase channels, 64 products for 7 x 7 x 16 direct ones."""
    g = ConvGeom(64, 14, 14, 4, 4, 2, 2, 1, 1, 1, 1)
    assert winograd.multiply_ratio(g) == pytest.approx(4 * 64 / (49 * 16))
    assert winograd.worth_it(g, 128)
    assert not winograd.worth_it(ConvGeom(1, 28, 28, 4, 4, 2, 2, 1, 1, 1, 1), 64)  # D's first conv
    # the DCGAN's k5 s2 layers: 3 x 3 sub-kernels, 4 x 4 tiles (alpha 6), under half the products
    assert winograd.worth_it(ConvGeom(64, 14, 14, 5, 5, 2, 2, 1, 2, 1, 2), 128)
    assert winograd.multiply_ratio(ConvGeom(64, 14, 14, 5, 5, 2, 2, 1, 2, 1, 2)) < 0.5
    assert not winograd.worth_it(ConvGeom(256, 7, 7, 5, 5, 1, 1, 2, 2, 2, 2), 128)  # k5 s1: 5 x 5 taps


def test_the_cpu_policy_puts_the_lean_pair_on_it():
    from minigan.gan.models import conv_discriminator, conv_generator  # noqa: PLC0415

    G, D = conv_generator(), conv_discriminator()
    G.forward(np.zeros((2, 100), np.float32))
    D.forward(np.zeros((2, 1, 28, 28), np.float32))
    engines = [m.last_engine for m in (*G.modules(), *D.modules()) if hasattr(m, "last_engine")]
    assert engines == ["winograd", "im2col", "im2col", "winograd"]


@pytest.mark.parametrize("layer", ["conv", "convT", "DCGAN conv", "DCGAN convT"])
def test_float32_error_on_the_lean_pair_and_dcgan_layers(layer):
    """In float32 the transforms round more than the direct products: against the float64
    reference, the Winograd engine's output and gradients stay within 5e-5 of the largest
    value (measured: 2.3e-5, 1.3e-5 and 3.5e-6 for y, dx and dW of D's conv; the im2col
    engine's: 5e-7; the DCGAN's k5 s2 layers, alpha 6: 8.7e-6 at most)."""
    rng = np.random.default_rng(0)
    make, x_shape = {
        "conv": ((lambda: nn.Conv2D(64, 128, 4, 2, "same")), (8, 64, 14, 14)),
        "convT": ((lambda: nn.Conv2DTranspose(128, 64, 4, 2, "same")), (8, 128, 7, 7)),
        "DCGAN conv": ((lambda: nn.Conv2D(64, 128, 5, 2, "same")), (8, 64, 14, 14)),
        "DCGAN convT": ((lambda: nn.Conv2DTranspose(128, 64, 5, 2, "same")), (8, 128, 7, 7)),
    }[layer]
    ref64, w32 = make().astype(np.float64), make()
    for k in ref64.params:
        ref64.params[k][...] = rng.standard_normal(ref64.params[k].shape) * 0.05
        w32.params[k][...] = ref64.params[k]
    ref64.engine, w32.engine = "reference", "winograd"
    x = rng.standard_normal(x_shape)
    out = {}
    for name, L, dt in (("ref", ref64, np.float64), ("wino", w32, np.float32)):
        y = L.forward(x.astype(dt))
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(dt)
        L.zero_grad()
        dx = L.backward(dy)
        out[name] = [np.asarray(a, np.float64) for a in (y, dx, L.grads["W"])]
    for what, want, got in zip(["y", "dx", "dW"], out["ref"], out["wino"]):
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < 5e-5, f"{what}: relative error {err:.2e}"


def test_a_strided_conv_by_its_definition():
    """Odd sizes, asymmetric 'same' padding, a kernel that is not a multiple of the stride."""
    rng = np.random.default_rng(3)
    L = nn.Conv2D(3, 5, (3, 4), (2, 3), "same").astype(np.float64)
    L.engine = "winograd"
    x = rng.standard_normal((2, 3, 11, 13))
    g = L.geometry(11, 13)
    want = direct_conv2d(x, L.params["W"], L.params["b"], (2, 3), (g.pt, g.pb, g.pl, g.pr))
    np.testing.assert_allclose(L.forward(x), want, rtol=1e-10, atol=1e-10)


def test_the_kept_weight_transform_follows_the_weights():
    """U is transformed again after any change of W (an optimizer step, an in-place edit) and
    only then: the same W twice is one transform."""
    rng = np.random.default_rng(3)
    conv = nn.Conv2D(8, 16, 4, 2, "same")
    conv.engine = "winograd"
    x = rng.standard_normal((2, 8, 6, 6)).astype(np.float32)
    eng = conv._engine_for(conv.geometry(6, 6), 2)
    made = []
    transform = eng._transform_weights
    eng._transform_weights = lambda W, g: made.append(1) or transform(W, g)
    y0 = conv.forward(x).copy()
    np.testing.assert_array_equal(conv.forward(x), y0)
    assert len(made) == 1
    conv.params["W"][0, 0, 0, 0] += 1.0
    y1 = conv.forward(x)
    assert len(made) == 2
    fresh = nn.Conv2D(8, 16, 4, 2, "same")
    fresh.engine = "winograd"
    fresh.params["W"][...] = conv.params["W"]
    fresh.params["b"][...] = conv.params["b"]
    np.testing.assert_array_equal(y1, fresh.forward(x))
    assert not np.array_equal(y1, y0)

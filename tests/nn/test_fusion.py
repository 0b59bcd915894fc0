"""A layer that absorbs the (leaky) ReLU after it, or the LabelJoin before it, in a
Sequential computes what the layers compute one after the other: the output, dL/dx, every
gradient, on every path (backward, backward_weights, a frozen layer), where the CPU's table
fuses them."""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigan import nn

ACTIVATIONS = {"LeakyReLU(0.2)": lambda: nn.LeakyReLU(0.2), "LeakyReLU(0)": lambda: nn.LeakyReLU(0.0),
               "LeakyReLU(1)": lambda: nn.LeakyReLU(1.0), "ReLU": nn.ReLU}

PRODUCERS = {  # a layer that can absorb, and its input's shape for a batch of n
    "Dense": (lambda: nn.Dense(5, 7), lambda n: (n, 5)),
    "Dense, no bias": (lambda: nn.Dense(5, 7, bias=False), lambda n: (n, 5)),
    "Conv2D": (lambda: nn.Conv2D(3, 4, 3, 2, "same"), lambda n: (n, 3, 7, 6)),
    "Conv2D k4 s2, Winograd": (lambda: nn.Conv2D(64, 64, 4, 2, "same"), lambda n: (n, 64, 6, 6)),
    "Conv2DTranspose, no bias": (lambda: nn.Conv2DTranspose(4, 3, 4, 2, "same", bias=False),
                                 lambda n: (n, 4, 3, 5)),
    "BatchNorm (N, C)": (lambda: nn.BatchNorm(6), lambda n: (n, 6)),
    "BatchNorm (N, C, H, W)": (lambda: nn.BatchNorm(3), lambda n: (n, 3, 4, 5)),
}


def _one_by_one(model, x, dy, weights_only):
    """Forward and backward through ``model``'s layers called one at a time (nothing fused)."""
    h = x
    for layer in model.layers:
        h = layer.forward(h)
    d = dy
    for layer in reversed(model.layers[1:]):
        d = layer.backward(d)
    if weights_only:
        model.layers[0].backward_weights(d)
        return h, None
    return h, model.layers[0].backward(d)


@pytest.mark.parametrize("producer", sorted(PRODUCERS))
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@settings(max_examples=4, deadline=None)
@given(n=st.integers(2, 4), path=st.sampled_from(["backward", "backward_weights", "frozen", "eval"]),
       seed=st.integers(0, 2**16))
def test_absorbed_relu_gives_what_the_two_layers_give(producer, act, n, path, seed):
    make, shape = PRODUCERS[producer]
    rng = np.random.default_rng(seed)
    fused = nn.Sequential(make(), ACTIVATIONS[act](), nn.Flatten())
    apart = copy.deepcopy(fused)
    for model in (fused, apart):
        if path == "eval":
            model.eval()
        if path == "frozen":
            model.layers[0].trainable = False
    x = rng.standard_normal(shape(n)).astype(np.float32)
    assert fused.steps()[0] == (fused.layers[0], fused.layers[1], None)  # the CPU's table fuses these
    y = fused.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    weights_only = path == "backward_weights"
    dx = fused.backward_weights(dy) if weights_only else fused.backward(dy)
    y_apart, dx_apart = _one_by_one(apart, x, dy, weights_only)
    np.testing.assert_array_equal(y, y_apart)
    if dx_apart is not None:
        np.testing.assert_allclose(dx, dx_apart, rtol=1e-6, atol=1e-6)
    for name in fused.layers[0].grads:
        np.testing.assert_allclose(fused.layers[0].grads[name], apart.layers[0].grads[name],
                                   rtol=1e-6, atol=1e-6, err_msg=name)


def test_what_is_absorbed_and_where():
    """A (leaky) ReLU of slope >= 0 after a layer that can take it, on the CPU's table;
    never a negative slope, another activation, or on the reference code."""
    model = nn.Sequential(nn.Dense(3, 4), nn.LeakyReLU(0.2), nn.Dense(4, 4), nn.LeakyReLU(-0.5),
                          nn.Dense(4, 4), nn.Tanh(), nn.BatchNorm(4), nn.ReLU(), nn.ReLU())
    kinds = [(type(layer).__name__, type(act).__name__ if act else None) for layer, act, _ in model.steps()]
    assert kinds == [("Dense", "LeakyReLU"), ("Dense", None), ("LeakyReLU", None), ("Dense", None),
                     ("Tanh", None), ("BatchNorm", "ReLU"), ("ReLU", None)]
    model.to("cpu", kernels="reference")
    assert all(step.activation is None for step in model.steps())


def test_a_chain_with_absorbed_relus_trains_as_the_reference_code_does():
    """The lean conv pair's shapes, a step's forward and backward on the CPU's table (fused) and
    on the reference code (nothing fused): the same numbers to float32 rounding."""
    rng = np.random.default_rng(0)
    d = nn.Sequential(nn.Conv2D(1, 8, 4, 2, "same"), nn.LeakyReLU(0.2), nn.Conv2D(8, 16, 4, 2, "same"),
                      nn.LeakyReLU(0.2), nn.Flatten(), nn.Dense(16 * 7 * 7, 1))
    g = nn.Sequential(nn.Dense(10, 8 * 7 * 7, bias=False), nn.BatchNorm(8 * 7 * 7), nn.LeakyReLU(0.2),
                      nn.Reshape((8, 7, 7)), nn.Conv2DTranspose(8, 4, 4, 2, "same", bias=False),
                      nn.BatchNorm(4), nn.LeakyReLU(0.2), nn.Conv2DTranspose(4, 1, 4, 2, "same"), nn.Tanh())
    ref_g, ref_d = copy.deepcopy(g).to("cpu", kernels="reference"), copy.deepcopy(d).to("cpu", kernels="reference")
    assert sum(step.activation is not None for step in g.steps() + d.steps()) == 4
    z = rng.standard_normal((3, 10)).astype(np.float32)
    outs = []
    for gen, disc in ((g, d), (ref_g, ref_d)):
        logits = disc.forward(gen.forward(z))
        dimg = disc.backward(np.ones_like(logits))
        gen.backward(dimg)
        outs.append((logits, dimg, [p.copy() for m in (gen, disc) for layer in m.modules()
                                    for p in layer.grads.values()]))
    (l0, d0, g0), (l1, d1, g1) = outs
    np.testing.assert_allclose(l0, l1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d0, d1, rtol=1e-4, atol=1e-5)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def _join_then(n, K, geometry, bias, act, data):
    """``LabelJoin(K)`` then a Dense or Conv2D (``geometry`` (C, kernel, stride, padding, H, W),
    None for a Dense of 5 data features), maybe a LeakyReLU, a Flatten; and an input of n."""
    if geometry is None:
        layer, shape = nn.Dense(5 + K, 7, bias=bias), (n, 5)
    else:
        C, k, s, p, H, W = geometry
        layer, shape = nn.Conv2D(C + K, 3, k, s, p, bias=bias), (n, C, H, W)
    rest = [nn.LeakyReLU(0.2)] if act else []
    return nn.Sequential(nn.LabelJoin(K), layer, *rest, nn.Flatten()), shape


_geometries = st.one_of(
    st.none(),
    st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 2),
              st.sampled_from(["same", "valid", 0, 1, 2, (1, 0)]), st.integers(5, 9), st.integers(5, 9)))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5), K=st.integers(2, 4), geometry=_geometries, bias=st.booleans(), act=st.booleans(),
       path=st.sampled_from(["backward", "backward_weights", "frozen", "eval"]), seed=st.integers(0, 2**16))
def test_absorbed_label_join_gives_what_the_two_layers_give(n, K, geometry, bias, act, path, seed):
    """Dense and Conv2D after a LabelJoin: the label planes' share a lookup in the layer's
    table of K maps, their weight gradient from per-label sums of dy, and dL/dx the data's
    channels only; the same numbers as the join's output through the whole layer."""
    rng = np.random.default_rng(seed)
    fused, shape = _join_then(n, K, geometry, bias, act, None)
    apart = copy.deepcopy(fused)
    labels = rng.integers(0, K, n)
    for model in (fused, apart):
        nn.set_labels(model, labels)
        if path == "eval":
            model.eval()
        if path == "frozen":
            model.layers[1].trainable = False
    for p in fused.layers[1].params.values():  # a bias that is not zero
        p[...] = rng.standard_normal(p.shape)
    for name, p in apart.layers[1].params.items():
        p[...] = fused.layers[1].params[name]
    step = fused.steps()[0]
    assert step.join is fused.layers[0] and step.layer is fused.layers[1]
    x = rng.standard_normal(shape).astype(np.float32)
    y = fused.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    weights_only = path == "backward_weights"
    dx = fused.backward_weights(dy) if weights_only else fused.backward(dy)
    y_apart, dx_apart = _one_by_one(apart, x, dy, weights_only)
    np.testing.assert_allclose(y, y_apart, rtol=1e-5, atol=1e-5)
    if dx_apart is not None:
        assert dx.shape == x.shape
        np.testing.assert_allclose(dx, dx_apart, rtol=1e-5, atol=1e-5)
    for name in fused.layers[1].grads:
        np.testing.assert_allclose(fused.layers[1].grads[name], apart.layers[1].grads[name],
                                   rtol=1e-4, atol=1e-4, err_msg=name)


def test_which_joins_are_absorbed():
    """A LabelJoin before a Dense or a Conv2D that leaves a data channel, on the CPU's table;
    not before a transposed conv or another LabelJoin, not without a data channel, not on the
    reference code; and the conditional conv D's first conv."""
    from minigan.gan.models import build

    def joined(model):
        return [(type(step.layer).__name__, step.join is not None) for step in model.steps()]

    assert joined(nn.Sequential(nn.LabelJoin(3), nn.Dense(5, 2))) == [("Dense", True)]
    assert joined(nn.Sequential(nn.LabelJoin(3), nn.Conv2D(4, 2, 3), nn.LabelJoin(3),
                                nn.Conv2DTranspose(5, 1, 3))) == [
        ("Conv2D", True), ("LabelJoin", False), ("Conv2DTranspose", False)]
    assert joined(nn.Sequential(nn.LabelJoin(3), nn.Dense(3, 2))) == [("LabelJoin", False), ("Dense", False)]
    assert joined(nn.Sequential(nn.LabelJoin(3), nn.Dense(5, 2)).to("cpu", kernels="reference")) == [
        ("LabelJoin", False), ("Dense", False)]
    G, D = build("conv", conditional=True)
    assert D.steps()[0].join is D.layers[0] and D.steps()[0].activation is D.layers[2]
    assert G.steps()[0].join is G.layers[0]


def test_an_absorbed_join_says_what_input_it_takes():
    model = nn.Sequential(nn.LabelJoin(10), nn.Conv2D(11, 4, 3))
    nn.set_labels(model, np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model.forward(np.zeros((2, 11, 6, 6), np.float32))
    with pytest.raises(ValueError, match="labels"):
        nn.set_labels(model, np.zeros(3, dtype=np.int64)).forward(np.zeros((2, 1, 6, 6), np.float32))

"""Every layer's backward against central differences in float64, over random configurations."""
import numpy as np
import pytest
from helpers import on, use_engine
from hypothesis import given
from hypothesis import strategies as st

from minigan import nn
from minigan.gradcheck import check_layer

TOL = 1e-6


def _x(seed, shape, gap=0.0):
    a = np.random.default_rng(seed).standard_normal(shape)
    return a + np.sign(a) * gap  # a gap keeps values off the kinks of ReLU-like layers


@st.composite
def conv_cases(draw):
    """A Conv2D configuration and an input size that fits it."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 2),
                             st.tuples(st.integers(0, 2), st.integers(0, 2))))
    p = (0, 0) if isinstance(padding, str) else (padding if isinstance(padding, tuple) else (padding,) * 2)
    lo_h = 1 if padding == "same" else max(1, kh - 2 * p[0])
    lo_w = 1 if padding == "same" else max(1, kw - 2 * p[1])
    H, W = draw(st.integers(lo_h, lo_h + 6)), draw(st.integers(lo_w, lo_w + 6))
    return dict(N=draw(st.integers(1, 3)), C=draw(st.integers(1, 3)), O=draw(st.integers(1, 3)),
                k=(kh, kw), s=(sh, sw), padding=padding, H=H, W=W, bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


@st.composite
def convT_cases(draw):
    """A Conv2DTranspose configuration (output_padding < stride) and an input size."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 2)))
    op = (0, 0) if padding == "same" else (draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1)))
    H, W = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if isinstance(padding, int):
        # keep at least one output pixel: (H-1)s - 2p + k + op >= 1
        H = max(H, 1 + max(0, -(-(2 * padding + 1 - kh - op[0]) // sh)))
        W = max(W, 1 + max(0, -(-(2 * padding + 1 - kw - op[1]) // sw)))
    return dict(N=draw(st.integers(1, 3)), C=draw(st.integers(1, 3)), O=draw(st.integers(1, 3)),
                k=(kh, kw), s=(sh, sw), padding=padding, op=op, H=H, W=W,
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.booleans(), st.integers(0, 2**16))
def test_dense(device, n, fin, fout, bias, seed):
    layer = nn.Dense(fin, fout, bias=bias).to(device)
    check_layer(layer, on(device, _x(seed, (n, fin))), seed=seed).assert_ok(TOL)


@given(conv_cases())
def test_conv2d(device, engine, c):
    layer = nn.Conv2D(c["C"], c["O"], c["k"], c["s"], c["padding"], bias=c["bias"]).to(device)
    use_engine(layer, engine)
    x = on(device, _x(c["seed"], (c["N"], c["C"], c["H"], c["W"])))
    check_layer(layer, x, seed=c["seed"]).assert_ok(TOL)


@given(convT_cases())
def test_conv2d_transpose(device, engine, c):
    layer = nn.Conv2DTranspose(c["C"], c["O"], c["k"], c["s"], c["padding"], c["op"],
                               bias=c["bias"]).to(device)
    use_engine(layer, engine)
    x = on(device, _x(c["seed"], (c["N"], c["C"], c["H"], c["W"])))
    check_layer(layer, x, seed=c["seed"]).assert_ok(TOL)


@pytest.mark.parametrize("k,s", [(5, 2), (4, 2), (3, 2), (1, 2), (2, 3), (1, 1)])
def test_same_padding_stride2_both_directions(device, k, s):
    """The DCGAN configurations: 'same' with stride 2, including a kernel smaller than the stride."""
    conv = nn.Conv2D(2, 3, k, s, "same").to(device)
    check_layer(conv, on(device, _x(0, (2, 2, 7, 6)))).assert_ok(TOL)
    convT = nn.Conv2DTranspose(3, 2, k, s, "same").to(device)
    check_layer(convT, on(device, _x(1, (2, 3, 4, 3)))).assert_ok(TOL)


@given(st.integers(2, 6), st.integers(1, 4), st.sampled_from([2, 4]), st.integers(0, 2**16))
def test_batchnorm_train_after_dense(device, n, c, rank, seed):
    """BN in training mode behind a layer and under a random (non-constant) upstream gradient."""
    extra = () if rank == 2 else (3, 2)
    pre = nn.Dense(3, c) if rank == 2 else nn.Conv2D(3, c, 3, 1, 1)
    model = nn.Sequential(pre, nn.BatchNorm(c)).to(device)
    model.layers[1].params["gamma"][...] = on(device, 1 + _x(seed + 1, (c,)) * 0.3, dtype=np.float32)
    model.layers[1].params["beta"][...] = on(device, _x(seed + 2, (c,)), dtype=np.float32)
    x = on(device, _x(seed, (n, 3) + extra))
    check_layer(model, x, seed=seed).assert_ok(TOL)


@given(st.integers(2, 6), st.integers(1, 4), st.sampled_from([2, 4]), st.integers(0, 2**16))
def test_batchnorm_reference_code_train_after_dense(n, c, rank, seed):
    """The same check on the reference code alone (the CPU without its kernel table): the
    math BatchNorm's file states, which the kernel tables' twins are checked against."""
    extra = () if rank == 2 else (3, 2)
    pre = nn.Dense(3, c) if rank == 2 else nn.Conv2D(3, c, 3, 1, 1)
    model = nn.Sequential(pre, nn.BatchNorm(c)).to("cpu", kernels="reference")
    model.layers[1].params["gamma"][...] = 1 + _x(seed + 1, (c,)) * 0.3
    model.layers[1].params["beta"][...] = _x(seed + 2, (c,))
    check_layer(model, _x(seed, (n, 3) + extra), seed=seed).assert_ok(TOL)


@given(st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**16))
def test_batchnorm_eval(device, n, c, seed):
    bn = nn.BatchNorm(c).to(device)
    bn.forward(on(device, _x(seed, (8, c)) * 2 + 1, dtype=np.float32))  # non-trivial running stats
    check_layer(bn.eval(), on(device, _x(seed + 1, (n, c))), seed=seed).assert_ok(TOL)


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.LeakyReLU(0.2), nn.LeakyReLU(0.3), nn.Tanh(),
                                   nn.Sigmoid(), nn.Dropout(0.3), nn.Dropout(0.0), nn.Flatten()],
                         ids=repr)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), seed=st.integers(0, 2**16))
def test_elementwise_and_shape_layers(device, layer, shape, seed):
    check_layer(layer.to(device), on(device, _x(seed, tuple(shape), gap=0.01)), seed=seed).assert_ok(TOL)


@pytest.mark.parametrize("layer", [nn.LeakyReLU(0.3), nn.Dropout(0.3)], ids=repr)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), seed=st.integers(0, 2**16))
def test_elementwise_reference_code(layer, shape, seed):
    """The layers with kernel twins, on their reference code alone (the CPU without its table)."""
    check_layer(layer.to("cpu", kernels="reference"), _x(seed, tuple(shape), gap=0.01), seed=seed).assert_ok(TOL)


@given(st.integers(1, 4), st.integers(0, 2**16))
def test_reshape(device, n, seed):
    model = nn.Sequential(nn.Dense(4, 12), nn.Reshape((3, 2, 2)), nn.Conv2D(3, 2, 2)).to(device)
    check_layer(model, on(device, _x(seed, (n, 4))), seed=seed).assert_ok(TOL)


def test_dcgan_generator_block(device):
    """A whole generator-shaped stack in training mode, checked along random directions."""
    g = nn.Sequential(nn.Dense(4, 2 * 3 * 3, bias=False), nn.BatchNorm(18), nn.LeakyReLU(0.3),
                      nn.Reshape((2, 3, 3)), nn.Conv2DTranspose(2, 3, 5, 2, "same", bias=False),
                      nn.BatchNorm(3), nn.LeakyReLU(0.3), nn.Conv2DTranspose(3, 1, 5, 2, "same"),
                      nn.Tanh()).to(device)
    check_layer(g, on(device, _x(0, (4, 4))), max_elements=60, directions=8).assert_ok(TOL)


def test_gradients_accumulate_until_zero_grad(device):
    layer = nn.Conv2D(2, 3, 3, 2, "same").astype(np.float64).to(device)
    x1, x2 = on(device, _x(0, (2, 2, 5, 5)), _x(1, (2, 2, 5, 5)))
    dy1, dy2 = on(device, _x(2, (2, 3, 3, 3)), _x(3, (2, 3, 3, 3)))
    grads = []
    for x, dy in ((x1, dy1), (x2, dy2)):
        layer.zero_grad()
        layer.forward(x)
        layer.backward(dy)
        grads.append({k: v.copy() for k, v in layer.grads.items()})
    layer.zero_grad()
    for x, dy in ((x1, dy1), (x2, dy2)):
        layer.forward(x)
        layer.backward(dy)
    for k in layer.grads:
        np.testing.assert_allclose(np.asarray(layer.grads[k].tolist()),
                                   np.asarray((grads[0][k] + grads[1][k]).tolist()), rtol=1e-12)
    layer.zero_grad()
    assert all(float(abs(g).max()) == 0 for g in layer.grads.values())


@pytest.mark.parametrize("make", [lambda: nn.Dense(4, 3), lambda: nn.Conv2D(1, 2, 3, 1, 1),
                                  lambda: nn.Conv2DTranspose(1, 2, 3, 2, 1, 1),
                                  lambda: nn.BatchNorm(1),
                                  lambda: nn.SpectralNorm(nn.Conv2D(1, 2, 3, 1, 1)).eval()])
def test_frozen_layer_returns_dx_and_skips_weight_grads(device, make):
    layer = make().astype(np.float64).to(device)
    shape = (3, 4) if isinstance(layer, nn.Dense) else (3, 1, 4, 4)
    x = on(device, _x(0, shape))
    y = layer.forward(x)
    dy = on(device, _x(1, y.shape))
    dx_live = layer.backward(dy)
    layer.zero_grad()
    layer.trainable = False
    layer.forward(x)
    dx_frozen = layer.backward(dy)
    assert np.array_equal(np.asarray(dx_live.tolist()), np.asarray(dx_frozen.tolist()))
    assert all(float(abs(g).max()) == 0 for g in layer.grads.values())


def test_trainable_and_training_propagate_through_sequential():
    model = nn.Sequential(nn.Dense(2, 2), nn.Sequential(nn.Dropout(0.5), nn.BatchNorm(2)))
    model.trainable = False
    model.eval()
    assert all(not m.trainable and not m.training for m in model.modules())
    model.trainable = True
    model.train()
    assert all(m.trainable and m.training for m in model.modules())


def _case_ids():
    from minigan.gradcheck import standard_cases

    return [c[0] for c in standard_cases() if c[1] == "layer"]


@pytest.mark.parametrize("label", _case_ids())
def test_backward_weights_adds_what_backward_adds(label):
    """``backward_weights`` (no dL/dx) leaves the same parameter gradients as ``backward``."""
    from minigan.gradcheck import standard_cases

    layer, x = next((c[2], c[3]) for c in standard_cases() if c[0] == label)
    layer = layer.astype(np.float64)
    y = layer.forward(x)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    layer.zero_grad()
    layer.backward(dy)
    full = {n: lay.grads[k].copy() for n, lay, k in layer.named_parameters()}
    layer.zero_grad()
    assert layer.backward_weights(dy) is None
    for n, lay, k in layer.named_parameters():
        np.testing.assert_allclose(lay.grads[k], full[n], rtol=1e-12, atol=1e-12, err_msg=n)


def test_backward_weights_of_a_frozen_chain_adds_nothing():
    d = nn.Sequential(nn.LabelJoin(3), nn.Conv2D(4, 2, 3, 2, "same"), nn.LeakyReLU(0.2), nn.Flatten(),
                      nn.Dense(2 * 3 * 3, 1)).astype(np.float64)
    nn.set_labels(d, np.array([0, 2]))
    out = d.forward(_x(0, (2, 1, 5, 5)))
    d.trainable = False
    d.zero_grad()
    d.backward_weights(np.ones_like(out))
    assert all(not lay.grads[k].any() for _, lay, k in d.named_parameters())

"""SpectralNorm: the normalised weight, its gradient with the power iteration held, the
buffer ``u`` (updated in training mode only, saved and restored), the optimizer's flat
buffer, frozen layers, and PyTorch's spectral_norm where PyTorch is installed."""
import copy
import pickle

import numpy as np
import pytest
from helpers import on, use_engine

from minigan import nn, optim
from minigan.gradcheck import check_layer
from minigan.io import load_checkpoint, save_checkpoint
from minigan.runtime import devices

TOL = 1e-6

# (the wrapped layer, an input shape); the convs are strided and padded
LAYERS = {
    "Dense": (lambda: nn.Dense(5, 4), (3, 5)),
    "Dense no bias": (lambda: nn.Dense(3, 6, bias=False), (2, 3)),
    "Conv2D": (lambda: nn.Conv2D(2, 3, 3, 2, 1), (2, 2, 5, 5)),
    "Conv2D same": (lambda: nn.Conv2D(3, 2, (2, 3), 2, "same"), (2, 3, 4, 5)),
    "Conv2DTranspose": (lambda: nn.Conv2DTranspose(3, 2, 3, 2, 1, output_padding=1), (2, 3, 3, 3)),
    "Conv2DTranspose same": (lambda: nn.Conv2DTranspose(2, 3, 4, 2, "same"), (2, 2, 2, 3)),
}


def _x(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


def _make(case, device, engine=None, **kw):
    make, shape = LAYERS[case]
    inner = make()
    if engine is not None and isinstance(inner, (nn.Conv2D, nn.Conv2DTranspose)):
        use_engine(inner, engine)
    return nn.SpectralNorm(inner, **kw).astype(np.float64).to(device), shape


def _np(a):
    return devices.to_numpy(a).copy()


def _top_singular_value(sn, W):
    return np.linalg.svd(_np(sn.matrix(W)), compute_uv=False)[0]


def _separate_singular_values(sn, device):
    """Give the wrapped layer's W singular values 2, 1, 1/2, ... (in its matrix view), so that
    the power iteration converges at a known rate (a random W's top two can lie close)."""
    W = sn.layer.params["W"]
    U, s, Vt = np.linalg.svd(_np(sn.matrix(W)), full_matrices=False)
    s = 2.0 ** -np.arange(len(s))
    W[...] = sn._from_matrix(on(device, (U * s) @ Vt), W.shape)


def _check_held(case, device, engine=None):
    """After a training-mode forward has moved ``u``, the eval-mode layer (``u`` fixed) against
    central differences: dL/dx, dL/dW through W / sigma(W), and the bias."""
    sn, shape = _make(case, device, engine)
    x = on(device, _x(0, shape))
    sn.forward(x)
    check_layer(sn.eval(), x, seed=1).assert_ok(TOL)


@pytest.mark.parametrize("case", [c for c in sorted(LAYERS) if c.startswith("Dense")])
def test_gradients_with_the_power_iteration_held(device, case):
    _check_held(case, device)


@pytest.mark.parametrize("case", [c for c in sorted(LAYERS) if c.startswith("Conv")])
def test_conv_gradients_with_the_power_iteration_held(device, engine, case):
    _check_held(case, device, engine)


def test_gradient_of_a_chain_with_spectral_norm(device):
    """Two normalised layers in a chain (eval mode), with an activation between them."""
    d = nn.Sequential(nn.SpectralNorm(nn.Conv2D(2, 3, 3, 2, "same")), nn.LeakyReLU(0.2), nn.Flatten(),
                      nn.SpectralNorm(nn.Dense(3 * 3 * 3, 2), n_power_iterations=3)).to(device)
    x = on(device, _x(0, (2, 2, 5, 6)), dtype=np.float32)
    d.forward(x)
    check_layer(d.eval(), on(device, _x(1, (2, 2, 5, 6)))).assert_ok(TOL)


@pytest.mark.parametrize("case", ["Dense", "Conv2D", "Conv2DTranspose"])
def test_sigma_is_the_largest_singular_value(device, case):
    """With enough iterations sigma is W's largest singular value, and W / sigma has norm 1."""
    sn, shape = _make(case, device, n_power_iterations=60)
    _separate_singular_values(sn, device)
    W = sn.layer.params["W"]
    y = sn.forward(on(device, _x(0, shape)))
    top = _top_singular_value(sn, W)
    assert abs(float(sn.sigma()) - top) <= 1e-10 * top
    np.testing.assert_allclose(_top_singular_value(sn, sn.normalized_weight()), 1.0, rtol=1e-10)
    # the layer ran with W / sigma: the same as the wrapped layer with that weight put in
    plain = copy.deepcopy(sn.layer)
    plain.params["W"] = W / sn.sigma()
    np.testing.assert_allclose(_np(y), _np(plain.forward(on(device, _x(0, shape)))), rtol=1e-12)


def test_power_iteration_converges_over_steps(device):
    """One iteration a step: sigma approaches the largest singular value step after step."""
    sn, shape = _make("Conv2D", device)
    _separate_singular_values(sn, device)
    x = on(device, _x(0, shape))
    top = _top_singular_value(sn, sn.layer.params["W"])
    errors = []
    for _ in range(30):
        sn.forward(x)
        errors.append(abs(float(sn.sigma()) - top))
    assert errors[-1] <= 1e-8 * top and errors[-1] <= errors[0]


def test_u_moves_in_training_mode_only(device):
    sn, shape = _make("Dense", device)
    x = on(device, _x(0, shape))
    u0 = _np(sn.buffers["u"])
    np.testing.assert_allclose(np.linalg.norm(u0), 1.0, rtol=1e-6)
    sn.eval()
    y_eval = _np(sn.forward(x))
    assert np.array_equal(_np(sn.buffers["u"]), u0)
    np.testing.assert_array_equal(_np(sn.forward(x)), y_eval)  # eval mode: a pure function
    sn.layer.params["W"][...] = on(device, _x(1, (5, 4)))  # a weight u has not seen
    sn.train().forward(x)
    u1 = _np(sn.buffers["u"])
    assert not np.allclose(u1, u0)
    Wm = _np(sn.matrix(sn.layer.params["W"]))
    v = Wm.T @ u0 / np.linalg.norm(Wm.T @ u0)
    np.testing.assert_allclose(u1, Wm @ v / np.linalg.norm(Wm @ v), rtol=1e-12)  # one step of the iteration


def test_u_starts_the_same_every_time():
    """``u`` comes from a fixed seed and the initial weight: the same weight gives the same u,
    whatever the global generator did."""
    devices.manual_seed(3)
    a = nn.Conv2D(3, 4, 3)
    b = copy.deepcopy(a)
    devices.global_rng().random(10)
    assert np.array_equal(nn.SpectralNorm(a).buffers["u"], nn.SpectralNorm(b).buffers["u"])
    assert nn.SpectralNorm(a).buffers["u"].dtype == a.params["W"].dtype


@pytest.mark.parametrize("case", ["Dense", "Conv2DTranspose"])
def test_frozen_returns_dx_and_adds_no_weight_gradient(device, case):
    sn, shape = _make(case, device)
    sn.forward(on(device, _x(0, shape)))
    sn.eval()  # u held: the two passes below see the same W / sigma
    x = on(device, _x(1, shape))
    dy = on(device, _x(2, sn.forward(x).shape))
    dx_live = _np(sn.backward(dy))
    sn.zero_grad()
    sn.trainable = False
    assert not sn.layer.trainable and not sn.has_trainable_params()
    sn.forward(x)
    np.testing.assert_array_equal(_np(sn.backward(dy)), dx_live)
    assert sn.backward_weights(dy) is None
    assert all(not np.abs(_np(g)).max() for g in sn.layer.grads.values())


@pytest.mark.parametrize("case", ["Dense", "Conv2D", "Conv2DTranspose"])
def test_optimizer_updates_the_raw_weight_in_its_flat_buffer(device, case):
    """The wrapped layer's W and grads["W"] stay views of the optimizer's flat buffer
    through forward and backward, and a step moves W itself."""
    sn, shape = _make(case, device)
    model = nn.Sequential(sn)
    opt = optim.SGD(model, lr=0.1)
    flat = model.flat()
    W = sn.layer.params["W"]
    before = _np(W)
    x = on(device, _x(0, shape))
    opt.zero_grad()
    y = model.forward(x)
    model.backward(on(device, _x(1, y.shape)))
    assert sn.layer.params["W"] is W and flat.valid()
    grad = _np(sn.layer.grads["W"])
    opt.step()
    assert sn.layer.params["W"] is W and flat.valid()
    np.testing.assert_allclose(_np(W), before - 0.1 * grad, rtol=1e-12)
    assert sn._cache is not None and "u" in sn.buffers and not sn.params  # u and W_sn are not parameters


def test_state_dict_keys_and_round_trip():
    model = nn.Sequential(nn.Dense(3, 4), nn.SpectralNorm(nn.Dense(4, 2)), nn.BatchNorm(2))
    assert list(model.state_dict()) == ["param.0.W", "param.0.b", "param.1.0.W", "param.1.0.b",
                                        "param.2.gamma", "param.2.beta", "buffer.1.u",
                                        "buffer.2.running_mean", "buffer.2.running_var"]
    model.layers[1].layer.params["W"][...] = _x(0, (4, 2))
    for _ in range(3):
        model.forward(_x(1, (5, 3)).astype(np.float32))
    state = model.state_dict()
    other = nn.Sequential(nn.Dense(3, 4), nn.SpectralNorm(nn.Dense(4, 2)), nn.BatchNorm(2))
    assert not np.array_equal(other.state_dict()["buffer.1.u"], state["buffer.1.u"])
    other.load_state_dict(state)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)


def _train(model, opt, first, n, device):
    for k in range(first, first + n):
        data = np.random.default_rng(k)
        x = on(device, data.standard_normal((8, 1, 6, 6)), dtype=np.float32)
        opt.zero_grad()
        y = model.forward(x)
        model.backward(on(device, data.standard_normal(y.shape), dtype=np.float32))
        opt.step()


def _critic():
    return nn.Sequential(nn.SpectralNorm(nn.Conv2D(1, 4, 3, 2, "same")), nn.LeakyReLU(0.2),
                         nn.SpectralNorm(nn.Conv2DTranspose(4, 2, 3, 1, 1)), nn.Flatten(),
                         nn.SpectralNorm(nn.Dense(2 * 3 * 3, 1)))


def test_checkpoint_resume_is_bit_identical(tmp_path, device):
    devices.manual_seed(0)
    model = _critic().to(device)
    opt = optim.Adam(model, lr=1e-2)
    _train(model, opt, 0, 4, device)
    path = save_checkpoint(tmp_path / "sn.npz", models={"D": model}, optimizers={"D": opt})
    _train(model, opt, 4, 4, device)
    want = model.state_dict()

    devices.manual_seed(7)  # other weights, so another u from the warm-up
    fresh = _critic().to(device)
    fresh_opt = optim.Adam(fresh, lr=1e-2)
    assert not np.array_equal(fresh.state_dict()["buffer.0.u"], want["buffer.0.u"])
    load_checkpoint(path, models={"D": fresh}, optimizers={"D": fresh_opt})
    _train(fresh, fresh_opt, 4, 4, device)
    got = fresh.state_dict()
    assert got.keys() == want.keys() and "buffer.4.u" in got
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_copies_and_pickles_carry_u_and_no_cache():
    sn = nn.SpectralNorm(nn.Conv2D(2, 3, 3))
    sn.forward(_x(0, (2, 2, 5, 5)).astype(np.float32))
    for twin in (copy.deepcopy(sn), pickle.loads(pickle.dumps(sn))):
        assert twin._cache is None and twin.layer._cache is None
        np.testing.assert_array_equal(twin.buffers["u"], sn.buffers["u"])
        assert twin.layer is not sn.layer


def test_modes_casts_and_moves_reach_the_wrapped_layer(device):
    sn = nn.SpectralNorm(nn.Dense(3, 2))
    model = nn.Sequential(sn).eval()
    assert not sn.training and not sn.layer.training
    model.astype(np.float64).to(device)
    assert sn.buffers["u"].dtype == np.float64 and sn.layer.params["W"].dtype == np.float64
    assert sn.device is sn.layer.device and sn.device.owns(sn.buffers["u"])
    assert "SpectralNorm(Dense(3, 2))" in repr(model)


def test_no_host_reads_on_the_gpu(device):
    """A training-mode forward and backward on the device: sigma stays a device scalar."""
    if device != "gpu" or devices.cupy_module() is not None:
        pytest.skip("counted on the GPU stand-in")
    from minigan.testing import gpu_standin

    sn, shape = _make("Dense", device)
    x = on(device, _x(0, shape))
    dy = on(device, _x(1, (3, 4)))
    with gpu_standin.counting() as c:
        sn.forward(x)
        sn.backward(dy)
        sn.eval().forward(x)
    assert c.syncs == 0, c.reasons


def test_bad_wrapping_is_refused():
    with pytest.raises(ValueError, match="no weight 'W'"):
        nn.SpectralNorm(nn.BatchNorm(3))
    with pytest.raises(ValueError, match="no weight 'W'"):
        nn.SpectralNorm(nn.SpectralNorm(nn.Dense(2, 2)))  # its W lives in the child
    with pytest.raises(ValueError, match="n_power_iterations"):
        nn.SpectralNorm(nn.Dense(2, 2), n_power_iterations=0)
    with pytest.raises(TypeError, match="expected a Layer"):
        nn.SpectralNorm(np.zeros((2, 2)))


def test_summary_shows_one_row_per_wrapped_layer():
    text = _critic().summary((1, 6, 6))
    rows = [line.split() for line in text.splitlines()]
    names = [r[0] for r in rows if r and r[0].isdigit() and r[1] != "values"]
    assert names == ["0", "1", "2", "3", "4"]
    assert any(line.startswith("0 ") and "SpectralNorm(Conv2D(1->4, k=3, s=2, p='same'))" in line
               and line.rstrip().endswith("324") for line in text.splitlines())
    assert "7 values in buffers (u), not trained" in text  # u: 4 + 2 + 1 outputs


# -- PyTorch --------------------------------------------------------------------------------------

def _torch_twin(layer, torch):
    """The PyTorch layer with ``layer``'s weights (float64)."""
    tnn = torch.nn
    W = torch.tensor(np.asarray(layer.params["W"]))
    if isinstance(layer, nn.Dense):
        t = tnn.Linear(layer.in_features, layer.out_features, bias="b" in layer.params)
        W = W.T.contiguous()
    elif isinstance(layer, nn.Conv2DTranspose):
        t = tnn.ConvTranspose2d(layer.in_ch, layer.out_ch, layer.kernel_size, layer.stride, layer.padding,
                                layer.output_padding, bias="b" in layer.params)
    else:
        t = tnn.Conv2d(layer.in_ch, layer.out_ch, layer.kernel_size, layer.stride, layer.padding,
                       bias="b" in layer.params)
    t = t.double()
    with torch.no_grad():
        t.weight.copy_(W)
        if "b" in layer.params:
            t.bias.copy_(torch.tensor(np.asarray(layer.params["b"])))
    return t


@pytest.mark.parametrize("case", ["Dense", "Conv2D", "Conv2DTranspose"])
def test_matches_pytorch_spectral_norm(case):
    """Eval mode against torch.nn.utils.parametrizations.spectral_norm with the same u (and its
    v = normalize(Wmᵀ u)): output, dL/dx and dL/dW (PyTorch's default matrix for each layer
    type, so the layouts agree too); then one training-mode step moves u as PyTorch's does."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.parametrizations import spectral_norm

    sn, shape = _make(case, "cpu")
    x = _x(0, shape)
    sn.forward(x)  # u moves once
    t = spectral_norm(_torch_twin(sn.layer, torch))
    par = t.parametrizations.weight[0]
    u = _np(sn.buffers["u"])
    Wm = _np(sn.matrix(sn.layer.params["W"]))
    v = Wm.T @ u / np.linalg.norm(Wm.T @ u)
    with torch.no_grad():
        par._u.copy_(torch.tensor(u))
        par._v.copy_(torch.tensor(v))

    sn.eval()
    t.eval()
    y = sn.forward(x)
    dy = _x(1, y.shape)
    sn.zero_grad()
    dx = sn.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = t(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    tW = t.parametrizations.weight.original.grad.numpy()
    np.testing.assert_allclose(sn.layer.grads["W"], tW.T if case == "Dense" else tW, rtol=1e-10, atol=1e-12)
    if "b" in sn.layer.params:
        np.testing.assert_allclose(sn.layer.grads["b"], t.bias.grad.numpy(), rtol=1e-10, atol=1e-12)

    # training mode: PyTorch updates u = normalize(Wm v) from its stored v, which here is the
    # v = normalize(Wmᵀ u) the update starts from, so the new u is the same
    sn.train()
    t.train()
    sn.forward(x)
    t(torch.tensor(x))
    np.testing.assert_allclose(_np(sn.buffers["u"]), par._u.numpy(), rtol=1e-10, atol=1e-12)

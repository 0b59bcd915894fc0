"""Adam and SGD against hand computations, and their saved state."""
import numpy as np
import pytest

from minigan import nn, optim


def _model():
    m = nn.Sequential(nn.Dense(3, 2), nn.BatchNorm(2)).astype(np.float64)
    return m


def _set_grads(model, rng):
    grads = {}
    for name, layer, key in model.named_parameters():
        g = rng.standard_normal(layer.params[key].shape)
        layer.grads[key][...] = g
        grads[name] = g
    return grads


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.999), (0.0, 0.9)])
def test_adam_step_by_step(betas):
    rng = np.random.default_rng(0)
    model = _model()
    opt = optim.Adam(model, lr=0.01, betas=betas, eps=1e-8)
    b1, b2 = betas
    p = {n: layer.params[k].copy() for n, layer, k in model.named_parameters()}
    m = {n: 0.0 for n in p}
    v = {n: 0.0 for n in p}
    for t in range(1, 6):
        grads = _set_grads(model, rng)
        opt.step()
        for n, g in grads.items():
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            mhat = m[n] / (1 - b1 ** t)
            vhat = v[n] / (1 - b2 ** t)
            p[n] = p[n] - 0.01 * mhat / (np.sqrt(vhat) + 1e-8)
        for n, layer, k in model.named_parameters():
            np.testing.assert_allclose(layer.params[k], p[n], rtol=1e-12, atol=1e-15)
    assert opt.t == 5


def test_adam_first_step_moves_each_weight_by_lr():
    """With bias correction, step 1 is lr * g/|g| (up to eps), whatever the betas."""
    model = _model()
    before = {n: layer.params[k].copy() for n, layer, k in model.named_parameters()}
    grads = _set_grads(model, np.random.default_rng(1))
    optim.Adam(model, lr=0.1, betas=(0.5, 0.999)).step()
    for n, layer, k in model.named_parameters():
        np.testing.assert_allclose(before[n] - layer.params[k], 0.1 * np.sign(grads[n]), rtol=1e-6)


def test_sgd_momentum_by_hand():
    rng = np.random.default_rng(2)
    model = _model()
    opt = optim.SGD(model, lr=0.1, momentum=0.9)
    p = {n: layer.params[k].copy() for n, layer, k in model.named_parameters()}
    buf = {n: 0.0 for n in p}
    for _ in range(4):
        grads = _set_grads(model, rng)
        opt.step()
        for n, g in grads.items():
            buf[n] = 0.9 * buf[n] + g
            p[n] = p[n] - 0.1 * buf[n]
    for n, layer, k in model.named_parameters():
        np.testing.assert_allclose(layer.params[k], p[n], rtol=1e-12)


@pytest.mark.parametrize("make", [lambda m: optim.Adam(m, 0.01, (0.5, 0.99)),
                                  lambda m: optim.SGD(m, 0.1, momentum=0.8)])
def test_state_round_trip_continues_exactly(make):
    rng = np.random.default_rng(3)
    a = _model()
    b = _model()
    b.load_state_dict(a.state_dict())
    oa = make(a)
    for _ in range(3):
        _set_grads(a, rng)
        oa.step()
    b.load_state_dict(a.state_dict())
    ob = make(b)
    ob.load_state_dict(oa.state_dict())
    for _ in range(3):
        g = np.random.default_rng(4)
        _set_grads(a, g)
        _set_grads(b, np.random.default_rng(4))
        oa.step()
        ob.step()
    for (n, la, k), (_, lb, _) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(la.params[k], lb.params[k]), n


def test_bad_hyperparameters_are_refused():
    m = _model()
    with pytest.raises(ValueError, match="lr"):
        optim.Adam(m, lr=0)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(m, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD(m, 0.1, momentum=1.5)


@pytest.mark.parametrize("make", [lambda m: optim.Adam(m, 0.01, (0.5, 0.99)),
                                  lambda m: optim.SGD(m, 0.1, momentum=0.8)], ids=["adam", "sgd"])
def test_optimizers_on_every_device(device, make):
    """The same steps on the device as on the CPU (the GPU's one-launch Adam included)."""
    from minigan.runtime import devices

    a = _model()
    b = _model()
    b.load_state_dict(a.state_dict())
    b.to(device)
    oa, ob = make(a), make(b)
    for k in range(3):
        grads = _set_grads(a, np.random.default_rng(k))
        for name, layer, key in b.named_parameters():
            layer.grads[key][...] = devices.device(device).asarray(grads[name])
        oa.step()
        ob.step()
    for (n, la, k), (_, lb, _) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(devices.to_numpy(lb.params[k]), la.params[k], rtol=1e-12, atol=1e-14, err_msg=n)
    st_a, st_b = oa.state_dict(), ob.state_dict()
    assert st_a.keys() == st_b.keys()


def test_the_state_follows_a_cast_or_a_move_after_the_optimizer_was_made(device):
    """Parameters are packed into one flat buffer per dtype when the optimizer is made; a later
    cast or move packs them again, and the moments follow each parameter by name."""
    from minigan.runtime import devices

    model = _model().astype(np.float32)
    opt = optim.Adam(model, lr=0.01, betas=(0.5, 0.99))
    _set_grads(model, np.random.default_rng(0))
    opt.step()
    before = opt.state_dict()
    model.astype(np.float64).to(device)
    assert model.flat().groups[0].params.dtype == np.float64
    after = opt.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_allclose(after[k], before[k], rtol=1e-7, err_msg=k)
    dev = devices.device(device)
    for name, layer, key in model.named_parameters():
        layer.grads[key][...] = dev.asarray(np.ones(layer.grads[key].shape))
    kept = {n: devices.to_numpy(layer.params[k]).copy() for n, layer, k in model.named_parameters()}
    opt.step()  # the step updates the model's new arrays
    for n, layer, k in model.named_parameters():
        assert not np.array_equal(devices.to_numpy(layer.params[k]), kept[n]), n


@pytest.mark.parametrize("kw,match", [(dict(lr=float("nan")), "lr"), (dict(lr=float("inf")), "lr"),
                                      (dict(lr=-1e-3), "lr"), (dict(eps=0.0), "eps"), (dict(eps=-1e-8), "eps"),
                                      (dict(eps=float("nan")), "eps"), (dict(eps=float("inf")), "eps"),
                                      (dict(betas=(0.5, float("nan"))), "betas")])
def test_adam_refuses_bad_hyperparameters(kw, match):
    with pytest.raises(ValueError, match=match):
        optim.Adam(_model(), **kw)


@pytest.mark.parametrize("make", [optim.Adam, optim.SGD], ids=["adam", "sgd"])
def test_an_optimizer_over_a_model_without_parameters_is_refused(make):
    with pytest.raises(ValueError, match="no parameters"):
        make(nn.Sequential(nn.LeakyReLU(), nn.Flatten()), lr=0.1)


@pytest.mark.parametrize("bad", ["shape", "name", "dtype", "t"])
def test_load_state_dict_checks_everything_before_it_changes_anything(bad):
    model = _model()
    opt = optim.Adam(model, 0.01)
    _set_grads(model, np.random.default_rng(5))
    opt.step()
    before = {k: v.copy() for k, v in opt.state_dict().items()}
    state = {k: v * 2 for k, v in opt.state_dict().items()}
    last = list(state)[-1]  # the entries before it would be written first
    if bad == "shape":
        state[last] = np.zeros(state[last].shape + (2,))
    elif bad == "name":
        state["m.9.W"] = np.zeros(3)
    elif bad == "dtype":
        state[last] = np.full(state[last].shape, "x")
    else:
        del state["t"]
    with pytest.raises((ValueError, KeyError, TypeError)):
        opt.load_state_dict(state)
    after = opt.state_dict()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)

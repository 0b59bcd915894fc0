"""Frozen layers inside a chain: the generator step backpropagates through a frozen
discriminator, so a frozen layer must still pass dL/dx on, exactly as when it trains,
and add nothing to its own gradients.

For every chain and every layer with parameters in it (and the whole chain at once),
freezing changes nothing but the frozen layers' gradients: the chain's dL/dx and the
other layers' gradients are those of the unfrozen chain.
"""
import copy

import numpy as np
from helpers import on, use_engine

from minigan import nn
from minigan.runtime import devices

CHAINS = {
    "dense": (lambda: nn.Sequential(nn.Dense(4, 5), nn.LeakyReLU(0.2), nn.Dense(5, 3, bias=False),
                                    nn.BatchNorm(3), nn.Tanh(), nn.Dense(3, 2)), (6, 4)),
    "conv": (lambda: nn.Sequential(nn.Conv2D(2, 3, 3, 2, "same"), nn.LeakyReLU(0.2),
                                   nn.Conv2DTranspose(3, 3, 3, 2, 1, output_padding=1, bias=False),
                                   nn.BatchNorm(3), nn.ReLU(), nn.Conv2D(3, 2, 2, 1, "valid"),
                                   nn.Flatten(), nn.Dense(2 * 5 * 3, 2)), (3, 2, 5, 4)),
    # eval mode: u held, so the frozen and the live passes see the same W / sigma
    "spectral": (lambda: nn.Sequential(nn.SpectralNorm(nn.Conv2D(2, 3, 3, 2, "same")), nn.LeakyReLU(0.2),
                                       nn.SpectralNorm(nn.Conv2DTranspose(3, 2, 3, 1, 1, bias=False)),
                                       nn.Flatten(), nn.SpectralNorm(nn.Dense(2 * 3 * 2, 2))).eval(),
                 (3, 2, 5, 4)),
}


def _frozen_choices(make):
    """Which layers to freeze: each layer with parameters alone, then every layer."""
    chain = make()
    with_params = [i for i, layer in enumerate(chain.layers) if layer.num_params()]
    return [(i,) for i in with_params] + [tuple(range(len(chain.layers)))]


def _run(model, x, dy, how):
    model.zero_grad()
    model.forward(x)
    if how == "backward":
        dx = model.backward(dy)
        return devices.to_numpy(dx).copy()
    assert model.backward_weights(dy) is None
    return None


def _grads(model):
    return {name: devices.to_numpy(lay.grads[k]).copy() for name, lay, k in model.named_parameters()}


def _prepare(chain, device, engine):
    make, shape = CHAINS[chain]
    live = make().astype(np.float64)
    for m in live.modules():
        if isinstance(m, (nn.Conv2D, nn.Conv2DTranspose)):
            use_engine(m, engine)
        if isinstance(m, nn.BatchNorm):  # non-trivial affine parameters
            m.params["gamma"][...] = np.linspace(0.5, 1.5, m.num_features)
            m.params["beta"][...] = np.linspace(-0.3, 0.3, m.num_features)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(live.forward(x).shape)
    return live.to(device), on(device, x), on(device, dy)


def test_frozen_layers_in_a_dense_chain(device):
    _check_frozen_dx("dense", device, None)


def test_frozen_layers_in_a_conv_chain(device, engine):
    _check_frozen_dx("conv", device, engine)


def _check_frozen_dx(chain, device, engine):
    live, x, dy = _prepare(chain, device, engine)
    want_dx = _run(live, x, dy, "backward")
    want = _grads(live)
    for frozen in _frozen_choices(CHAINS[chain][0]):
        model = copy.deepcopy(live)
        for i in frozen:
            model.layers[i].trainable = False
        dx = _run(model, x, dy, "backward")
        np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-14, err_msg=f"dx, layers {frozen} frozen")
        frozen_names = {f"{i}." for i in frozen}
        for name, g in _grads(model).items():
            if name[:name.index(".") + 1] in frozen_names:
                assert not np.abs(g).max(), f"{name}: a frozen layer's gradient moved"
            else:
                np.testing.assert_allclose(g, want[name], rtol=1e-12, atol=1e-14,
                                           err_msg=f"{name}, layers {frozen} frozen")


def test_frozen_layers_in_a_spectral_chain(device, engine):
    _check_frozen_dx("spectral", device, engine)


def test_backward_weights_past_frozen_layers_dense(device):
    _check_backward_weights("dense", device, None)


def test_backward_weights_past_frozen_layers_conv(device, engine):
    _check_backward_weights("conv", device, engine)


def test_backward_weights_past_frozen_layers_spectral(device, engine):
    _check_backward_weights("spectral", device, engine)


def _check_backward_weights(chain, device, engine):
    """``backward_weights`` of a chain whose first layers are frozen (and one later): the
    trainable layers get the gradients ``backward`` gives them."""
    live, x, dy = _prepare(chain, device, engine)
    with_params = [i for i, layer in enumerate(live.layers) if layer.num_params()]
    for upto in range(len(with_params)):
        model = copy.deepcopy(live)
        frozen = with_params[:upto] + with_params[upto + 1:upto + 2]  # the first ones and one later
        for i in frozen:
            model.layers[i].trainable = False
        _run(model, x, dy, "backward")
        want = _grads(model)
        _run(model, x, dy, "backward_weights")
        got = _grads(model)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-14,
                                       err_msg=f"{name}, layers {frozen} frozen")

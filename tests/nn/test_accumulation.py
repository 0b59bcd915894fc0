"""Gradients accumulate: ``backward`` and ``backward_weights`` *add* into ``grads``.

A discriminator sees a real and a fake batch before one optimizer step, so two
forward/backward passes without ``zero_grad`` must leave the sum of the two
single-pass gradients, for every parameter of every layer that has any, on every
conv engine and every device.  A gradient assigned instead of added passes every
single-pass check (the gradient checks start from zero) and fails here.
"""
import inspect

import numpy as np
import pytest
from helpers import on, use_engine

import minigan.gan.mixture_models  # noqa: F401  (its layers are in the census below)
from minigan import nn
from minigan.runtime import devices

MODES = ["backward", "backward_weights", "mixed"]

# Conv layers and chains with a conv: run on every engine.  Two image sizes, so the
# im2col engine takes both of its paths: one GEMM over the batch (few output pixels)
# and per-sample GEMMs (at least PER_SAMPLE_MIN_PIXELS = 128 of them, 12 x 12 here).
# No bias before a BatchNorm in the chains: its gradient is zero, so adding it and
# assigning it would look the same.
CONV_CASES = {
    "Conv2D": (lambda: nn.Conv2D(2, 3, 3, 2, "same"), (2, 2, 5, 5)),
    "Conv2D no bias": (lambda: nn.Conv2D(2, 3, (2, 3), 1, (0, 1), bias=False), (2, 2, 4, 5)),
    "Conv2D per-sample": (lambda: nn.Conv2D(2, 3, 3, 1, 1), (2, 2, 12, 12)),
    "Conv2DTranspose": (lambda: nn.Conv2DTranspose(3, 2, 4, 2, 1), (2, 3, 3, 3)),
    "Conv2DTranspose same": (lambda: nn.Conv2DTranspose(3, 2, 5, 2, "same"), (2, 3, 3, 2)),
    "Conv2DTranspose per-sample": (lambda: nn.Conv2DTranspose(2, 3, 3, 1, 1), (2, 2, 12, 12)),
    "conv chain": (lambda: nn.Sequential(nn.Conv2D(2, 3, 3, 2, "same", bias=False), nn.BatchNorm(3), nn.LeakyReLU(0.2),
                                         nn.Conv2DTranspose(3, 2, 3, 2, 1, output_padding=1)),
                   (3, 2, 4, 4)),
    # eval mode: u held, so every pass sees the same W / sigma
    "SpectralNorm Conv2D": (lambda: nn.SpectralNorm(nn.Conv2D(2, 3, 3, 2, "same")).eval(), (2, 2, 5, 5)),
    "SpectralNorm Conv2DTranspose": (lambda: nn.SpectralNorm(nn.Conv2DTranspose(3, 2, 4, 2, 1)).eval(),
                                     (2, 3, 3, 3)),
}
# Everything else with parameters: run on every device.
OTHER_CASES = {
    "Dense": (lambda: nn.Dense(4, 3), (3, 4)),
    "Dense no bias": (lambda: nn.Dense(4, 3, bias=False), (3, 4)),
    "BatchNorm (N, C)": (lambda: nn.BatchNorm(3), (5, 3)),
    "BatchNorm (N, C, H, W)": (lambda: nn.BatchNorm(2), (3, 2, 3, 2)),
    "BatchNorm eval": (lambda: nn.BatchNorm(3).eval(), (5, 3)),
    "dense chain": (lambda: nn.Sequential(nn.LabelJoin(2), nn.Dense(5, 4, bias=False), nn.BatchNorm(4),
                                          nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Dense(4, 2)), (6, 3)),
    "LabelProjection chain": (lambda: nn.Sequential(nn.Dense(4, 5), nn.LabelProjection(5, 2)), (3, 4)),
    "SpectralNorm Dense": (lambda: nn.SpectralNorm(nn.Dense(4, 3)).eval(), (3, 4)),
    # training mode, u moving at every forward: a weight whose top singular value stands
    # well apart and many iterations a step, so u sits at its fixed point
    "SpectralNorm Dense train": (lambda: _separated(nn.SpectralNorm(nn.Dense(4, 3), n_power_iterations=60)),
                                 (3, 4)),
}


def _separated(sn):
    """``sn`` with a weight of singular values 2, 1, 1/2 (the power iteration gains 4x a step)."""
    sn.layer.params["W"][...] = np.array([[2, 0, 0], [0, 1, 0], [0, 0, 0.5], [0, 0, 0]])
    return sn
# Layers that own no parameter of their own (containers hold those of their children)
PARAMETER_FREE = {"ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Dropout", "Flatten", "Reshape", "LabelJoin",
                  "DiscreteCode", "Pack", "Sequential"}


def _layer_classes():
    """Every public Layer subclass that minigan defines."""
    seen, todo = set(), [nn.Layer]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return {c for c in seen if c.__module__.startswith("minigan.") and not c.__name__.startswith("_")
            and not inspect.isabstract(c)}


def test_every_layer_with_parameters_is_checked_here():
    """A new layer with parameters gets a case above (or is declared parameter-free)."""
    covered = set()
    for make, _ in list(CONV_CASES.values()) + list(OTHER_CASES.values()):
        covered |= {type(m).__name__ for m in make().modules() if m.params}
        # a wrapper holds its child's parameters: covered where it wraps a layer with some
        covered |= {type(m).__name__ for m in make().modules() if m.children() and not isinstance(m, nn.Sequential)
                    and m.num_params()}
    missing = sorted(c.__name__ for c in _layer_classes() if c.__name__ not in covered | PARAMETER_FREE)
    assert not missing, f"layers with no accumulation case in {__file__}: {missing}"


def _data(make, shape, device):
    model = make().astype(np.float64).to(device)
    rng = np.random.default_rng(sum(shape))
    xs = [on(device, rng.standard_normal(shape)) for _ in range(2)]
    labels = np.array([0, 1, 1, 0, 1, 0][:shape[0]])
    nn.set_labels(model, labels)
    return model, xs, rng


def _grads(model):
    return {name: devices.to_numpy(lay.grads[k]).copy() for name, lay, k in model.named_parameters()}


def _pass(model, x, dy, mode):
    devices.manual_seed(0)  # the same dropout mask every time
    model.forward(x)
    if mode == "backward":
        model.backward(dy)
    else:
        assert model.backward_weights(dy) is None


def _check_accumulates(model, xs, rng, mode, device):
    devices.manual_seed(0)
    dys = [on(device, rng.standard_normal(model.forward(x).shape)) for x in xs]
    modes = ["backward", "backward_weights"] if mode == "mixed" else [mode, mode]
    flat = model.flat()  # as once an optimizer is made: every gradient a view of one buffer
    single = []
    for x, dy, m in zip(xs, dys, modes):
        model.zero_grad()
        _pass(model, x, dy, m)
        single.append(_grads(model))
    model.zero_grad()
    for x, dy, m in zip(xs, dys, modes):
        _pass(model, x, dy, m)
    both = _grads(model)
    assert flat.valid(), "a gradient array was replaced, not added into"
    for name in both:
        a, b = single[0][name], single[1][name]
        assert np.abs(a).max() > 0 and np.abs(b).max() > 0 and not np.allclose(a, b), name  # can fail
        np.testing.assert_allclose(both[name], a + b, rtol=1e-12, atol=1e-14, err_msg=f"{name} ({mode})")
    model.zero_grad()
    assert all(not np.abs(g).max() for g in _grads(model).values())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_gradients_accumulate(device, engine, case, mode):
    make, shape = CONV_CASES[case]
    model, xs, rng = _data(make, shape, device)
    for m in model.modules():
        if isinstance(m, (nn.Conv2D, nn.Conv2DTranspose)):
            use_engine(m, engine)
    _check_accumulates(model, xs, rng, mode, device)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(OTHER_CASES))
def test_gradients_accumulate(device, case, mode):
    make, shape = OTHER_CASES[case]
    model, xs, rng = _data(make, shape, device)
    _check_accumulates(model, xs, rng, mode, device)


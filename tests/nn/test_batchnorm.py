"""BatchNorm's numbers: batch statistics, running estimates, eval mode, PyTorch where present."""
import numpy as np
import pytest

from minigan import nn


@pytest.mark.parametrize("shape", [(7, 3), (5, 3, 4, 2)])
def test_running_statistics_match_a_direct_computation(shape):
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm(3, momentum=0.2).astype(np.float64)
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    m = np.prod([shape[a] for a in axes])
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(4):
        x = rng.standard_normal(shape) * (step + 1) + step
        y = bn.forward(x)
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        rm = 0.8 * rm + 0.2 * mu
        rv = 0.8 * rv + 0.2 * var * m / (m - 1)  # unbiased into the running estimate
        view = (1, 3) if len(shape) == 2 else (1, 3, 1, 1)
        np.testing.assert_allclose(y, (x - mu.reshape(view)) / np.sqrt(var.reshape(view) + 1e-5),
                                   rtol=1e-10, atol=1e-12)  # biased variance to normalise
    np.testing.assert_allclose(bn.buffers["running_mean"], rm, rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], rv, rtol=1e-12)
    bn.eval()
    x = rng.standard_normal(shape)
    view = (1, 3) if len(shape) == 2 else (1, 3, 1, 1)
    np.testing.assert_allclose(bn.forward(x), (x - rm.reshape(view)) / np.sqrt(rv.reshape(view) + 1e-5),
                               rtol=1e-10)
    np.testing.assert_allclose(bn.buffers["running_mean"], rm, rtol=1e-12)  # eval leaves them


def test_normalises_per_channel_not_per_pixel():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 3, 3)) + np.arange(9).reshape(1, 1, 3, 3)  # pixel-dependent mean
    y = nn.BatchNorm(2).astype(np.float64).forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    assert np.abs(y.mean(axis=0)).max() > 0.5  # a per-pixel BN would zero these too


def test_single_value_per_channel_is_refused_in_training():
    with pytest.raises(nn.ShapeError, match="at least two values"):
        nn.BatchNorm(3).forward(np.ones((1, 3), np.float32))


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    bn = nn.BatchNorm(4).astype(np.float64)
    bn.params["gamma"][...] = rng.standard_normal(4)
    bn.params["beta"][...] = rng.standard_normal(4)
    tbn = torch.nn.BatchNorm2d(4).double()
    with torch.no_grad():
        tbn.weight.copy_(torch.from_numpy(bn.params["gamma"]))
        tbn.bias.copy_(torch.from_numpy(bn.params["beta"]))
    for _ in range(3):
        x = rng.standard_normal((3, 4, 5, 2)) * 2 + 1
        tx = torch.from_numpy(x).requires_grad_()
        ty = tbn(tx)
        y = bn.forward(x)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        dy = rng.standard_normal(y.shape)
        ty.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(bn.backward(dy), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], tbn.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_mean"], tbn.running_mean.numpy(), rtol=1e-12)

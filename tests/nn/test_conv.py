"""The conv engine: definition, output shapes, the adjoint identity, and PyTorch where present."""
import numpy as np
import pytest
from helpers import direct_conv2d, on, use_engine
from hypothesis import given
from hypothesis import strategies as st
from test_layers_grad import conv_cases

from minigan import nn
from minigan.nn.conv import same_padding
from minigan.runtime import devices


def _to_np(a):
    return devices.to_numpy(a)


@given(conv_cases())
def test_conv2d_matches_its_definition(device, engine, c):
    rng = np.random.default_rng(c["seed"])
    layer = nn.Conv2D(c["C"], c["O"], c["k"], c["s"], c["padding"], bias=True).astype(np.float64)
    use_engine(layer, engine)
    layer.params["b"][...] = rng.standard_normal(c["O"])
    x = rng.standard_normal((c["N"], c["C"], c["H"], c["W"]))
    g = layer.geometry(c["H"], c["W"])
    want = direct_conv2d(x, layer.params["W"], layer.params["b"], c["s"], (g.pt, g.pb, g.pl, g.pr))
    got = _to_np(layer.to(device).forward(on(device, x)))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def _expected_conv_size(H, k, s, padding):
    if padding == "same":
        return -(-H // s)
    if padding == "valid":
        return (H - k) // s + 1
    return (H + 2 * padding - k) // s + 1


@given(st.integers(1, 30), st.integers(1, 6), st.integers(1, 4),
       st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 3)))
def test_output_shapes(H, k, s, padding):
    conv = nn.Conv2D(1, 1, k, s, padding)
    want = _expected_conv_size(H, k, s, padding)
    if want >= 1:
        assert conv.output_shape(H, H + 1)[0] == want
        assert conv.forward(np.zeros((1, 1, H, H), np.float32)).shape == (1, 1, want, want)
    else:
        with pytest.raises(nn.ShapeError, match="too small"):
            conv.forward(np.zeros((1, 1, H, H), np.float32))
    op = 0 if padding == "same" else (H % s)
    convT = nn.Conv2DTranspose(1, 1, k, s, padding, output_padding=op)
    if padding == "same":
        wantT = H * s
    else:
        p = 0 if padding == "valid" else padding
        wantT = (H - 1) * s - 2 * p + k + op
    if wantT >= 1:
        assert convT.forward(np.zeros((1, 1, H, H), np.float32)).shape[2] == wantT


def test_same_padding_puts_the_odd_pixel_last():
    # TensorFlow: H=28, k=5, s=2 -> 14 outputs, 3 pixels of padding: 1 before, 2 after
    assert same_padding(28, 5, 2) == (1, 2)
    assert same_padding(7, 5, 1) == (2, 2)
    assert same_padding(8, 1, 2) == (0, 0)
    assert same_padding(5, 4, 1) == (1, 2)


@st.composite
def adjoint_cases(draw):
    c = draw(conv_cases())
    if c["padding"] == "same":  # the transposed 'same' conv is the adjoint on H*s inputs
        c["H"] = c["s"][0] * draw(st.integers(1, 4))
        c["W"] = c["s"][1] * draw(st.integers(1, 4))
    return c


@given(adjoint_cases())
def test_adjoint_identity(device, engine, c):
    """<conv(x), y> == <x, convT(y)> for one shared weight."""
    rng = np.random.default_rng(c["seed"])
    conv = nn.Conv2D(c["C"], c["O"], c["k"], c["s"], c["padding"], bias=False).astype(np.float64)
    Ho, Wo = conv.output_shape(c["H"], c["W"])
    if c["padding"] == "same":
        op, pad = 0, "same"
    else:
        pad = c["padding"] if c["padding"] != "valid" else 0
        ph, pw = pad if isinstance(pad, tuple) else (pad, pad)
        op = ((c["H"] + 2 * ph - c["k"][0]) % c["s"][0], (c["W"] + 2 * pw - c["k"][1]) % c["s"][1])
        pad = (ph, pw)
    convT = nn.Conv2DTranspose(c["O"], c["C"], c["k"], c["s"], pad, output_padding=op,
                               bias=False).astype(np.float64)
    convT.params["W"][...] = conv.params["W"]  # (O, C, kh, kw) is (in, out, kh, kw) for convT
    use_engine(conv, engine), use_engine(convT, engine)
    conv.to(device), convT.to(device)
    x = on(device, rng.standard_normal((c["N"], c["C"], c["H"], c["W"])))
    y = on(device, rng.standard_normal((c["N"], c["O"], Ho, Wo)))
    lhs = float((conv.forward(x) * y).sum())
    back = convT.forward(y)
    assert back.shape == x.shape
    rhs = float((x * back).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_conv_transpose_forward_is_conv_backward(device):
    """The same map, reached two ways: convT.forward(y) == conv.backward(y)."""
    rng = np.random.default_rng(0)
    conv = nn.Conv2D(3, 4, 5, 2, "same", bias=False).astype(np.float64)
    convT = nn.Conv2DTranspose(4, 3, 5, 2, "same", bias=False).astype(np.float64)
    convT.params["W"][...] = conv.params["W"]
    conv.to(device), convT.to(device)
    x = on(device, rng.standard_normal((2, 3, 8, 6)))
    y = on(device, rng.standard_normal((2, 4, 4, 3)))
    conv.forward(x)
    np.testing.assert_allclose(_to_np(conv.backward(y)), _to_np(convT.forward(y)), rtol=1e-12)



@pytest.mark.parametrize("k,s,p,op", [(5, 2, 2, 1), (3, 1, 1, 0), (4, 2, 1, 0), (1, 3, 0, 2), (2, 2, 0, 1)])
def test_against_pytorch(k, s, p, op):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(k * 10 + s)
    x = rng.standard_normal((2, 3, 9, 8))
    conv = nn.Conv2D(3, 4, k, s, p).astype(np.float64)
    conv.params["b"][...] = rng.standard_normal(4)
    tconv = torch.nn.Conv2d(3, 4, k, s, p).double()
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(conv.params["W"]))
        tconv.bias.copy_(torch.from_numpy(conv.params["b"]))
    np.testing.assert_allclose(conv.forward(x), tconv(torch.from_numpy(x)).detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    y = rng.standard_normal((2, 4, 4, 5))
    convT = nn.Conv2DTranspose(4, 3, k, s, p, output_padding=op).astype(np.float64)
    tT = torch.nn.ConvTranspose2d(4, 3, k, s, p, output_padding=op).double()
    with torch.no_grad():
        tT.weight.copy_(torch.from_numpy(convT.params["W"]))
        tT.bias.copy_(torch.from_numpy(convT.params["b"]))
    ty = torch.from_numpy(y).requires_grad_()
    tout = tT(ty)
    out = convT.forward(y)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(out.shape)
    tout.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(convT.backward(dy), ty.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(convT.grads["W"], tT.weight.grad.numpy(), rtol=1e-10, atol=1e-12)

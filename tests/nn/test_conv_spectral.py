"""The spectral conv engine (minigan/nn/conv/spectral.py): its choices and its float32 accuracy.

Its exactness is checked with the im2col engine's own tests, which run on
both engines (the ``engine`` fixture): the definition, the adjoint identity
and the float64 gradient checks over hypothesis geometries.
"""
import numpy as np
import pytest
from helpers import use_engine
from hypothesis import given
from hypothesis import strategies as st

from minigan import nn
from minigan.gan import models
from minigan.nn.conv import spectral as conv_fft


def _engines_of(model, x):
    """``[(layer, engine)]`` for the conv layers of ``model`` on input ``x``."""
    out = []
    for layer in model.layers:
        x = layer.forward(x)
        if isinstance(layer, (nn.Conv2D, nn.Conv2DTranspose)):
            out.append((repr(layer), layer.last_engine))
    return out


def test_dcgan_layers_choose_their_engine():
    """G's 7x7 k5 s1 layer goes spectral, the k5 s2 layers with many channels go to the
    Winograd engine (3 x 3 phase sub-kernels), the 1-channel ones to im2col."""
    G, D = models.dcgan_generator(), models.dcgan_discriminator()
    z = np.random.default_rng(0).standard_normal((64, 100)).astype(np.float32)
    fake = G.forward(z)
    assert [e for _, e in _engines_of(G, z)] == ["spectral", "winograd", "im2col"]
    assert [e for _, e in _engines_of(D, fake)] == ["im2col", "winograd"]
    G.to("cpu", kernels="reference"), D.to("cpu", kernels="reference")  # the reference path is the im2col one
    assert {e for _, e in _engines_of(G, z) + _engines_of(D, fake)} == {"im2col"}


def test_forcing_the_engine():
    layer = nn.Conv2DTranspose(256, 128, 5, 1, "same")
    x = np.zeros((64, 256, 7, 7), np.float32)  # (with 2 samples the kernel transform would not pay)
    for spectral, want in ((None, "spectral"), (False, "im2col"), (True, "spectral")):
        layer.engine = {None: None, False: "im2col", True: "spectral"}[spectral]
        layer.forward(x)
        assert (layer.last_engine == "spectral") == (want == "spectral")


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Conv2DTranspose(256, 128, 5, 1, "same"), (16, 256, 7, 7)),
    (lambda: nn.Conv2DTranspose(128, 64, 5, 2, "same"), (16, 128, 7, 7)),
    (lambda: nn.Conv2D(64, 128, 5, 2, "same"), (16, 64, 14, 14)),
    (lambda: nn.Conv2D(32, 48, (3, 5), (1, 2), (2, 1)), (5, 32, 9, 11)),
], ids=["G 7x7", "G stride 2", "D stride 2", "odd"])
def test_float32_spectral_agrees_with_im2col(make, shape):
    """Forward, dx, dW and db in float32, twice (the plan and buffers are reused)."""
    a, b = make(), make()
    for name in a.params:
        b.params[name][...] = a.params[name]
    rng = np.random.default_rng(3)
    a.params["b"][...] = rng.standard_normal(a.params["b"].shape)
    b.params["b"][...] = a.params["b"]
    use_engine(a, "im2col"), use_engine(b, "spectral")
    for _ in range(2):
        x = rng.standard_normal(shape).astype(np.float32)
        a.zero_grad(), b.zero_grad()
        ya, yb = a.forward(x), b.forward(x)
        dy = rng.standard_normal(ya.shape).astype(np.float32)
        pairs = [(ya, yb), (a.backward(dy), b.backward(dy))] + [(a.grads[k], b.grads[k]) for k in a.grads]
        for want, got in pairs:
            assert got.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


@given(st.integers(1, 12), st.integers(1, 12))
def test_half_spectrum_keeps_one_of_each_conjugate_pair(Ph, Pw):
    fh, fw, a = conv_fft.half_spectrum(Ph, Pw)
    kept = set(zip(fh.tolist(), fw.tolist()))
    conj = {((-h) % Ph, (-w) % Pw) for h, w in kept}
    assert kept | conj == {(h, w) for h in range(Ph) for w in range(Pw)}
    assert len(kept) == len(fh)  # no frequency twice
    for h, w, weight in zip(fh.tolist(), fw.tolist(), a):
        assert weight == (1 if ((-h) % Ph, (-w) % Pw) == (h, w) else 2)
    assert a.sum() == Ph * Pw  # each frequency of the full spectrum counted once


def test_the_7x7_layer_needs_a_9x9_dft():
    g = nn.Conv2DTranspose(256, 128, 5, 1, "same").geometry(7, 7)
    assert conv_fft.dft_size(g) == (9, 9) and conv_fft.frequencies(g) == 41
    g2 = nn.Conv2D(64, 128, 5, 2, "same").geometry(14, 14)
    assert conv_fft.dft_size(g2) == (8, 8) and conv_fft.frequencies(g2) == 34

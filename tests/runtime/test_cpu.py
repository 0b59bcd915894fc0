"""The CPU's kernel table (minigan/runtime/cpu.py) against the reference code it replaces.

im2col, the phase splits, the spectrum transposes and LeakyReLU only move or scale values, so
they must agree exactly; col2im and Adam add in a different order, so they
agree to a few ulps.  Geometries are drawn by hypothesis: asymmetric
padding, stride larger than the kernel, 1x1 kernels, odd sizes, float32 and
float64.
"""
import itertools
from contextlib import contextmanager

import numpy as np
import pytest
from helpers import assert_every_twin_is_tested, conv_geometries
from hypothesis import example, given
from hypothesis import strategies as st

import minigan.gan.averaging  # noqa: F401  (registers the weight average's reference)
from minigan import nn
from minigan.nn.conv import ConvGeom
from minigan.runtime import cpu as numba_cpu
from minigan.runtime.registry import REFERENCES

# the reference functions, by kernel name, as one namespace like the CPU table's module
numpy_ref = type("References", (), {name: staticmethod(fn) for name, fn in REFERENCES.items()})


def test_every_twin_has_a_reference_and_a_test_here():
    """Each kernel of the CPU table replaces a marked reference, and this file compares the two."""
    assert_every_twin_is_tested(numba_cpu.TABLE, "numba_cpu", __file__)

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def geometries():
    return conv_geometries()


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@contextmanager
def _switch(module, name, value):
    """Set ``module.name`` to ``value`` for the duration of the block."""
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


@pytest.mark.parametrize("dtype", DTYPES)
@given(g=geometries(), N=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_im2col_matches_reference(dtype, g, N, seed):
    x = _rand(np.random.default_rng(seed), (N, g.C, g.H, g.W), dtype)
    ref = numpy_ref.im2col(x, g)
    out = np.full((g.K, N, g.Ho * g.Wo), np.nan, dtype)  # every entry must be written
    got = numba_cpu.im2col(x, g, out=out)
    assert got is out and got.dtype == dtype
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@given(g=geometries(), N=st.integers(1, 3), seed=st.integers(0, 2**16))
# image columns right of every window (W 3, kw 2, stride 2): zeros that no tap gathers
@example(g=ConvGeom(2, 3, 3, 2, 2, 2, 2, 0, 0, 0, 0), N=1, seed=0)
def test_col2im_matches_reference(dtype, g, N, seed):
    cols = _rand(np.random.default_rng(seed), (g.K, N, g.Ho * g.Wo), dtype)
    ref = numpy_ref.col2im(cols, g)
    out = np.full((N, g.C, g.H, g.W), np.nan, dtype)  # every element must be written
    got = numba_cpu.col2im(cols, g, out=out)
    assert got is out and got.dtype == dtype
    np.testing.assert_allclose(got, ref, **TOL[dtype])


@given(g=geometries(), seed=st.integers(0, 2**16))
def test_col2im_is_adjoint_of_im2col(g, seed):
    rng = np.random.default_rng(seed)
    x = _rand(rng, (2, g.C, g.H, g.W), np.float64)
    c = _rand(rng, (g.K, 2, g.Ho * g.Wo), np.float64)
    lhs = np.vdot(numba_cpu.im2col(x, g), c)
    rhs = np.vdot(x, numba_cpu.col2im(c, g))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


@pytest.mark.parametrize("mod", [numpy_ref, numba_cpu], ids=["numpy", "numba"])
def test_column_layout_by_hand(mod):
    """``cols[(c, i, j), n, (oh, ow)] = x_pad[n, c, oh*sh + i, ow*sw + j]``."""
    g = ConvGeom(C=2, H=4, W=5, kh=3, kw=2, sh=2, sw=1, pt=1, pb=0, pl=0, pr=1)
    N = 3
    x = np.arange(1.0, N * g.C * g.H * g.W + 1).reshape(N, g.C, g.H, g.W)
    xpad = np.pad(x, ((0, 0), (0, 0), (g.pt, g.pb), (g.pl, g.pr)))
    cols = mod.im2col(x, g)
    for n, c, i, j, oh, ow in itertools.product(range(N), range(g.C), range(g.kh), range(g.kw),
                                                range(g.Ho), range(g.Wo)):
        assert cols[(c * g.kh + i) * g.kw + j, n, oh * g.Wo + ow] == \
            xpad[n, c, oh * g.sh + i, ow * g.sw + j]


@given(F=st.integers(1, 5), m=st.integers(1, 4), k=st.integers(1, 4), n=st.integers(1, 4),
       shared=st.sampled_from(["a", "b", None]), seed=st.integers(0, 2**16))
def test_batched_matmul_with_a_shared_operand(F, m, k, n, shared, seed):
    rng = np.random.default_rng(seed)
    a = _rand(rng, (m, k) if shared == "a" else (F, m, k), np.float64)
    b = _rand(rng, (k, n) if shared == "b" else (F, k, n), np.float64)
    out = np.full((m, F, n), np.nan).transpose(1, 0, 2)  # a strided view, as the conv engine passes
    for fn in (numba_cpu.batched_matmul, numpy_ref.batched_matmul):
        out[...] = np.nan
        assert fn(a, b, out=out) is out
        np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=st.integers(1, 3), C=st.integers(1, 4), H=st.integers(1, 9), W=st.integers(1, 9),
       sh=st.integers(1, 3), sw=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_phase_split_and_merge_match_reference(dtype, N, C, H, W, sh, sw, seed):
    rng = np.random.default_rng(seed)
    Hp, Wp = -(-H // sh), -(-W // sw)
    x = _rand(rng, (N, C, H, W), dtype)
    split = numba_cpu.split_phases(x, sh, sw, Hp, Wp)
    np.testing.assert_array_equal(split, numpy_ref.split_phases(x, sh, sw, Hp, Wp))
    r = _rand(rng, split.shape, dtype)
    merged = numba_cpu.merge_phases(r, H, W)
    np.testing.assert_array_equal(merged, numpy_ref.merge_phases(r, H, W))
    np.testing.assert_array_equal(numba_cpu.merge_phases(split, H, W), x)
    # merge is the adjoint of split (the padding's entries are dropped)
    lhs, rhs = np.vdot(split.astype(np.float64), r), np.vdot(x.astype(np.float64), merged)
    assert abs(lhs - rhs) <= 1e-4 * max(1.0, abs(lhs))


@pytest.mark.parametrize("dtype", DTYPES)
@given(B=st.integers(1, 200), F=st.integers(1, 50), seed=st.integers(0, 2**16))
def test_spectrum_transposes_match_reference(dtype, B, F, seed):
    r = _rand(np.random.default_rng(seed), (B, 2 * F), dtype)
    z = numba_cpu.rows_to_spectrum(r)
    assert z.dtype == np.result_type(dtype, np.complex64) and z.shape == (F, B)
    np.testing.assert_array_equal(z, numpy_ref.rows_to_spectrum(r))
    np.testing.assert_array_equal(z, (r[:, 0::2] + 1j * r[:, 1::2]).T)
    np.testing.assert_array_equal(numba_cpu.spectrum_to_rows(z), r)
    np.testing.assert_array_equal(numpy_ref.spectrum_to_rows(z), r)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
       slope=st.sampled_from([0.0, 0.2, 0.3, -0.5, 1.5]), seed=st.integers(0, 2**16))
def test_leaky_relu_matches_reference(dtype, shape, slope, seed):
    rng = np.random.default_rng(seed)
    x = _rand(rng, shape, dtype)
    x.flat[0] = 0  # the kink: both paths take the slope branch
    dy = _rand(rng, shape, dtype)
    np.testing.assert_array_equal(numba_cpu.leaky_relu(x, slope), numpy_ref.leaky_relu(x, slope))
    np.testing.assert_array_equal(numba_cpu.leaky_relu_grad(dy, x, slope),
                                  numpy_ref.leaky_relu_grad(dy, x, slope))


def _adam_steps(update, params, grads, steps=3):
    """Run ``steps`` Adam steps of ``update`` on copies of ``params`` (flat); returns (p, m, v)."""
    p = params.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, steps + 1):
        update(p, grads * t, m, v, 1e-3, 0.5, 0.999, 1e-8, t)
    return p, m, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@given(size=st.integers(1, 200), big=st.booleans(), seed=st.integers(0, 2**16))
def test_adam_update_matches_reference(dtype, parallel, size, big, seed):
    """A flat buffer in one launch, on one or several chunks, on both kernels."""
    rng = np.random.default_rng(seed)
    size += (numba_cpu.ADAM_CHUNK + 37) * big
    params, grads = _rand(rng, size, dtype), _rand(rng, size, dtype)
    with _switch(numba_cpu, "PARALLEL_MIN", 1 if parallel else numba_cpu.PARALLEL_MIN):
        fast = _adam_steps(numba_cpu.adam_update, params, grads)
    for x, y in zip(_adam_steps(numpy_ref.adam_update, params, grads), fast):
        np.testing.assert_allclose(y, x, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@given(N=st.integers(2, 5), C=st.integers(1, 9), hw=st.sampled_from([None, (1, 1), (3, 2), (5, 7)]),
       seed=st.integers(0, 2**16))
def test_batchnorm_kernels_match_reference(dtype, training, N, C, hw, seed):
    """Statistics, normalise + affine and the gradient, for (N, C) and (N, C, H, W)."""
    rng = np.random.default_rng(seed)
    shape = (N, C) if hw is None else (N, C) + hw
    x = (_rand(rng, shape, dtype) * 3 + 1).astype(dtype)
    gamma, beta = _rand(rng, (C,), dtype), _rand(rng, (C,), dtype)
    stats = [numpy_ref.batchnorm_stats(x), numba_cpu.batchnorm_stats(x)]
    for a, b in zip(*stats):
        np.testing.assert_allclose(b, a, **TOL[dtype])
    mu, var = stats[0]
    inv_std = (1 / np.sqrt(var + 1e-5)).astype(dtype)
    (y0, xh0), (y1, xh1) = (numpy_ref.batchnorm_apply(x, mu, inv_std, gamma, beta),
                            numba_cpu.batchnorm_apply(x, mu, inv_std, gamma, beta))
    np.testing.assert_allclose(y1, y0, **TOL[dtype])
    np.testing.assert_allclose(xh1, xh0, **TOL[dtype])
    dy = _rand(rng, shape, dtype)
    for a, b in zip(numpy_ref.batchnorm_grad(dy, xh0, gamma, inv_std, training),
                    numba_cpu.batchnorm_grad(dy, xh0, gamma, inv_std, training)):
        np.testing.assert_allclose(b, a, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@given(N=st.integers(2, 5), C=st.integers(1, 9), hw=st.sampled_from([None, (1, 1), (3, 2), (5, 7)]),
       slope=st.sampled_from([0.0, 0.2, 1.0]), seed=st.integers(0, 2**16))
def test_batchnorm_with_leaky_relu_matches_reference(dtype, training, N, C, hw, slope, seed):
    """The affine pass with the LeakyReLU after it, and the gradient through both; beta is
    drawn so that about half the outputs are negative."""
    rng = np.random.default_rng(seed)
    shape = (N, C) if hw is None else (N, C) + hw
    xh = _rand(rng, shape, dtype)
    mu, inv_std = np.zeros(C, dtype), np.ones(C, dtype)
    gamma, beta = _rand(rng, (C,), dtype), _rand(rng, (C,), dtype)
    (z0, xh0), (z1, xh1) = (numpy_ref.batchnorm_leaky_apply(xh, mu, inv_std, gamma, beta, slope),
                            numba_cpu.batchnorm_leaky_apply(xh, mu, inv_std, gamma, beta, slope))
    np.testing.assert_array_equal(z1, z0)
    np.testing.assert_array_equal(xh1, xh0)
    dz = _rand(rng, shape, dtype)
    for a, b in zip(numpy_ref.batchnorm_leaky_grad(dz, xh0, gamma, beta, inv_std, training, slope),
                    numba_cpu.batchnorm_leaky_grad(dz, xh0, gamma, beta, inv_std, training, slope)):
        np.testing.assert_allclose(b, a, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10)


def test_adam_takes_non_contiguous_parameters():
    """Parameters that were not contiguous are packed into the flat buffer like any other."""
    from minigan import optim

    layer = nn.Dense(4, 3)
    layer.params["W"] = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    layer.grads["W"] = np.zeros((4, 3), np.float32)
    before = layer.params["W"].copy()
    opt = optim.Adam(layer, 0.1, (0.9, 0.999), 1e-8)
    for g in layer.grads.values():
        g[...] = 1
    opt.step()
    np.testing.assert_allclose(layer.params["W"], before - 0.1, rtol=1e-6)
    np.testing.assert_allclose(layer.params["b"], -0.1, rtol=1e-6)


def test_adam_state_follows_replaced_arrays():
    """An array replaced after the optimizer was made (a cast, a move) is the one it updates."""
    from minigan import optim

    layer = nn.Dense(4, 3)
    opt = optim.Adam(layer, 1e-3, (0.5, 0.999), 1e-8)
    layer.grads["W"][...] = 1
    opt.step()
    layer.params["W"] = layer.params["W"].copy()  # e.g. a parameter swapped for a moved copy
    layer.grads["W"] = np.ones((4, 3), np.float32)
    kept = layer.params["W"].copy()
    m = opt.state_dict()["m.W"]
    opt.step()
    assert not np.array_equal(layer.params["W"], kept)
    np.testing.assert_allclose(opt.state_dict()["m.W"], 0.5 * m + 0.5, rtol=1e-6)


@pytest.mark.parametrize("mod", [numpy_ref, numba_cpu], ids=["numpy", "numba"])
@pytest.mark.parametrize("p", [0.0, 0.3, 0.75])
def test_dropout_kernels(mod, p):
    """Both paths: y = x * keep / (1 - p), keep rate 1 - p, mask fixed by the seed."""
    x = np.random.default_rng(3).standard_normal((64, 32, 7, 7)).astype(np.float32)
    y, keep = mod.dropout(x, p, 11)
    scale = np.float32(1 / (1 - p))
    np.testing.assert_array_equal(y, np.where(keep, x * scale, 0))
    assert abs(keep.mean() - (1 - p)) < 0.01
    dy = np.ones_like(x)
    np.testing.assert_array_equal(mod.dropout_grad(dy, keep, p), np.where(keep, scale, 0))
    np.testing.assert_array_equal(mod.dropout(x, p, 11)[1], keep)  # same seed, same mask
    assert p == 0 or not np.array_equal(mod.dropout(x, p, 12)[1], keep)  # another seed, another mask


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), p=st.sampled_from([0.0, 0.3, 0.9]),
       seed=st.integers(0, 2**63 - 1))
def test_dropout_matches_reference(dtype, shape, p, seed):
    """The same counter-based mask, bit for bit, and the same scaled values."""
    x = _rand(np.random.default_rng(seed % 2**32), shape, dtype)
    (y0, k0), (y1, k1) = numpy_ref.dropout(x, p, seed), numba_cpu.dropout(x, p, seed)
    np.testing.assert_array_equal(k1, k0)
    np.testing.assert_array_equal(y1, y0)
    dy = _rand(np.random.default_rng(1), shape, dtype)
    np.testing.assert_array_equal(numba_cpu.dropout_grad(dy, k0, p), numpy_ref.dropout_grad(dy, k0, p))


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=st.integers(1, 4), C=st.integers(1, 9), H=st.integers(1, 8), W=st.integers(1, 8),
       seed=st.integers(0, 2**16))
def test_channel_sums_match_reference(dtype, N, C, H, W, seed):
    dy = _rand(np.random.default_rng(seed), (N, C, H, W), dtype)
    np.testing.assert_allclose(numba_cpu.channel_sums(dy), numpy_ref.channel_sums(dy), **TOL[dtype])


@given(size=st.integers(1, 100_000), seed=st.integers(0, 2**16))
def test_ema_update_matches_reference(size, seed):
    rng = np.random.default_rng(seed)
    theta, avg = rng.standard_normal(size).astype(np.float32), rng.standard_normal(size)
    ref = avg.copy()
    numba_cpu.ema_update(avg, theta, 1e-3)
    numpy_ref.ema_update(ref, theta, 1e-3)
    np.testing.assert_array_equal(avg, ref)


LAYERS = [
    lambda: nn.Conv2D(3, 4, 5, 2, "same"),
    lambda: nn.Conv2D(2, 3, (1, 3), (3, 1), (0, 1)),
    lambda: nn.Conv2D(2, 2, 1, 3),
    lambda: nn.Conv2DTranspose(3, 2, 5, 2, "same"),
    lambda: nn.Conv2DTranspose(2, 3, 3, 4, 1, output_padding=2),
    lambda: nn.Sequential(nn.Dense(5, 12), nn.LeakyReLU(0.3), nn.Reshape((3, 2, 2)),
                          nn.Conv2DTranspose(3, 2, 3, 1, "same"), nn.LeakyReLU(0.2)),
]


@pytest.mark.parametrize("make", LAYERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_layers_agree_on_both_kernel_paths(make, dtype):
    """Forward, dx and every parameter gradient, twice (buffers are reused on the second call)."""
    layer = make().astype(dtype)
    rng = np.random.default_rng(7)
    first = layer.layers[0] if isinstance(layer, nn.Sequential) else layer
    x = _rand(rng, (3, first.in_features) if isinstance(first, nn.Dense)
              else (3, first.in_ch, 7, 6), dtype)
    results = {}
    for path in ("numpy", "numba"):
        layer.to("cpu", kernels="reference" if path == "numpy" else "numba")
        for _ in range(2):
            layer.zero_grad()
            y = layer.forward(x)
            dy = np.random.default_rng(8).standard_normal(y.shape).astype(dtype)
            dx = layer.backward(dy)
        grads = {n: l.grads[k].copy() for n, l, k in layer.named_parameters()}
        results[path] = (y.copy(), dx.copy(), grads)
    (y0, dx0, g0), (y1, dx1, g1) = results["numpy"], results["numba"]
    np.testing.assert_allclose(y1, y0, **TOL[dtype])
    np.testing.assert_allclose(dx1, dx0, **TOL[dtype])
    for name in g0:
        np.testing.assert_allclose(g1[name], g0[name], **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("F", [1, 2, 3, 41])
@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.complex128])
def test_batched_matmul_split_over_threads(F, dtype):
    """The per-thread runs give the plain product, and BLAS gets its thread count back."""
    from minigan.runtime import blas

    rng = np.random.default_rng(F)
    a = (rng.standard_normal((F, 5, 7)) + (1j if np.iscomplexobj(dtype(0)) else 0)).astype(dtype)
    b = rng.standard_normal((F, 9, 7)).astype(dtype).transpose(0, 2, 1)  # a transposed operand
    fns = blas._openblas()
    before = fns[0]() if fns else None
    got = numba_cpu.batched_matmul(a, b)
    np.testing.assert_allclose(got, np.matmul(a, b), rtol=1e-5, atol=1e-5)
    assert got.dtype == np.result_type(a, b)
    assert (fns[0]() if fns else None) == before


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3), scalar=st.booleans(),
       seed=st.integers(0, 2**16))
def test_bce_with_logits_matches_reference(dtype, shape, scalar, seed):
    rng = np.random.default_rng(seed)
    z = (_rand(rng, shape, dtype) * 30).astype(dtype)  # far into both tails
    t = dtype(rng.uniform()) if scalar else rng.uniform(size=shape).astype(dtype)
    v0, g0 = numpy_ref.bce_with_logits_sum(z, t)
    v1, g1 = numba_cpu.bce_with_logits_sum(z, t)
    assert g1.dtype == dtype and g1.shape == z.shape and np.isfinite(v1)
    np.testing.assert_allclose(v1, v0, rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(g1, g0, **TOL[dtype])


@pytest.mark.parametrize("H,W", [(28, 28), (26, 14), (14, 27)])
def test_winograd_alpha8_transforms_with_several_tiles(H, W):
    """The 8-row sweeps' kernels (alpha = 8) where tiles overlap and the last is partial:
    k4 s2 on 28 (two 7 x 7 tiles an axis), 26 and 27 (13 outputs: the second tile partial)."""
    from minigan.nn.conv.winograd import make_plan  # noqa: PLC0415

    g = ConvGeom(3, H, W, 4, 4, 2, 2, 1, 1, 1, 1)
    p = make_plan(g)
    assert p.ah == p.aw == 8 and p.th * p.tw > 1
    rng = np.random.default_rng(H * W)
    N, O, T = 2, 5, p.tiles(2)
    x, dy = _rand(rng, (N, g.C, H, W), np.float64), _rand(rng, (N, O, g.Ho, g.Wo), np.float64)
    M, dV = _rand(rng, (T, 64, O), np.float64), _rand(rng, (T, 64, p.Ck), np.float64)
    for got, want in ((numba_cpu.winograd_image(x, p), numpy_ref.winograd_image(x, p)),
                      (numba_cpu.winograd_image_adjoint(dV, p, N), numpy_ref.winograd_image_adjoint(dV, p, N)),
                      (numba_cpu.winograd_output(M, p, N), numpy_ref.winograd_output(M, p, N)),
                      (numba_cpu.winograd_output_adjoint(dy, p), numpy_ref.winograd_output_adjoint(dy, p))):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(want).max())


@pytest.mark.parametrize("dtype", DTYPES)
@given(g=geometries(), N=st.integers(1, 3), O=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_winograd_transforms_match_reference(dtype, g, N, O, seed):
    """The Winograd engine's four tile transforms and its weight transform and adjoint: the
    twins sum in another order (to a few ulps) and write every entry of their outputs."""
    from minigan.nn.conv.winograd import make_plan  # noqa: PLC0415

    if g.Ho < 1 or g.Wo < 1:
        return
    p = make_plan(g)
    rng = np.random.default_rng(seed)
    A, T = p.ah * p.aw, p.tiles(N)
    x, dy = _rand(rng, (N, g.C, g.H, g.W), dtype), _rand(rng, (N, O, g.Ho, g.Wo), dtype)
    M, dV = _rand(rng, (T, A, O), dtype), _rand(rng, (T, A, p.Ck), dtype)
    KG = np.kron(p.Gh, p.Gw).astype(dtype)
    w2, dU = _rand(rng, (p.rh * p.rw, p.Ck * O), dtype), _rand(rng, (A, p.Ck * O), dtype)
    # the transforms' entries reach 2^6 (alpha = 8): float32 sums in another order differ by
    # a few ulps of the largest value, not of each
    scale = 1e-5 if dtype == np.float32 else 1e-12

    def close(got, want):
        np.testing.assert_allclose(got, want, rtol=0, atol=scale * max(1.0, np.abs(want).max()))

    full = np.full((T, A, p.Ck), np.nan, dtype)
    close(numba_cpu.winograd_image(x, p, out=full), numpy_ref.winograd_image(x, p))
    full = np.full((T, A, O), np.nan, dtype)
    close(numba_cpu.winograd_output_adjoint(dy, p, out=full), numpy_ref.winograd_output_adjoint(dy, p))
    close(numba_cpu.winograd_output(M, p, N), numpy_ref.winograd_output(M, p, N))
    close(numba_cpu.winograd_image_adjoint(dV, p, N), numpy_ref.winograd_image_adjoint(dV, p, N))
    full = np.full((A, p.Ck * O), np.nan, dtype)
    close(numba_cpu.winograd_weights(KG, w2, out=full), numpy_ref.winograd_weights(KG, w2))
    close(numba_cpu.winograd_weights_adjoint(KG, dU), numpy_ref.winograd_weights_adjoint(KG, dU))


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=st.integers(1, 5), F=st.integers(1, 2100), K=st.integers(2, 5), m=st.integers(1, 3),
       seed=st.integers(0, 2**16))
@example(N=3, F=2049, K=3, m=1, seed=0)  # three blocks of features, the last one short
def test_projection_head_kernels_match_reference(dtype, N, F, K, m, seed):
    """The projection head's three twins: a pass over each sample's own rows of E, against
    the reference's one product with every row."""
    rng = np.random.default_rng(seed)
    x, dy = _rand(rng, (N, F), dtype), _rand(rng, (N, 1), dtype)
    w, b, E = _rand(rng, (F, 1), dtype), _rand(rng, (1,), dtype), _rand(rng, (m * K, F), dtype)
    rows = rng.integers(0, K, (N, m)) + np.arange(m)[None, :] * K
    tol = dict(rtol=1e-4, atol=1e-4 * np.sqrt(F)) if dtype == np.float32 else TOL[dtype]
    np.testing.assert_allclose(numba_cpu.projection_head(x, w, b, E, rows),
                               numpy_ref.projection_head(x, w, b, E, rows), **tol)
    np.testing.assert_allclose(numba_cpu.projection_head_grad(dy, w, E, rows),
                               numpy_ref.projection_head_grad(dy, w, E, rows), **TOL[dtype])
    for got, want in zip(numba_cpu.projection_head_weight_grad(dy, x, rows, m * K),
                         numpy_ref.projection_head_weight_grad(dy, x, rows, m * K)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=st.integers(1, 4), C=st.integers(1, 6), H=st.integers(1, 5), W=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_add_channel_bias_matches_reference(dtype, N, C, H, W, seed):
    """The bias alone (slope 1) and with a (leaky) ReLU, on images and on (N, C) rows."""
    rng = np.random.default_rng(seed)
    b = _rand(rng, (C,), dtype)
    for shape in ((N, C, H, W), (N, C)):
        y = _rand(rng, shape, dtype)
        for slope in (1.0, 0.2, 0.0):
            got, want = y.copy(), y.copy()
            assert numba_cpu.add_channel_bias(got, b, slope) is got  # in place
            np.testing.assert_array_equal(got, numpy_ref.add_channel_bias(want, b, slope))


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=st.integers(1, 5), K=st.integers(1, 4), C=st.integers(1, 6), H=st.integers(1, 5),
       W=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_add_label_bias_matches_reference(dtype, N, K, C, H, W, seed):
    """Each sample its own label's map, alone (slope 1) and with a (leaky) ReLU, on images
    and on (N, C) rows."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, N)
    for shape in ((C, H, W), (C,)):
        T = _rand(rng, (K,) + shape, dtype)
        y = _rand(rng, (N,) + shape, dtype)
        for slope in (1.0, 0.2, 0.0):
            got, want = y.copy(), y.copy()
            assert numba_cpu.add_label_bias(got, T, labels, slope) is got  # in place
            np.testing.assert_array_equal(got, numpy_ref.add_label_bias(want, T, labels, slope))

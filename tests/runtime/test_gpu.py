"""The GPU's kernel table (minigan/runtime/gpu.py) against the reference code it replaces.

On a GPU the kernels run there, on CuPy arrays; without one they run under
numba-cuda's simulator (tests/conftest.py turns it on), which runs every CUDA
thread in Python, on NumPy arrays: so the shapes are small and the examples
few, but every kernel, launch and reduction tree is the one a GPU runs.

im2col, LeakyReLU, dropout, the integer draws, BatchNorm's normalise + affine
(and its eval-mode gradient) and the weight average only move values or compute
them elementwise in the array's precision, so they must agree bit for bit;
col2im gathers each pixel's taps in the reference's order, so it must too.
The reductions sum in float64 in another order, and the normal draws and the
loss go through another libm: they agree to rounding.
"""
import numpy as np
import pytest
from helpers import assert_every_twin_is_tested, conv_geometries
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from numba import cuda
from numba.cuda.core import config as cuda_config

import minigan.gan.averaging  # noqa: F401  (registers the weight average's reference)
import minigan.runtime.randomness  # noqa: F401  (registers the keyed draws' references)
from minigan.nn.conv import ConvGeom
from minigan.runtime import devices
from minigan.runtime.registry import REFERENCES

pytestmark = [
    pytest.mark.gpu,
    # the simulator runs the hashes on NumPy's uint64 scalars, which warn when they wrap
    pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning"),
]

if not cuda.is_available():
    pytest.skip("numba-cuda sees no GPU and its simulator is off", allow_module_level=True)

from minigan.runtime import gpu as cuda_gpu  # noqa: E402

# the reference functions, by kernel name, as one namespace like the GPU table's module
numpy_ref = type("References", (), {name: staticmethod(fn) for name, fn in REFERENCES.items()})

SIMULATED = bool(cuda_config.ENABLE_CUDASIM)
ON_CUPY = not SIMULATED and devices.gpu_available()
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


# -- the launches these tests make, by kernel, against the signatures recorded in runtime/gpu.py --
# (minigan/runtime/gpu_compile.py compiles exactly those ahead for sm_80 and sm_90)
LAUNCHED: dict = {}


class _Recorder:
    """A kernel that notes the numba types of each launch's arguments, then launches."""

    def __init__(self, name, kernel):
        self.name, self.kernel = name, kernel

    def __getitem__(self, config):
        launch = self.kernel[config]

        def call(*args):
            from numba import typeof

            LAUNCHED.setdefault(self.name, set()).add(tuple(typeof(a) for a in args))
            return launch(*args)
        return call


@pytest.fixture(autouse=True, scope="module")
def _record_launches():
    """Under the simulator (NumPy buffers, so numba.typeof names the types a GPU sees too)."""
    if not SIMULATED:
        yield
        return
    saved = {name: getattr(cuda_gpu, name) for name in cuda_gpu.SIGNATURES}
    for name, kernel in saved.items():
        setattr(cuda_gpu, name, _Recorder(name, kernel))
    try:
        yield
    finally:
        for name, kernel in saved.items():
            setattr(cuda_gpu, name, kernel)


def examples(n):
    """At most ``n`` hypothesis examples under the simulator, and no shrinking of a failing one
    (each costs seconds there); the profile's settings on a GPU."""
    if not SIMULATED:
        return lambda f: f
    return settings(max_examples=n, phases=[Phase.explicit, Phase.reuse, Phase.generate])


def dev(a):
    """``a`` on the GPU (a CuPy array) where there is one; else as it is."""
    return devices.cupy_module().asarray(a) if ON_CUPY else a


def host(a):
    return devices.to_numpy(a)


def assert_same_bits(got, ref):
    """``got`` (on the device) is ``ref`` bit for bit: same dtype, shape and bits (-0.0 is not 0.0)."""
    got, ref = np.ascontiguousarray(host(got)), np.ascontiguousarray(ref)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    bits = np.dtype(f"u{ref.dtype.itemsize}")
    np.testing.assert_array_equal(got.view(bits), ref.view(bits))


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def test_every_twin_has_a_reference_and_a_test_here():
    """Each kernel of the GPU table replaces a marked reference, and this file compares the two."""
    assert_every_twin_is_tested(cuda_gpu.TABLE, "cuda_gpu", __file__)


def test_the_table_loads_by_name_without_stream_syncs():
    assert devices.load("cuda") is cuda_gpu.TABLE
    assert not cuda_config.CUDA_ARRAY_INTERFACE_SYNC


# -- the conv engine ------------------------------------------------------------

def geometries():
    return conv_geometries(kernel=4, stride=3, pad=2, size=6, channels=2)


@pytest.mark.parametrize("dtype", DTYPES)
@examples(8)
@given(g=geometries(), N=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_im2col_matches_reference(dtype, g, N, seed):
    x = _rand(np.random.default_rng(seed), (N, g.C, g.H, g.W), dtype)
    out = dev(np.full((g.K, N, g.Ho * g.Wo), np.nan, dtype))  # every entry must be written
    got = cuda_gpu.im2col(dev(x), g, out=out)
    assert got is out and got.dtype == dtype
    assert_same_bits(got, numpy_ref.im2col(x, g))
    assert_same_bits(cuda_gpu.im2col(dev(x), g), numpy_ref.im2col(x, g))


@pytest.mark.parametrize("dtype", DTYPES)
@examples(8)
@given(g=geometries(), N=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_col2im_matches_reference(dtype, g, N, seed):
    """A gather that adds each pixel's taps in the reference's order: the same sums, bit for bit."""
    cols = _rand(np.random.default_rng(seed), (g.K, N, g.Ho * g.Wo), dtype)
    out = dev(np.full((N, g.C, g.H, g.W), np.nan, dtype))  # every element must be written
    got = cuda_gpu.col2im(dev(cols), g, out=out)
    assert got is out and got.dtype == dtype
    assert_same_bits(got, numpy_ref.col2im(cols, g))


@examples(6)
@given(g=geometries(), seed=st.integers(0, 2**16))
def test_col2im_is_adjoint_of_im2col(g, seed):
    rng = np.random.default_rng(seed)
    x = _rand(rng, (2, g.C, g.H, g.W), np.float64)
    c = _rand(rng, (g.K, 2, g.Ho * g.Wo), np.float64)
    lhs = np.vdot(host(cuda_gpu.im2col(dev(x), g)), c)
    rhs = np.vdot(x, host(cuda_gpu.col2im(dev(c), g)))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_conv_kernels_take_non_contiguous_inputs():
    g = ConvGeom(2, 5, 4, 3, 2, 2, 1, 1, 1, 0, 1)
    rng = np.random.default_rng(5)
    x = _rand(rng, (2, 4, 5, 2 * g.W), np.float32)[:, 1::2, :, ::2]  # every other channel and column
    assert_same_bits(cuda_gpu.im2col(dev(x), g), numpy_ref.im2col(x, g))
    cols = _rand(rng, (2, g.K, g.Ho * g.Wo), np.float32).transpose(1, 0, 2)
    assert_same_bits(cuda_gpu.col2im(dev(cols), g), numpy_ref.col2im(cols, g))


# -- elementwise ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", [0.2, -0.5, 0.0])
@examples(5)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_leaky_relu_matches_reference(dtype, slope, shape, seed):
    rng = np.random.default_rng(seed)
    x = _rand(rng, shape, dtype)
    x.flat[0] = 0  # the kink: both take the slope branch (0 * -0.5 is -0.0, so the bits tell)
    dy = _rand(rng, shape, dtype)
    assert_same_bits(cuda_gpu.leaky_relu(dev(x), slope), numpy_ref.leaky_relu(x, slope))
    assert_same_bits(cuda_gpu.leaky_relu_grad(dev(dy), dev(x), slope),
                     numpy_ref.leaky_relu_grad(dy, x, slope))


def test_leaky_relu_takes_non_contiguous_inputs():
    rng = np.random.default_rng(2)
    x = _rand(rng, (6, 5), np.float32).T
    dy = _rand(rng, (5, 12), np.float32)[:, ::2]
    assert_same_bits(cuda_gpu.leaky_relu(dev(x), 0.2), numpy_ref.leaky_relu(x, 0.2))
    assert_same_bits(cuda_gpu.leaky_relu_grad(dev(dy), dev(x), 0.2),
                     numpy_ref.leaky_relu_grad(dy, x, 0.2))


@pytest.mark.parametrize("dtype", DTYPES)
@examples(6)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), p=st.sampled_from([0.0, 0.3, 0.9]),
       seed=st.integers(0, 2**63 - 1))
def test_dropout_matches_reference(dtype, shape, p, seed):
    """The same counter-based mask, bit for bit, and the same scaled values."""
    x = _rand(np.random.default_rng(seed % 2**32), shape, dtype)
    (y0, k0), (y1, k1) = numpy_ref.dropout(x, p, seed), cuda_gpu.dropout(dev(x), p, seed)
    assert k1.dtype == np.bool_ and k1.shape == x.shape
    assert_same_bits(k1, k0)
    assert_same_bits(y1, y0)
    dy = _rand(np.random.default_rng(1), shape, dtype)
    assert_same_bits(cuda_gpu.dropout_grad(dev(dy), dev(k0), p),
                     numpy_ref.dropout_grad(dy, k0, p))


def test_dropout_takes_non_contiguous_inputs():
    x = _rand(np.random.default_rng(4), (8, 6), np.float32).T
    (y0, k0), (y1, k1) = numpy_ref.dropout(x, 0.5, 99), cuda_gpu.dropout(dev(x), 0.5, 99)
    assert_same_bits(k1, k0)
    assert_same_bits(y1, y0)


@pytest.mark.parametrize("dtype", DTYPES)
@examples(4)
@given(size=st.integers(1, 300), k=st.integers(0, 2**64 - 1))
def test_keyed_normal_matches_reference(dtype, size, k):
    """The same hashes and Box-Muller in float64; the GPU's log and cos may differ by an ulp."""
    out = dev(np.full(size, np.nan, dtype))
    got = cuda_gpu.keyed_normal(out, k)
    assert got is out
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(host(got), numpy_ref.keyed_normal(np.empty(size, dtype), k), **tol)


@examples(6)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=2), k=st.integers(0, 2**64 - 1),
       high=st.sampled_from([1, 2, 7, 1000, 2**31 + 1]))
def test_keyed_integers_match_reference(shape, k, high):
    out = dev(np.full(shape, -1, np.int64))
    got = cuda_gpu.keyed_integers(out, k, high)
    assert got is out
    assert_same_bits(got, numpy_ref.keyed_integers(np.empty(shape, np.int64), k, high))


# -- the optimizer and the weight average ----------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@examples(4)
@given(size=st.integers(1, 600), seed=st.integers(0, 2**16))
def test_adam_update_matches_reference(dtype, size, seed):
    """Three steps on a flat buffer (several blocks, grid-stride), both moments and the parameters."""
    rng = np.random.default_rng(seed)
    params, grads = _rand(rng, size, dtype), _rand(rng, size, dtype)
    p0, m0, v0 = params.copy(), np.zeros(size, dtype), np.zeros(size, dtype)
    p1, m1, v1 = dev(params.copy()), dev(np.zeros(size, dtype)), dev(np.zeros(size, dtype))
    for t in range(1, 4):
        numpy_ref.adam_update(p0, grads * t, m0, v0, 1e-3, 0.5, 0.999, 1e-8, t)
        cuda_gpu.adam_update(p1, dev(grads * t), m1, v1, 1e-3, 0.5, 0.999, 1e-8, t)
    for ref, got in ((p0, p1), (m0, m1), (v0, v1)):
        np.testing.assert_allclose(host(got), ref, **TOL[dtype])


@pytest.mark.parametrize("avg_dtype", DTYPES)
@examples(4)
@given(size=st.integers(1, 600), seed=st.integers(0, 2**16))
def test_ema_update_matches_reference(avg_dtype, size, seed):
    """A float64 (or float32) average of float32 weights, bit for bit."""
    rng = np.random.default_rng(seed)
    theta, avg = rng.standard_normal(size).astype(np.float32), rng.standard_normal(size).astype(avg_dtype)
    ref, got = avg.copy(), dev(avg.copy())
    numpy_ref.ema_update(ref, theta, 1e-3)
    cuda_gpu.ema_update(got, dev(theta), 1e-3)
    assert_same_bits(got, ref)


# -- reductions ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("hw", [None, (1, 1), (3, 2)], ids=["NC", "NC11", "NC32"])
@examples(2)
@given(N=st.integers(2, 3), C=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_batchnorm_kernels_match_reference(dtype, training, hw, N, C, seed):
    """Statistics, normalise + affine and the gradient, for (N, C) and (N, C, H, W): a thread
    per channel (one value per channel and sample) and a block per channel."""
    rng = np.random.default_rng(seed)
    shape = (N, C) if hw is None else (N, C) + hw
    x = (_rand(rng, shape, dtype) * 3 + 1).astype(dtype)
    gamma, beta = _rand(rng, (C,), dtype), _rand(rng, (C,), dtype)
    mu, var = numpy_ref.batchnorm_stats(x)
    for ref, got in zip((mu, var), cuda_gpu.batchnorm_stats(dev(x))):
        assert got.dtype == dtype and got.shape == (C,)
        np.testing.assert_allclose(host(got), ref, **TOL[dtype])
    inv_std = (1 / np.sqrt(var + 1e-5)).astype(dtype)
    y0, xh0 = numpy_ref.batchnorm_apply(x, mu, inv_std, gamma, beta)
    y1, xh1 = cuda_gpu.batchnorm_apply(*map(dev, (x, mu, inv_std, gamma, beta)))
    assert_same_bits(xh1, xh0)
    assert_same_bits(y1, y0)
    dy = _rand(rng, shape, dtype)
    ref = numpy_ref.batchnorm_grad(dy, xh0, gamma, inv_std, training)
    got = cuda_gpu.batchnorm_grad(*map(dev, (dy, xh0, gamma, inv_std)), training)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), ref, got):
        assert b.dtype == dtype and b.shape == a.shape
        np.testing.assert_allclose(host(b), a, rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * 10,
                                   err_msg=name)
    if not training:  # dy * (gamma * inv_std), one product rounded once, as the reference's
        assert_same_bits(got[0], ref[0])


@pytest.mark.parametrize("dtype", DTYPES)
@examples(4)
@given(N=st.integers(1, 3), C=st.integers(1, 2), H=st.integers(1, 5), W=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_channel_sums_match_reference(dtype, N, C, H, W, seed):
    dy = _rand(np.random.default_rng(seed), (N, C, H, W), dtype)
    got = cuda_gpu.channel_sums(dev(dy))
    assert got.dtype == dtype
    np.testing.assert_allclose(host(got), numpy_ref.channel_sums(dy), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@examples(4)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3), scalar=st.booleans(),
       seed=st.integers(0, 2**16))
def test_bce_with_logits_matches_reference(dtype, shape, scalar, seed):
    rng = np.random.default_rng(seed)
    z = (_rand(rng, shape, dtype) * 30).astype(dtype)  # far into both tails
    t = dtype(rng.uniform()) if scalar else rng.uniform(size=shape).astype(dtype)
    v0, g0 = numpy_ref.bce_with_logits_sum(z, t)
    v1, g1 = cuda_gpu.bce_with_logits_sum(dev(z), t if scalar else dev(t))
    # the total stays on the device, a 0-d float64 array: reading it is the caller's choice
    assert type(v1) is type(dev(np.zeros(()))) and v1.shape == () and v1.dtype == np.float64
    assert g1.dtype == dtype and g1.shape == z.shape
    np.testing.assert_allclose(host(v1), v0, rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(host(g1), g0, **TOL[dtype])


def _reductions(x, dy, z):
    """Every reduction of the table on inputs that take several strides a thread (and several
    blocks for the loss); NumPy copies of the results."""
    C = x.shape[1]
    gamma, inv_std = np.linspace(0.5, 2, C).astype(x.dtype), np.linspace(1, 3, C).astype(x.dtype)
    out = list(cuda_gpu.batchnorm_stats(dev(x)))
    out += cuda_gpu.batchnorm_grad(dev(dy), dev(x), dev(gamma), dev(inv_std), True)
    out += [cuda_gpu.channel_sums(dev(dy))]
    out += cuda_gpu.bce_with_logits_sum(dev(z), 0.25)
    return [host(a).copy() for a in out]


@pytest.fixture(params=[None, 4, 8], ids=["table", "tpb4", "tpb8"])
def block_width(request, monkeypatch):
    """The table's block width, and under the simulator (where the table runs one thread a
    block and two blocks, for speed) a GPU's kind of launch too: several threads a block, so
    that the shared-memory trees and their barriers run, and three blocks, fewer than the
    channels (5) and the loss's blocks of partial sums, so that grid-stride loops wrap."""
    if request.param is not None:
        if not cuda_config.ENABLE_CUDASIM:
            pytest.skip("a compiled kernel's block width is fixed when it is compiled")
        monkeypatch.setattr(cuda_gpu, "TPB", request.param)
        monkeypatch.setattr(cuda_gpu, "MAX_BLOCKS", 3)
    return cuda_gpu.TPB


def test_reductions_agree_with_reference_over_several_strides_and_blocks(block_width):
    rng = np.random.default_rng(11)
    # m = 330 values a channel: not a multiple of any block width; 5 channels over at most 3 blocks
    x, dy = _rand(rng, (3, 5, 11, 10), np.float32), _rand(rng, (3, 5, 11, 10), np.float32)
    z = _rand(rng, 3 * cuda_gpu.TPB + 5, np.float32) * 5  # four blocks' worth of partial sums
    mu, var, dx, dgamma, dbeta, sums, total, grad = _reductions(x, dy, z)
    np.testing.assert_allclose(mu, numpy_ref.batchnorm_stats(x)[0], **TOL[np.float32])
    np.testing.assert_allclose(var, numpy_ref.batchnorm_stats(x)[1], **TOL[np.float32])
    C = x.shape[1]
    gamma, inv_std = np.linspace(0.5, 2, C).astype(np.float32), np.linspace(1, 3, C).astype(np.float32)
    for a, b in zip((dx, dgamma, dbeta), numpy_ref.batchnorm_grad(dy, x, gamma, inv_std, True)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sums, numpy_ref.channel_sums(dy), rtol=1e-5, atol=1e-5)
    v0, g0 = numpy_ref.bce_with_logits_sum(z, np.float32(0.25))
    np.testing.assert_allclose(total, v0, rtol=1e-6)
    np.testing.assert_allclose(grad, g0, **TOL[np.float32])


def test_reductions_give_identical_results_twice(block_width):
    """No atomics and a fixed order: the same inputs give the same bits, call after call."""
    rng = np.random.default_rng(12)
    x, dy = _rand(rng, (3, 5, 11, 10), np.float64), _rand(rng, (3, 5, 11, 10), np.float64)
    z = _rand(rng, 2 * cuda_gpu.TPB + 1, np.float64)
    for a, b in zip(_reductions(x, dy, z), _reductions(x, dy, z)):
        np.testing.assert_array_equal(a, b)


def test_reductions_take_non_contiguous_inputs():
    rng = np.random.default_rng(13)
    x = _rand(rng, (3, 4, 3, 2), np.float32)[:, ::2]  # channels 0 and 2
    for a, b in zip(cuda_gpu.batchnorm_stats(dev(x)), numpy_ref.batchnorm_stats(x)):
        np.testing.assert_allclose(host(a), b, **TOL[np.float32])
    dy = _rand(rng, (2, 4, 3, 3), np.float32).transpose(0, 1, 3, 2)
    np.testing.assert_allclose(host(cuda_gpu.channel_sums(dev(dy))), numpy_ref.channel_sums(dy),
                               **TOL[np.float32])
    z = _rand(rng, (4, 6), np.float32).T
    t = rng.uniform(size=(6, 4)).astype(np.float32)
    v0, g0 = numpy_ref.bce_with_logits_sum(z, t)
    v1, g1 = cuda_gpu.bce_with_logits_sum(dev(z), dev(t))
    np.testing.assert_allclose(host(v1), v0, rtol=1e-6)
    np.testing.assert_allclose(host(g1), g0, **TOL[np.float32])


def test_zz_every_launch_above_has_a_recorded_signature():
    """Runs last: each launch the tests above made has its argument types among
    ``runtime/gpu.py``'s SIGNATURES, and every kernel was launched."""
    if not SIMULATED:
        pytest.skip("the launches are recorded under the simulator")
    if len(LAUNCHED) < len(cuda_gpu.SIGNATURES):
        pytest.skip("only part of this file ran")
    from numba.core.sigutils import normalize_signature

    recorded = {name: {normalize_signature(s)[0] for s in sigs}
                for name, sigs in cuda_gpu.kernel_signatures().items()}
    unknown = {name: [str(t) for t in types - recorded[name]] for name, types in LAUNCHED.items()
               if types - recorded[name]}
    assert not unknown, unknown

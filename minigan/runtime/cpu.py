"""The CPU's kernel table: Numba twins of the reference code, and per-thread BLAS batches.

Each function in :data:`TABLE` has the name, signature and results of the
reference function it replaces (see :mod:`minigan.runtime.registry`; the references
live with their math, e.g. ``im2col`` in :mod:`minigan.nn.conv.reference`).
All kernels are ``parallel=True`` (the threads split the outermost loop, so
no two threads write the same element) and ``cache=True`` (compiled once per
install, not once per process, into the per-user folder of
:mod:`minigan.runtime.numba_cache`).

* ``im2col`` writes every column entry once, out-of-range taps as zero
  (padding is fused: no padded copy of the image is made), parallel over
  the (sample, channel) planes.
* ``col2im`` is parallel over samples and writes every output element once,
  with no atomics: a sample's taps are first summed, as whole Ho x Wo blocks,
  into small private planes (one per stride phase and column shift, so each
  tap is one contiguous, vectorised run of adds), and each image pixel then
  gathers the few plane values that land on it.
* The elementwise kernels (LeakyReLU, dropout, Adam over a model's flat
  parameter buffer) fuse what NumPy does in several passes with
  temporaries into one pass;
  BatchNorm is three kernels (statistics; normalise + affine; both gradient
  sums and dx), each one sweep per channel.  The affine output's kernel and the
  bias add can also apply the LeakyReLU that follows the layer, and the
  gradient kernel its derivative (the ``batchnorm_leaky_*`` twins and the
  slope of ``add_channel_bias``): a pass over the activation saved each way.

Scalars that enter float32 arithmetic are passed as ``x.dtype.type(...)``
so Numba keeps the arithmetic in the array's precision, as NumPy does.
"""
from __future__ import annotations

import math
import types

import numba
import numpy as np
from numba import njit, prange
from numba.core.caching import NullCache

from .blas import batched_matmul
from .numba_cache import cache_in_home
from .randomness import GOLDEN, MIX1, MIX2

_jit = dict(parallel=True, cache=True, nogil=True)


def _njit(cache=False, **options):
    """``numba.njit``, with ``cache=True`` meaning minigan's per-user kernel cache
    (:mod:`minigan.runtime.numba_cache`), never a folder inside the installed package."""
    def make(fn):
        dispatcher = njit(**options)(fn)
        return cache_in_home(dispatcher) if cache else dispatcher
    return make

# Below this much work a kernel runs on the calling thread alone.  Work is
# counted in streaming passes over one element: an elementwise kernel costs
# its size; the layout kernels (im2col, col2im, the phase splits and transposes),
# which gather with strides, cost about GATHER_COST times that per element;
# BatchNorm's statistics and gradient make two passes.  Each parallel launch
# is a barrier: on a shared machine a descheduled worker stalls the call for a
# scheduler tick (a 64x128 LeakyReLU: 5 us median, 4 ms worst), and an
# elementwise pass of up to ~1e6 elements gains nothing from a second thread,
# while the layout kernels of that size do (the timings: benchmarks/HISTORY.md).
PARALLEL_MIN = 1 << 20
GATHER_COST = 8


def _launch(kernel, work, *args):
    """Run ``kernel(*args)``, in parallel only if ``work`` (elements) is large enough."""
    return (kernel if work >= PARALLEL_MIN else _serial(kernel))(*args)


_serial_twins: dict = {}


def _serial(kernel):
    """``kernel`` compiled a second time without ``parallel`` (its ``prange`` runs as ``range``).

    Small work takes this twin rather than the parallel kernel with the
    thread count set to 1 around it: switching Numba's thread count costs
    ~10 us a launch, most of a small LeakyReLU (MLP step, 12 launches:
    1.57 -> ~1.45 ms).  The twin gets its own name, so its compiled code is
    cached apart from the parallel one (``cache`` is no target option: Numba
    keeps it on the dispatcher, as a cache object, so it is passed on here).
    """
    twin = _serial_twins.get(kernel)
    if twin is None:
        f = kernel.py_func
        g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__,
                               f.__closure__)
        g.__qualname__ = f.__qualname__ + "_serial"
        opts = {k: v for k, v in kernel.targetoptions.items() if k in ("nogil", "error_model", "fastmath")}
        twin = _serial_twins[kernel] = _njit(cache=not isinstance(kernel._cache, NullCache), **opts)(g)
    return twin


# -- the conv engine ------------------------------------------------------------

@_njit(**_jit)
def _im2col(x, kh, kw, sh, sw, pt, pl, Ho, Wo, cols):
    # One tap (c, i, j) a task: its row cols[tap] (N * Ho * Wo values) is written
    # front to back by one thread.  A task per image plane instead had every thread
    # write short runs spread over all K rows, which ran 2-3x slower.
    N, C, H, W = x.shape
    for tap in prange(C * kh * kw):
        c = tap // (kh * kw)
        i = (tap // kw) % kh
        j = tap % kw
        # the output columns whose tap j lands inside the image: no test per value
        lo = min(Wo, max(0, (pl - j + sw - 1) // sw))
        hi = max(lo, min(Wo, (W - 1 + pl - j) // sw + 1))
        for n in range(N):
            row = cols[tap, n]  # Ho*Wo values
            for oh in range(Ho):
                h = oh * sh + i - pt
                o = oh * Wo
                if h < 0 or h >= H:
                    for ow in range(Wo):
                        row[o + ow] = 0
                    continue
                # plain loops: a slice per run cost more than the run (Wo = 14)
                for ow in range(lo):
                    row[o + ow] = 0
                for ow in range(lo, hi):
                    row[o + ow] = x[n, c, h, ow * sw + j - pl]
                for ow in range(hi, Wo):
                    row[o + ow] = 0


@_njit(**_jit)
def _col2im(cols, C, H, W, kh, kw, sh, sw, pt, pl, Ho, Wo, out):
    # Tap (i, j) puts its Ho x Wo values at padded pixels
    # (oh*sh + i, ow*sw + j) = ((oh + di)*sh + a, (ow + dj)*sw + b) with
    # di, a = divmod(i, sh) and dj, b = divmod(j, sw).
    # So, per phase (a, b) and column shift dj, a plane of Hq x Wo sums the
    # taps as whole blocks: one contiguous run of Ho*Wo adds per tap, which
    # vectorises (a 14-wide run per output row did not: D's first conv,
    # 0.3 ms).  Each image row is then gathered phase by phase, adding the
    # dj planes shifted by dj, and every output value is written once.
    N = cols.shape[1]
    P = Ho * Wo
    nj = (kw - 1) // sw + 1
    Hq = Ho + (kh - 1) // sh
    S = Hq * Wo
    Wq = Wo + nj - 1
    for n in prange(N):
        acc = np.empty(sh * sw * nj * S, cols.dtype)
        rs = np.empty(Wq, cols.dtype)
        for c in range(C):
            acc[:] = 0
            for i in range(kh):
                a = i % sh
                o = (i // sh) * Wo
                for j in range(kw):
                    src = cols[(c * kh + i) * kw + j, n]
                    p0 = ((a * sw + j % sw) * nj + j // sw) * S + o
                    dst = acc[p0:p0 + P]
                    for p in range(P):
                        dst[p] += src[p]
            for h in range(H):
                hp = h + pt
                r = hp // sh
                orow = out[n, c, h]
                if r >= Hq:  # below every window
                    orow[:] = 0
                    continue
                row0 = (hp - r * sh) * sw * nj * S + r * Wo
                for b in range(sw):
                    rs[:] = 0
                    for dj in range(nj):
                        src = acc[row0 + (b * nj + dj) * S:row0 + (b * nj + dj) * S + Wo]
                        dst = rs[dj:dj + Wo]
                        for q in range(Wo):
                            dst[q] += src[q]
                    # image column w = qq*sw + b - pl
                    for qq in range((pl - b + sw - 1) // sw if pl > b else 0, Wq):
                        w = qq * sw + b - pl
                        if w >= W:
                            break
                        orow[w] = rs[qq]
                for w in range(max(0, Wq * sw - pl), W):  # right of every window
                    orow[w] = 0


def im2col(x, g, out=None):
    x = np.ascontiguousarray(x)
    N = x.shape[0]
    if out is None:
        out = np.empty((g.K, N, g.Ho * g.Wo), dtype=x.dtype)
    _launch(_im2col, GATHER_COST * out.size, x, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.Ho, g.Wo, out)
    return out


def col2im(cols, g, out=None):
    cols = np.ascontiguousarray(cols)
    if out is None:
        out = np.empty((cols.shape[1], g.C, g.H, g.W), dtype=cols.dtype)
    _launch(_col2im, GATHER_COST * cols.size, cols, g.C, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl,
            g.Ho, g.Wo, out)
    return out


# -- the spectral engine's layouts ----------------------------------------------------

@_njit(**_jit)
def _split_phases(x, out):
    N, C, H, W = x.shape
    sh, sw, Hp, Wp = out.shape[2:]
    for q in prange(N * C):
        n = q // C
        c = q - n * C
        for a in range(sh):
            for b in range(sw):
                for m in range(Hp):
                    h = m * sh + a
                    for l in range(Wp):
                        w = l * sw + b
                        out[n, c, a, b, m, l] = x[n, c, h, w] if h < H and w < W else 0


@_njit(**_jit)
def _merge_phases(r, out):
    # phase by phase, as _split_phases, rather than pixel by pixel with a
    # divmod each: about twice as fast (benchmarks/HISTORY.md, the spectral engine's runs)
    N, C, H, W = out.shape
    sh, sw, Hp, Wp = r.shape[2:]
    for q in prange(N * C):
        n = q // C
        c = q - n * C
        for a in range(sh):
            for m in range(min(Hp, (H - a + sh - 1) // sh)):
                h = m * sh + a
                for b in range(sw):
                    for l in range(min(Wp, (W - b + sw - 1) // sw)):
                        out[n, c, h, l * sw + b] = r[n, c, a, b, m, l]


def split_phases(x, sh, sw, Hp, Wp):
    out = np.empty(x.shape[:2] + (sh, sw, Hp, Wp), dtype=x.dtype)
    _launch(_split_phases, GATHER_COST * out.size, np.ascontiguousarray(x), out)
    return out


def merge_phases(r, H, W):
    out = np.empty(r.shape[:2] + (H, W), dtype=r.dtype)
    _launch(_merge_phases, GATHER_COST * out.size, np.ascontiguousarray(r), out)
    return out


# The rows hold each complex value's two parts side by side, so a row is a
# complex row in memory and both directions are one transpose of complex
# values.  It goes in blocks of the long side (B): a block of rows (BLOCK x
# F values, a few KB) stays in the L1 cache while each frequency's run of
# the block is written (or read) contiguously.  32768 x 41 complex64 values
# (10.7 MB): 0.9-1.1 ms each way, against 0.65 ms for a plain copy.
_SPEC_BLOCK = 64


@_njit(**_jit)
def _transpose_blocks(a, out):
    """``out = a.T`` in blocks of the long side; the short side (F) is walked whole."""
    R, C = out.shape
    if C >= R:
        for blk in prange((C + _SPEC_BLOCK - 1) // _SPEC_BLOCK):
            c0 = blk * _SPEC_BLOCK
            c1 = min(C, c0 + _SPEC_BLOCK)
            for r in range(R):
                for c in range(c0, c1):
                    out[r, c] = a[c, r]
    else:
        for blk in prange((R + _SPEC_BLOCK - 1) // _SPEC_BLOCK):
            r0 = blk * _SPEC_BLOCK
            r1 = min(R, r0 + _SPEC_BLOCK)
            for c in range(C):
                for r in range(r0, r1):
                    out[r, c] = a[c, r]


def _complex_view(r):
    return np.ascontiguousarray(r).view(np.result_type(r.dtype, np.complex64))


def rows_to_spectrum(r):
    rc = _complex_view(r)  # (B, F)
    z = np.empty(rc.shape[::-1], dtype=rc.dtype)
    _launch(_transpose_blocks, GATHER_COST * r.size, rc, z)
    return z


def spectrum_to_rows(z):
    rc = np.empty(z.shape[::-1], dtype=z.dtype)
    _launch(_transpose_blocks, GATHER_COST * 2 * z.size, np.ascontiguousarray(z), rc)
    return rc.view(z.real.dtype)


# -- elementwise ---------------------------------------------------------------------

@_njit(**_jit)
def _leaky_relu(x, slope, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if v > 0 else v * slope


@_njit(**_jit)
def _leaky_relu_grad(dy, x, slope, dx):
    for i in prange(x.size):
        d = dy[i]
        dx[i] = d if x[i] > 0 else d * slope


def leaky_relu(x, slope):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _launch(_leaky_relu, x.size, x.reshape(-1), x.dtype.type(slope), y.reshape(-1))
    return y


def leaky_relu_grad(dy, x, slope):
    dy = np.ascontiguousarray(dy)
    dx = np.empty_like(dy)
    _launch(_leaky_relu_grad, dy.size, dy.reshape(-1), np.ascontiguousarray(x).reshape(-1),
            dy.dtype.type(slope), dx.reshape(-1))
    return dx


# Adam runs over a model's whole flat parameter buffer in one launch, cut into
# chunks of ADAM_CHUNK elements (a launch per parameter cost more than the
# update of the small ones: a 128-wide bias, 7 us for 128 elements).  Below
# PARALLEL_MIN elements the serial twin runs, with no thread-count switching.
ADAM_CHUNK = 1 << 14


@_njit(cache=True, nogil=True, error_model="numpy")
def _adam_range(p, g, m, v, lo, hi, b1, a1, b2, a2, step, c2, eps):
    # unsigned bounds: with signed ones Numba checks each index for
    # wraparound, which kept LLVM from vectorising (100k elements: 347 -> 41 us)
    for i in range(np.uint64(lo), np.uint64(hi)):
        gi = g[i]
        mi = b1 * m[i] + a1 * gi
        vi = b2 * v[i] + a2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (math.sqrt(vi / c2) + eps)


@_njit(**_jit)
def _adam_chunks(p, g, m, v, b1, a1, b2, a2, step, c2, eps):
    n = p.size
    for c in prange((n + ADAM_CHUNK - 1) // ADAM_CHUNK):
        lo = c * ADAM_CHUNK
        _adam_range(p, g, m, v, lo, min(n, lo + ADAM_CHUNK), b1, a1, b2, a2, step, c2, eps)


def adam_update(p, g, m, v, lr, b1, b2, eps, t):
    """One Adam step in place over flat buffers (see :func:`minigan.optim.adam_update`)."""
    f = p.dtype.type
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    _launch(_adam_chunks, p.size, p, g, m, v, f(b1), f(1 - b1), f(b2), f(1 - b2), f(lr / c1), f(c2),
            f(eps))


@_njit(**_jit)
def _ema_chunks(avg, theta, w):
    n = avg.size
    for c in prange((n + ADAM_CHUNK - 1) // ADAM_CHUNK):
        for i in range(np.uint64(c * ADAM_CHUNK), np.uint64(min(n, (c + 1) * ADAM_CHUNK))):
            a = avg[i]
            avg[i] = a + w * (theta[i] - a)  # theta promoted to avg's dtype, as in the reference


def ema_update(avg, theta, weight):
    """``avg += weight * (theta - avg)`` over flat buffers, one launch (see
    :func:`minigan.gan.averaging.ema_update`)."""
    _launch(_ema_chunks, avg.size, avg, theta, avg.dtype.type(weight))


# -- losses ------------------------------------------------------------------------

@_njit(cache=True, nogil=True)
def _bce_with_logits(z, t, t_scalar, grad):
    total = 0.0
    for i in range(z.size):
        zi = z[i]
        ti = t_scalar if t.size == 0 else t[i]
        e = math.exp(-abs(zi))
        total += max(zi, 0.0) - zi * ti + math.log1p(e)
        grad[i] = (1 / (1 + e) if zi >= 0 else e / (1 + e)) - ti
    return total


def bce_with_logits_sum(z, t):
    """One pass instead of NumPy's dozen (the GAN losses run on (N, 1) outputs, where
    each NumPy call's overhead is the cost: 3 losses of the MLP step ~0.1 ms)."""
    if not isinstance(t, (int, float, np.floating)) and np.ndim(t) != 0:
        t = np.broadcast_to(np.asarray(t, dtype=z.dtype), z.shape)
        t, t_scalar = np.ascontiguousarray(t).reshape(-1), z.dtype.type(0)
    else:
        t, t_scalar = np.empty(0, z.dtype), z.dtype.type(t)
    grad = np.empty_like(z)
    total = _bce_with_logits(np.ascontiguousarray(z).reshape(-1), t, t_scalar, grad.reshape(-1))
    return float(total), grad


# -- batch normalisation ------------------------------------------------------------------
# A sample is viewed as one row of L = C*S values, S = H*W for images and 1 for
# (N, C): channel c owns positions [c*S, (c+1)*S).  The loops sum over the batch
# first, position by position (n outer, position inner: contiguous and
# vectorised whatever S is -- a loop per channel with an inner loop over S
# measured 12x slower for S = 1), then fold each channel's S positions.  The
# channels are split into ``parts`` contiguous ranges, one per thread; sums
# are float64 and do not depend on the split.


@_njit(cache=True)
def _part(b, parts, C):
    """Channels ``[c0, c1)`` of part ``b`` of ``parts``."""
    return b * C // parts, (b + 1) * C // parts


@_njit(cache=True)
def _fold(t, S):
    """Per-channel sums of per-position sums ``t``."""
    out = np.zeros(t.size // S)
    for c in range(out.size):
        for s in range(S):
            out[c] += t[c * S + s]
    return out


@_njit(cache=True)
def _spread(v, c0, c1, S):
    """Per-channel values ``v[c0:c1]`` repeated over each channel's S positions."""
    out = np.empty((c1 - c0) * S, v.dtype)
    for c in range(c0, c1):
        out[(c - c0) * S:(c - c0 + 1) * S] = v[c]
    return out


@_njit(**_jit)
def _bn_stats(x, S, parts, mu, var):
    N, L = x.shape
    for b in prange(parts):
        c0, c1 = _part(b, parts, L // S)
        P = (c1 - c0) * S  # this part's positions, [c0*S, c1*S) of each row
        t = np.zeros(P)
        for n in range(N):
            xr = x[n, c0 * S:c1 * S]  # zero-based 1-D views keep the inner loops vectorised
            for i in range(P):
                t[i] += xr[i]
        m = _fold(t, S) / (N * S)
        mi = _spread(m, 0, c1 - c0, S)
        q = np.zeros(P)
        for n in range(N):
            xr = x[n, c0 * S:c1 * S]
            for i in range(P):
                d = xr[i] - mi[i]
                q[i] += d * d
        mu[c0:c1] = m
        var[c0:c1] = _fold(q, S) / (N * S)


@_njit(**_jit)
def _bn_apply(x, S, parts, mu, inv_std, gamma, beta, slope, y, xh):
    # y = leaky(gamma * xh + beta); slope 1 leaves it affine (v * 1 is v, bit for bit)
    N, L = x.shape
    for b in prange(parts):
        c0, c1 = _part(b, parts, L // S)
        m, k = _spread(mu, c0, c1, S), _spread(inv_std, c0, c1, S)
        g, bt = _spread(gamma, c0, c1, S), _spread(beta, c0, c1, S)
        for n in range(N):
            xr, hr, yr = x[n, c0 * S:c1 * S], xh[n, c0 * S:c1 * S], y[n, c0 * S:c1 * S]
            for i in range(m.size):
                h = (xr[i] - m[i]) * k[i]
                hr[i] = h
                v = g[i] * h + bt[i]
                yr[i] = v if v > 0 else v * slope


@njit(inline="always")
def _through_leaky(d, h, g, bt, slope):
    """``d`` through the derivative of ``leaky(g * h + bt)``, read from the sign of its input."""
    return d if g * h + bt > 0 else d * slope


@_njit(**_jit)
def _bn_grad(dy, xh, S, parts, gamma, beta, inv_std, slope, training, dx, dgamma, dbeta):
    # dy is the gradient of leaky(gamma * xh + beta); slope 1 makes it the affine output's
    N, L = dy.shape
    for b in prange(parts):
        c0, c1 = _part(b, parts, L // S)
        P = (c1 - c0) * S
        g, bt = _spread(gamma, c0, c1, S), _spread(beta, c0, c1, S)
        tb = np.zeros(P)
        tg = np.zeros(P)
        for n in range(N):
            dr, hr = dy[n, c0 * S:c1 * S], xh[n, c0 * S:c1 * S]
            for i in range(P):
                d = _through_leaky(dr[i], hr[i], g[i], bt[i], slope)
                tb[i] += d
                tg[i] += d * hr[i]
        sb, sg = _fold(tb, S), _fold(tg, S)
        dbeta[c0:c1] = sb
        dgamma[c0:c1] = sg
        if not training:  # mu and var are constants: no mean terms
            sb[:] = 0.0
            sg[:] = 0.0
        k = _spread(gamma * inv_std, c0, c1, S)
        mb = _spread(sb / (N * S), 0, c1 - c0, S)
        mg = _spread(sg / (N * S), 0, c1 - c0, S)
        for n in range(N):
            dr, hr, xr = dy[n, c0 * S:c1 * S], xh[n, c0 * S:c1 * S], dx[n, c0 * S:c1 * S]
            for i in range(P):
                d = _through_leaky(dr[i], hr[i], g[i], bt[i], slope)
                xr[i] = k[i] * (d - mb[i] - hr[i] * mg[i])


def _rows(a):
    """``(N, C)`` or ``(N, C, H, W)`` as contiguous ``(N, C*S)`` rows, and S."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0], -1), a.size // (a.shape[0] * a.shape[1])


def batchnorm_stats(x):
    C = x.shape[1]
    mu, var = np.empty(C, x.dtype), np.empty(C, x.dtype)
    _launch(_bn_stats, 2 * x.size, *_rows(x), numba.get_num_threads(), mu, var)
    return mu, var


def batchnorm_leaky_apply(x, mu, inv_std, gamma, beta, slope):
    x2, S = _rows(x)
    y, xh = np.empty_like(x2), np.empty_like(x2)
    f = x.dtype.type
    _launch(_bn_apply, x.size, x2, S, numba.get_num_threads(), mu.astype(f, copy=False),
            inv_std.astype(f, copy=False), gamma, beta, f(slope), y, xh)
    return y.reshape(x.shape), xh.reshape(x.shape)


def batchnorm_apply(x, mu, inv_std, gamma, beta):
    return batchnorm_leaky_apply(x, mu, inv_std, gamma, beta, 1.0)


def batchnorm_leaky_grad(dy, xh, gamma, beta, inv_std, training, slope):
    dy2, S = _rows(dy)
    C = dy.shape[1]
    dx = np.empty_like(dy2)
    dgamma, dbeta = np.empty(C, dy.dtype), np.empty(C, dy.dtype)
    _launch(_bn_grad, 2 * dy.size, dy2, _rows(xh)[0], S, numba.get_num_threads(), gamma, beta,
            inv_std.astype(dy.dtype, copy=False), dy.dtype.type(slope), bool(training), dx, dgamma,
            dbeta)
    return dx.reshape(dy.shape), dgamma, dbeta


def batchnorm_grad(dy, xh, gamma, inv_std, training):
    return batchnorm_leaky_grad(dy, xh, gamma, np.zeros_like(gamma), inv_std, training, 1.0)


# -- dropout ---------------------------------------------------------------------------
# The mask is the same hash of (seed, element index) as the reference's
# (SplitMix64's finaliser, :func:`minigan.nn.misc.keep_mask`), so it is
# generated in parallel, in one pass with the multiply, and does not depend on
# the thread count or the device.

_GOLDEN, _MIX1, _MIX2 = (np.uint64(c) for c in (GOLDEN, MIX1, MIX2))  # uint64 operands


@_njit(**_jit)
def _dropout(x, seed, threshold, scale, y, keep):
    for i in prange(x.size):
        z = seed + np.uint64(i) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
        k = (z >> np.uint64(40)) >= threshold  # u = top 24 bits / 2^24; keep if u >= p
        keep[i] = k
        y[i] = x[i] * scale if k else 0


@_njit(**_jit)
def _dropout_grad(dy, keep, scale, dx):
    for i in prange(dy.size):
        dx[i] = dy[i] * scale if keep[i] else 0


def dropout(x, p, seed):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    keep = np.empty(x.shape, dtype=np.bool_)
    threshold = np.uint64(math.ceil(p * 2**24))
    _launch(_dropout, x.size, x.reshape(-1), np.uint64(seed), threshold, x.dtype.type(1.0 / (1.0 - p)),
            y.reshape(-1), keep.reshape(-1))
    return y, keep


def dropout_grad(dy, keep, p):
    dy = np.ascontiguousarray(dy)
    dx = np.empty_like(dy)
    _launch(_dropout_grad, dy.size, dy.reshape(-1), keep.reshape(-1), dy.dtype.type(1.0 / (1.0 - p)),
            dx.reshape(-1))
    return dx


# -- sums over every axis but the channel's -------------------------------------------

_ones_store: dict = {}


@_njit(**_jit)
def _add_channel_bias(y, b, slope):
    N, C, P = y.shape
    for nc in prange(N * C):
        v = b[nc % C]
        row = y[nc // C, nc % C]
        for q in range(P):
            t = row[q] + v
            row[q] = t if t > 0 else t * slope


@_njit(**_jit)
def _add_row_bias(y, b, slope):
    # (N, C): vectorised along a sample's row, where a loop per (n, c) would run one element
    for n in prange(y.shape[0]):
        row = y[n]
        for c in range(row.size):
            t = row[c] + b[c]
            row[c] = t if t > 0 else t * slope


def add_channel_bias(y, b, slope=1.0):
    """``y[n, c] = leaky(y[n, c] + b[c])`` in place: one pass with the channel's value in a
    register, where NumPy's broadcast add took 0.49 ms on D's first conv's output at batch 128
    (0.2 ms so) and the LeakyReLU after it another pass over the output."""
    if not y.flags.c_contiguous:
        y += b.reshape((1, -1) + (1,) * (y.ndim - 2))
        if slope != 1:
            np.copyto(y, np.where(y > 0, y, y * y.dtype.type(slope)))
        return y
    N, C = y.shape[:2]
    b, s = np.ascontiguousarray(b, dtype=y.dtype), y.dtype.type(slope)
    if y.size == N * C:
        _launch(_add_row_bias, y.size, y.reshape(N, C), b, s)
    else:
        _launch(_add_channel_bias, y.size, y.reshape(N, C, -1), b, s)
    return y


@_njit(**_jit)
def _add_label_bias(y, T, labels, slope):
    for n in prange(y.shape[0]):
        row, t = y[n], T[labels[n]]
        for q in range(row.size):
            v = row[q] + t[q]
            row[q] = v if v > 0 else v * slope


def add_label_bias(y, T, labels, slope=1.0):
    """``y[n] = leaky(y[n] + T[labels[n]])`` in place: one pass, where NumPy's ``y +=
    T[labels]`` gathers the (N, ...) rows into a temporary first and the ReLU is a second."""
    if not (y.flags.c_contiguous and T.flags.c_contiguous and T.dtype == y.dtype):
        y += T[labels]
        if slope != 1:
            np.copyto(y, np.where(y > 0, y, y * y.dtype.type(slope)))
        return y
    N, K = y.shape[0], T.shape[0]
    _launch(_add_label_bias, y.size, y.reshape(N, -1), T.reshape(K, -1),
            np.ascontiguousarray(labels, dtype=np.int64), y.dtype.type(slope))
    return y


def _ones(n, dtype):
    """A length-``n`` vector of ones, kept between calls."""
    v = _ones_store.get(np.dtype(dtype))
    if v is None or v.size < n:
        v = _ones_store[np.dtype(dtype)] = np.ones(max(n, 1), dtype=dtype)
    return v[:n]


def channel_sums(dy):
    """``dy (N, C, H, W) -> (C,)``, summed as products with vectors of ones (GEMVs), which
    NumPy's reduction over axes (0, 2, 3) is not: D's second conv's bias gradient at
    batch 2 x 64, (128, 128, 7, 7), 461 -> 56 us."""
    dy = np.ascontiguousarray(dy)
    N, C = dy.shape[:2]
    per_plane = dy.reshape(N * C, -1) @ _ones(dy[0, 0].size if N else 1, dy.dtype)
    return _ones(N, dy.dtype) @ per_plane.reshape(N, C)


# -- the Winograd engine's transforms -----------------------------------------------
# One task a tile of one sample; each works on an (alpha, alpha, channels) block in
# its own scratch, the channels innermost and contiguous, so every step of a
# transform is a run of vector multiply-adds over the channels, and a tile's
# (alpha^2, channels) block of V or M is contiguous.  For alpha = 8 on both axes
# (the lean pair's 7 x 7 outputs) each stage of a transform is _mix8's one sweep
# over 8 rows; other sizes loop over the matrices' entries, zero entries skipped
# (a third to a half of them).

@njit(inline="always")
def _tile(t, th, tw):
    """Tile ``t`` of the batch's ``N * th * tw``: ``(sample, tile row, tile column)``."""
    return t // (th * tw), (t // tw) % th, t % tw


@_njit(cache=True)
def _mix8(C, src, s, ts, dst, d, td):
    """``dst[d + i, td] = sum_u C[i, u] src[s + u, ts]`` for ``i, u < 8``: 8 rows in, 8 out, in one
    sweep along them that keeps a column's 8 values and 8 sums in registers (a loop over the
    entries of C reads and writes every row up to 8 times: 2-3x slower).  Called, not inlined:
    inlined into a kernel that slices its arrays, the sweep ran 5x slower."""
    c00, c01, c02, c03, c04, c05, c06, c07 = (
        C[0, 0], C[0, 1], C[0, 2], C[0, 3], C[0, 4], C[0, 5], C[0, 6], C[0, 7])
    c10, c11, c12, c13, c14, c15, c16, c17 = (
        C[1, 0], C[1, 1], C[1, 2], C[1, 3], C[1, 4], C[1, 5], C[1, 6], C[1, 7])
    c20, c21, c22, c23, c24, c25, c26, c27 = (
        C[2, 0], C[2, 1], C[2, 2], C[2, 3], C[2, 4], C[2, 5], C[2, 6], C[2, 7])
    c30, c31, c32, c33, c34, c35, c36, c37 = (
        C[3, 0], C[3, 1], C[3, 2], C[3, 3], C[3, 4], C[3, 5], C[3, 6], C[3, 7])
    c40, c41, c42, c43, c44, c45, c46, c47 = (
        C[4, 0], C[4, 1], C[4, 2], C[4, 3], C[4, 4], C[4, 5], C[4, 6], C[4, 7])
    c50, c51, c52, c53, c54, c55, c56, c57 = (
        C[5, 0], C[5, 1], C[5, 2], C[5, 3], C[5, 4], C[5, 5], C[5, 6], C[5, 7])
    c60, c61, c62, c63, c64, c65, c66, c67 = (
        C[6, 0], C[6, 1], C[6, 2], C[6, 3], C[6, 4], C[6, 5], C[6, 6], C[6, 7])
    c70, c71, c72, c73, c74, c75, c76, c77 = (
        C[7, 0], C[7, 1], C[7, 2], C[7, 3], C[7, 4], C[7, 5], C[7, 6], C[7, 7])
    a0, a1, a2, a3, a4, a5, a6, a7 = (
        src[s + 0, ts], src[s + 1, ts], src[s + 2, ts], src[s + 3, ts],
        src[s + 4, ts], src[s + 5, ts], src[s + 6, ts], src[s + 7, ts])
    b0, b1, b2, b3, b4, b5, b6, b7 = (
        dst[d + 0, td], dst[d + 1, td], dst[d + 2, td], dst[d + 3, td],
        dst[d + 4, td], dst[d + 5, td], dst[d + 6, td], dst[d + 7, td])
    for q in range(a0.size):
        x0, x1, x2, x3, x4, x5, x6, x7 = a0[q], a1[q], a2[q], a3[q], a4[q], a5[q], a6[q], a7[q]
        b0[q] = (c00 * x0 + c01 * x1 + c02 * x2 + c03 * x3
                 + c04 * x4 + c05 * x5 + c06 * x6 + c07 * x7)
        b1[q] = (c10 * x0 + c11 * x1 + c12 * x2 + c13 * x3
                 + c14 * x4 + c15 * x5 + c16 * x6 + c17 * x7)
        b2[q] = (c20 * x0 + c21 * x1 + c22 * x2 + c23 * x3
                 + c24 * x4 + c25 * x5 + c26 * x6 + c27 * x7)
        b3[q] = (c30 * x0 + c31 * x1 + c32 * x2 + c33 * x3
                 + c34 * x4 + c35 * x5 + c36 * x6 + c37 * x7)
        b4[q] = (c40 * x0 + c41 * x1 + c42 * x2 + c43 * x3
                 + c44 * x4 + c45 * x5 + c46 * x6 + c47 * x7)
        b5[q] = (c50 * x0 + c51 * x1 + c52 * x2 + c53 * x3
                 + c54 * x4 + c55 * x5 + c56 * x6 + c57 * x7)
        b6[q] = (c60 * x0 + c61 * x1 + c62 * x2 + c63 * x3
                 + c64 * x4 + c65 * x5 + c66 * x6 + c67 * x7)
        b7[q] = (c70 * x0 + c71 * x1 + c72 * x2 + c73 * x3
                 + c74 * x4 + c75 * x5 + c76 * x6 + c77 * x7)


@_njit(**_jit)
def _wino_image(x, BTh, BTw, sh, sw, pt, pl, mh, mw, th, tw, out):
    N, C, H, W = x.shape
    ah, aw = BTh.shape[0], BTw.shape[0]
    Ck = C * sh * sw
    for t in prange(N * th * tw):
        n, ti, tj = _tile(t, th, tw)
        d = np.empty((ah, aw * Ck), x.dtype)  # the patch, channels (a, b, c) innermost
        e1 = np.zeros((ah, aw * Ck), x.dtype)
        for u in range(ah):
            for a in range(sh):
                h = sh * (ti * mh + u) + a - pt
                for v in range(aw):
                    for b in range(sw):
                        w = sw * (tj * mw + v) + b - pl
                        base = v * Ck + (a * sw + b) * C  # kappa = (a, b, c): c runs contiguous
                        if 0 <= h < H and 0 <= w < W:
                            for c in range(C):
                                d[u, base + c] = x[n, c, h, w]
                        else:
                            for c in range(C):
                                d[u, base + c] = 0
        for e in range(ah):  # e1[e] = sum_u BTh[e, u] d[u]: runs of aw * Ck
            er = e1[e]
            for u in range(ah):
                coef = BTh[e, u]
                if coef != 0:
                    du = d[u]
                    for q in range(aw * Ck):
                        er[q] += coef * du[q]
        for e in range(ah):  # out[e, f] = sum_v e1[e, v] BTw[f, v]: runs of Ck
            er = e1[e]
            for f in range(aw):
                row = out[t, e * aw + f]
                row[:] = 0
                for v in range(aw):
                    coef = BTw[f, v]
                    if coef != 0:
                        for k in range(Ck):
                            row[k] += coef * er[v * Ck + k]


@_njit(**_jit)
def _wino_image8(x, BTh, BTw, sh, sw, pt, pl, mh, mw, th, tw, out):
    # _wino_image for alpha = 8 on both axes: each stage one sweep of _mix8
    N, C, H, W = x.shape
    Ck = C * sh * sw
    for t in prange(N * th * tw):
        n, ti, tj = _tile(t, th, tw)
        d = np.empty((8, 1, 8 * Ck), x.dtype)  # the patch, channels (a, b, c) innermost
        for u in range(8):
            for a in range(sh):
                h = sh * (ti * mh + u) + a - pt
                for v in range(8):
                    for b in range(sw):
                        w = sw * (tj * mw + v) + b - pl
                        base = v * Ck + (a * sw + b) * C
                        if 0 <= h < H and 0 <= w < W:
                            for c in range(C):
                                d[u, 0, base + c] = x[n, c, h, w]
                        else:
                            for c in range(C):
                                d[u, 0, base + c] = 0
        e1 = np.empty((8, 1, 8 * Ck), x.dtype)
        _mix8(BTh, d, 0, 0, e1, 0, 0)  # e1[e] = sum_u BTh[e, u] d[u]
        e2 = e1.reshape(64, 1, Ck)  # row e * 8 + v
        Vt = out[t].reshape(64, 1, Ck)
        for e in range(8):  # V[t, e * 8 + f] = sum_v BTw[f, v] e1[e, v]
            _mix8(BTw, e2, e * 8, 0, Vt, e * 8, 0)


@_njit(**_jit)
def _wino_weights(KG, w2, U):
    # U[xi] = sum_d KG[xi, d] w2[d]: one pass over U, whose rows are long
    for xi in prange(KG.shape[0]):
        row = U[xi]
        row[:] = 0
        for d in range(KG.shape[1]):
            coef = KG[xi, d]
            if coef != 0:
                wd = w2[d]
                for q in range(row.size):
                    row[q] += coef * wd[q]


@_njit(**_jit)
def _wino_weights_adjoint(KG, dU, dw2):
    # dw2[d] = sum_xi KG[xi, d] dU[xi]: parallel over blocks of the long rows
    n = dU.shape[1]
    nb = (n + 4095) // 4096
    for blk in prange(nb):
        lo = blk * 4096
        hi = min(n, lo + 4096)
        for d in range(KG.shape[1]):
            acc = dw2[d, lo:hi]
            acc[:] = 0
            for xi in range(KG.shape[0]):
                coef = KG[xi, d]
                if coef != 0:
                    src = dU[xi, lo:hi]
                    for q in range(hi - lo):
                        acc[q] += coef * src[q]


def winograd_weights(KG, w2, out=None):
    if out is None:
        out = np.empty((KG.shape[0], w2.shape[1]), dtype=w2.dtype)
    _launch(_wino_weights, out.size, np.ascontiguousarray(KG, dtype=w2.dtype),
            np.ascontiguousarray(w2), out)
    return out


def winograd_weights_adjoint(KG, dU):
    dU = np.ascontiguousarray(dU)
    dw2 = np.empty((KG.shape[1], dU.shape[1]), dtype=dU.dtype)
    _launch(_wino_weights_adjoint, dU.size, np.ascontiguousarray(KG, dtype=dU.dtype), dU, dw2)
    return dw2


@njit(inline="always")
def _phase_sources(H, W, C, sh, sw, pt, pl, Hg, Wg):
    """Where each pixel of a channel-0 plane sits in a sample's flat phase grid (channel c:
    + c), or -1 where it is in no tile."""
    Ck = C * sh * sw
    src = np.empty(H * W, np.int64)
    for h in range(H):
        uu, a = divmod(h + pt, sh)
        for w in range(W):
            vv, b = divmod(w + pl, sw)
            src[h * W + w] = (uu * Wg + vv) * Ck + (a * sw + b) * C if (uu < Hg and vv < Wg) else -1
    return src


@njit(inline="always")
def _phase_scatter(grid, src, dxn):
    """Every pixel of one sample's ``dxn (C, H, W)`` takes its phase grid's value once."""
    C, H, W = dxn.shape
    for c in range(C):
        plane = dxn[c].reshape(H * W)
        for q in range(H * W):
            plane[q] = grid[src[q] + c] if src[q] >= 0 else 0


@_njit(**_jit)
def _wino_image_adjoint(dV, BTh, BTw, sh, sw, pt, pl, mh, mw, th, tw, dx):
    N, C, H, W = dx.shape
    ah, aw = BTh.shape[0], BTw.shape[0]
    Ck = C * sh * sw
    Hg, Wg = th * mh + ah - mh, tw * mw + aw - mw
    src = _phase_sources(H, W, C, sh, sw, pt, pl, Hg, Wg)
    for n in prange(N):
        grid = np.zeros(Hg * Wg * Ck, dV.dtype)
        e1 = np.empty((ah, aw * Ck), dV.dtype)
        for ti in range(th):
            for tj in range(tw):
                t = (n * th + ti) * tw + tj
                e1[:] = 0
                for e in range(ah):  # e1[e, v] = sum_f dV[e, f] BTw[f, v]: runs of Ck
                    er = e1[e]
                    for f in range(aw):
                        row = dV[t, e * aw + f]
                        for v in range(aw):
                            coef = BTw[f, v]
                            if coef != 0:
                                for k in range(Ck):
                                    er[v * Ck + k] += coef * row[k]
                for u in range(ah):  # the patch's row u += sum_e BTh[e, u] e1[e]: runs of aw * Ck
                    lo = ((ti * mh + u) * Wg + tj * mw) * Ck
                    g = grid[lo:lo + aw * Ck]
                    for e in range(ah):
                        coef = BTh[e, u]
                        if coef != 0:
                            er = e1[e]
                            for q in range(aw * Ck):
                                g[q] += coef * er[q]
        _phase_scatter(grid, src, dx[n])


@_njit(**_jit)
def _wino_image8_adjoint(dV, Bh, Bw, sh, sw, pt, pl, mh, mw, th, tw, dx):
    # _wino_image_adjoint for alpha = 8 on both axes (Bh, Bw: the transposes of BTh, BTw)
    N, C, H, W = dx.shape
    Ck = C * sh * sw
    Hg, Wg = th * mh + 8 - mh, tw * mw + 8 - mw
    src = _phase_sources(H, W, C, sh, sw, pt, pl, Hg, Wg)
    for n in prange(N):
        grid = np.zeros(Hg * Wg * Ck, dV.dtype)
        e1 = np.empty((64, 1, Ck), dV.dtype)  # row e * 8 + v
        patch = np.empty((8, 1, 8 * Ck), dV.dtype)
        for ti in range(th):
            for tj in range(tw):
                t = (n * th + ti) * tw + tj
                dVt = dV[t].reshape(64, 1, Ck)
                for e in range(8):  # e1[e, v] = sum_f Bw[v, f] dV[t, e * 8 + f]
                    _mix8(Bw, dVt, e * 8, 0, e1, e * 8, 0)
                _mix8(Bh, e1.reshape(8, 1, 8 * Ck), 0, 0, patch, 0, 0)  # patch[u] = sum_e Bh[u, e] e1[e]
                for u in range(8):  # added where the tile read it (neighbouring tiles overlap)
                    g = grid[((ti * mh + u) * Wg + tj * mw) * Ck:((ti * mh + u) * Wg + tj * mw + 8) * Ck]
                    pu = patch[u, 0]
                    for q in range(8 * Ck):
                        g[q] += pu[q]
        _phase_scatter(grid, src, dx[n])


@_njit(**_jit)
def _wino_output(M, ATh, ATw, mh, mw, th, tw, y):
    N, O, Ho, Wo = y.shape
    ah, aw = ATh.shape[1], ATw.shape[1]
    for t in prange(N * th * tw):
        n, ti, tj = _tile(t, th, tw)
        e1 = np.zeros((mh, aw, O), M.dtype)
        for i in range(mh):  # e1[i, f] = sum_e ATh[i, e] M[e, f]
            for e in range(ah):
                coef = ATh[i, e]
                if coef != 0:
                    for f in range(aw):
                        row = M[t, e * aw + f]
                        for o in range(O):
                            e1[i, f, o] += coef * row[o]
        acc = np.empty(O, M.dtype)
        for i in range(min(mh, Ho - ti * mh)):
            for j in range(min(mw, Wo - tj * mw)):
                acc[:] = 0
                for f in range(aw):
                    coef = ATw[j, f]
                    if coef != 0:
                        for o in range(O):
                            acc[o] += coef * e1[i, f, o]
                for o in range(O):
                    y[n, o, ti * mh + i, tj * mw + j] = acc[o]


@_njit(**_jit)
def _wino_output8(M, A8h, A8w, mh, mw, th, tw, y):
    # _wino_output for alpha = 8 on both axes; A8h, A8w: A^T with zero rows below its m
    N, O, Ho, Wo = y.shape
    for t in prange(N * th * tw):
        n, ti, tj = _tile(t, th, tw)
        e1 = np.empty((8, 1, 8 * O), M.dtype)  # e1[i, f] = sum_e ATh[i, e] M[t, e * 8 + f]
        _mix8(A8h, M[t].reshape(8, 1, 8 * O), 0, 0, e1, 0, 0)
        e2 = e1.reshape(64, 1, O)
        z = np.empty((64, 1, O), M.dtype)  # z[i * 8 + j] = sum_f ATw[j, f] e1[i, f]
        for i in range(8):
            _mix8(A8w, e2, i * 8, 0, z, i * 8, 0)
        for i in range(min(mh, Ho - ti * mh)):
            for j in range(min(mw, Wo - tj * mw)):
                zr = z[i * 8 + j, 0]
                for o in range(O):
                    y[n, o, ti * mh + i, tj * mw + j] = zr[o]


@_njit(**_jit)
def _wino_output8_adjoint(dy, A8h, A8w, mh, mw, th, tw, out):
    # _wino_output_adjoint for alpha = 8 on both axes; A8h, A8w: A with zero columns past m
    N, O, Ho, Wo = dy.shape
    for t in prange(N * th * tw):
        n, ti, tj = _tile(t, th, tw)
        d = np.zeros((64, 1, O), dy.dtype)  # the tile's dy, d[i * 8 + j]; zero past the outputs
        for i in range(min(mh, Ho - ti * mh)):
            for j in range(min(mw, Wo - tj * mw)):
                dr = d[i * 8 + j, 0]
                for o in range(O):
                    dr[o] = dy[n, o, ti * mh + i, tj * mw + j]
        e1 = np.empty((64, 1, O), dy.dtype)  # e1[i * 8 + f] = sum_j ATw[j, f] d[i * 8 + j]
        for i in range(8):
            _mix8(A8w, d, i * 8, 0, e1, i * 8, 0)
        # out[t, e * 8 + f] = sum_i ATh[i, e] e1[i * 8 + f]: rows of 8 * O
        _mix8(A8h, e1.reshape(8, 1, 8 * O), 0, 0, out[t].reshape(8, 1, 8 * O), 0, 0)


@_njit(**_jit)
def _wino_output_adjoint(dy, ATh, ATw, mh, mw, th, tw, out):
    N, O, Ho, Wo = dy.shape
    ah, aw = ATh.shape[1], ATw.shape[1]
    for t in prange(N * th * tw):
        n, ti, tj = _tile(t, th, tw)
        d = np.zeros((mh, mw, O), dy.dtype)
        for o in range(O):
            for i in range(min(mh, Ho - ti * mh)):
                for j in range(min(mw, Wo - tj * mw)):
                    d[i, j, o] = dy[n, o, ti * mh + i, tj * mw + j]
        e1 = np.zeros((ah, mw, O), dy.dtype)
        for e in range(ah):  # e1[e, j] = sum_i ATh[i, e] d[i, j]
            for i in range(mh):
                coef = ATh[i, e]
                if coef != 0:
                    for j in range(mw):
                        for o in range(O):
                            e1[e, j, o] += coef * d[i, j, o]
        for e in range(ah):  # out[e, f] = sum_j e1[e, j] ATw[j, f]
            for f in range(aw):
                row = out[t, e * aw + f]
                row[:] = 0
                for j in range(mw):
                    coef = ATw[j, f]
                    if coef != 0:
                        for o in range(O):
                            row[o] += coef * e1[e, j, o]


def _square8(AT):
    """``A^T (m, 8)`` as an 8 x 8 matrix, zero rows below its m (the sweeps of _mix8 take 8)."""
    out = np.zeros((8, 8))
    out[:AT.shape[0]] = AT
    return out


def _mats(dtype, *mats):
    return tuple(np.ascontiguousarray(m, dtype=dtype) for m in mats)


def winograd_image(x, p, out=None):
    x = np.ascontiguousarray(x)
    N = x.shape[0]
    if out is None:
        out = np.empty((p.tiles(N), p.ah * p.aw, p.Ck), dtype=x.dtype)
    BTh, BTw = _mats(x.dtype, p.BTh, p.BTw)
    _launch(_wino_image8 if p.ah == p.aw == 8 else _wino_image, GATHER_COST * out.size, x, BTh, BTw, p.sh, p.sw, p.pt, p.pl, p.mh, p.mw,
            p.th, p.tw, out)
    return out


def winograd_image_adjoint(dV, p, N):
    dV = np.ascontiguousarray(dV)
    dx = np.empty((N, p.C, p.H, p.W), dtype=dV.dtype)
    if p.ah == p.aw == 8:
        Bh, Bw = _mats(dV.dtype, p.BTh.T, p.BTw.T)
        _launch(_wino_image8_adjoint, GATHER_COST * dV.size, dV, Bh, Bw, p.sh, p.sw, p.pt, p.pl, p.mh,
                p.mw, p.th, p.tw, dx)
        return dx
    BTh, BTw = _mats(dV.dtype, p.BTh, p.BTw)
    _launch(_wino_image_adjoint, GATHER_COST * dV.size, dV, BTh, BTw, p.sh, p.sw, p.pt, p.pl, p.mh,
            p.mw, p.th, p.tw, dx)
    return dx


def winograd_output(M, p, N):
    M = np.ascontiguousarray(M)
    y = np.empty((N, M.shape[2], p.Ho, p.Wo), dtype=M.dtype)
    if p.ah == p.aw == 8:
        A8h, A8w = _mats(M.dtype, _square8(p.ATh), _square8(p.ATw))
        _launch(_wino_output8, GATHER_COST * M.size, M, A8h, A8w, p.mh, p.mw, p.th, p.tw, y)
        return y
    ATh, ATw = _mats(M.dtype, p.ATh, p.ATw)
    _launch(_wino_output, GATHER_COST * M.size, M, ATh, ATw, p.mh, p.mw, p.th, p.tw, y)
    return y


def winograd_output_adjoint(dy, p, out=None):
    dy = np.ascontiguousarray(dy)
    N, O = dy.shape[:2]
    if out is None:
        out = np.empty((p.tiles(N), p.ah * p.aw, O), dtype=dy.dtype)
    if p.ah == p.aw == 8:
        A8h, A8w = _mats(dy.dtype, _square8(p.ATh).T, _square8(p.ATw).T)
        _launch(_wino_output8_adjoint, GATHER_COST * out.size, dy, A8h, A8w, p.mh, p.mw, p.th, p.tw, out)
        return out
    ATh, ATw = _mats(dy.dtype, p.ATh, p.ATw)
    _launch(_wino_output_adjoint, GATHER_COST * out.size, dy, ATh, ATw, p.mh, p.mw, p.th, p.tw, out)
    return out


# -- the projection head (nn.LabelProjection) ---------------------------------------
# Each sample reads its own rows of E: a pass over x and the rows it uses, where the
# reference multiplies x by every row (an (N, F) x (F, R) GEMM) and keeps one product
# a sample.  The dot products sum in float64, reassociated (fastmath) so that they run
# as vector lanes.

@_njit(fastmath=True, **_jit)
def _projection_head(x, w, b, E, rows, out):
    N, F = x.shape
    for n in prange(N):
        acc = 0.0
        r0 = rows[n, 0]
        for f in range(F):
            acc += x[n, f] * (w[f] + E[r0, f])
        for j in range(1, rows.shape[1]):
            r = rows[n, j]
            for f in range(F):
                acc += x[n, f] * E[r, f]
        out[n, 0] = acc + b[0]


@_njit(**_jit)
def _projection_head_grad(dy, w, E, rows, dx):
    N, F = dx.shape
    for n in prange(N):
        d = dy[n, 0]
        r0 = rows[n, 0]
        for f in range(F):
            dx[n, f] = d * (w[f] + E[r0, f])
        for j in range(1, rows.shape[1]):
            r = rows[n, j]
            for f in range(F):
                dx[n, f] += d * E[r, f]


@_njit(**_jit)
def _projection_head_weight_grad(dy, x, rows, dw, dE):
    # parallel over blocks of features: each thread owns its columns of dw and dE
    N, F = x.shape
    nb = (F + 1023) // 1024
    for blk in prange(nb):
        lo = blk * 1024
        hi = min(F, lo + 1024)
        dw[lo:hi] = 0
        dE[:, lo:hi] = 0
        for n in range(N):
            d = dy[n, 0]
            xr = x[n, lo:hi]
            acc = dw[lo:hi]
            for q in range(hi - lo):
                acc[q] += d * xr[q]
            for j in range(rows.shape[1]):
                er = dE[rows[n, j], lo:hi]
                for q in range(hi - lo):
                    er[q] += d * xr[q]


def projection_head(x, w, b, E, rows):
    x = np.ascontiguousarray(x)
    out = np.empty((x.shape[0], 1), dtype=x.dtype)
    _launch(_projection_head, x.size * rows.shape[1], x, np.ascontiguousarray(w).reshape(-1), b,
            np.ascontiguousarray(E), rows, out)
    return out


def projection_head_grad(dy, w, E, rows):
    dy = np.ascontiguousarray(dy)
    dx = np.empty((dy.shape[0], E.shape[1]), dtype=dy.dtype)
    _launch(_projection_head_grad, dx.size * rows.shape[1], dy, np.ascontiguousarray(w).reshape(-1),
            np.ascontiguousarray(E), rows, dx)
    return dx


def projection_head_weight_grad(dy, x, rows, R):
    x = np.ascontiguousarray(x)
    dw = np.empty(x.shape[1], dtype=x.dtype)
    dE = np.empty((R, x.shape[1]), dtype=x.dtype)
    _launch(_projection_head_weight_grad, x.size * (1 + rows.shape[1]), np.ascontiguousarray(dy), x, rows,
            dw, dE)
    return dw.reshape(-1, 1), dE


TABLE = {f.__name__: f for f in (
    im2col, col2im, batched_matmul, split_phases, merge_phases, rows_to_spectrum, spectrum_to_rows,
    leaky_relu, leaky_relu_grad, dropout, dropout_grad, batchnorm_stats, batchnorm_apply,
    batchnorm_grad, batchnorm_leaky_apply, batchnorm_leaky_grad, adam_update, ema_update, bce_with_logits_sum, channel_sums, add_channel_bias,
    add_label_bias,
    winograd_image, winograd_image_adjoint, winograd_output, winograd_output_adjoint,
    winograd_weights, winograd_weights_adjoint, projection_head, projection_head_grad,
    projection_head_weight_grad)}

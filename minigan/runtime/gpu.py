"""The GPU's kernel table: numba-cuda twins of the reference code.

Each function in :data:`TABLE` has the name, signature and results of the
reference function it replaces (see :mod:`minigan.runtime.registry`; the references
live with their math, e.g. ``im2col`` in :mod:`minigan.nn.conv.reference`).
The arrays are a GPU device's (CuPy's, which enter a kernel through the CUDA
array interface as they lie); outputs are allocated with the array module of
the inputs, and inputs that may be strided views are made contiguous first.

* ``im2col`` is one thread per column entry, padding read as zeros; ``col2im``
  is a gather, one thread per image pixel, which sums the column entries
  that read it, tap by tap in the reference's order (so the sum is the
  reference's, bit for bit): every output is written once, with no atomics.
* The elementwise kernels (LeakyReLU and its gradient, dropout and its
  gradient with the mask hashed in the same pass, BatchNorm's normalise +
  affine, the keyed normal and integer draws) are one launch each.  Adam
  and the weight average are one launch each over a whole flat buffer.
* The reductions take a fixed order, so a result does not depend on timing
  or on the GPU: each thread sums a fixed stride of the values in float64,
  and a block's TPB partial sums are folded by a tree in shared memory.
  BatchNorm's statistics (mean, then variance) and its gradient (both sums,
  then dx) are one launch each, with a block per channel, or, where a channel
  has one value per sample (``(N, C)``), a thread per channel that walks the
  batch; the channel sums of a bias gradient are one block per channel; the
  BCE loss is one launch of per-block sums over a grid fixed by the size
  and, when there are several blocks, one more launch that folds them.  No
  float atomics anywhere.

All launches use TPB threads a block and grid-stride loops, with grid sizes
computed on the host from shapes alone; nothing is read back to the host
(the BCE total stays a 0-d float64 array on the device).  Scalars that enter
float32 arithmetic are passed as ``x.dtype.type(...)`` so the arithmetic stays
in the array's precision, as NumPy's does.  NVVM fuses ``a*b + c`` into one FMA
(one rounding); where the reference rounds the product first and the twin must
match it bit for bit (BatchNorm's affine, the weight average), the product goes
through ``mul.rn``, which is never fused.  Adam, the loss and the reductions
agree to rounding, FMAs and all.

Not here: ``batched_matmul`` (its reference, ``xp.matmul``, is cuBLAS on CuPy)
and the spectral engine's layouts (that engine runs on the CPU only).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64
from numba.cuda.core import config as _cuda_config

from .arrays import get_xp
from .randomness import GOLDEN, MIX1, MIX2

# A CuPy array passed to a kernel carries its stream in the CUDA array
# interface, and numba-cuda would synchronise that stream before every
# launch, once per array argument.  CuPy and these kernels both run on the
# default stream, which orders them already, so the syncs only stall the host.
_cuda_config.CUDA_ARRAY_INTERFACE_SYNC = 0

TPB = 256  # threads a block; the reductions' trees in shared memory are this wide
MAX_BLOCKS = 1024  # a grid-stride grid's cap: enough blocks to fill a large GPU
if _cuda_config.ENABLE_CUDASIM:
    # The simulator runs every thread of a block as a Python thread, and a barrier costs
    # thread switches: one thread a block and two blocks (the grid-stride loops cover any
    # size) keep a launch at milliseconds.  The kernel tests run wider blocks as well.
    TPB, MAX_BLOCKS = 1, 2

if _cuda_config.ENABLE_CUDASIM:
    # numba-cuda's simulator runs kernels as Python, on NumPy scalars: a product is
    # rounded on its own there, and libdevice has no Python implementation.
    @cuda.jit(device=True)
    def _mul_rn(a, b):
        return np.float64(a) * np.float64(b)
else:
    from numba.cuda import libdevice

    @cuda.jit(device=True)
    def _mul_rn(a, b):
        # mul.rn is never fused into an FMA (NVVM fuses a*b + c otherwise): the caller
        # rounds this to its array's dtype, which for float32 operands (whose float64
        # product is exact) is their float32 product
        return libdevice.dmul_rn(np.float64(a), np.float64(b))


def _arg(a):
    """``a`` as a kernel argument (a device stand-in hands over its buffer)."""
    return a.kernel_arg() if hasattr(a, "kernel_arg") else a


def _grid(n):
    """Blocks of a grid-stride launch over ``n`` elements."""
    return max(1, min((n + TPB - 1) // TPB, MAX_BLOCKS))


@cuda.jit(device=True)
def _block_sum(buf, t):
    """The sum of ``buf[:TPB]`` (one value per thread ``t``), folded as a fixed tree."""
    s = TPB // 2
    while s > 0:
        cuda.syncthreads()
        if t < s:
            buf[t] += buf[t + s]
        s //= 2
    cuda.syncthreads()
    total = buf[0]
    cuda.syncthreads()  # every thread has read the total before buf is filled again
    return total


@cuda.jit(device=True)
def _block_sum2(b1, b2, t):
    """:func:`_block_sum` of two buffers at once (one tree, half the barriers)."""
    s = TPB // 2
    while s > 0:
        cuda.syncthreads()
        if t < s:
            b1[t] += b1[t + s]
            b2[t] += b2[t + s]
        s //= 2
    cuda.syncthreads()
    t1, t2 = b1[0], b2[0]
    cuda.syncthreads()
    return t1, t2


# -- the conv engine ------------------------------------------------------------

@cuda.jit
def _im2col(x, kh, kw, sh, sw, pt, pl, Wo, cols):
    # cols[(c, i, j), n, (oh, ow)] = x[n, c, oh*sh + i - pt, ow*sw + j - pl], 0 off the image
    K, N, P = cols.shape
    H, W = x.shape[2], x.shape[3]
    for e in range(cuda.grid(1), K * N * P, cuda.gridsize(1)):
        k = e // (N * P)
        r = e - k * (N * P)
        n = r // P
        p = r - n * P
        c = k // (kh * kw)
        ij = k - c * (kh * kw)
        i = ij // kw
        j = ij - i * kw
        oh = p // Wo
        h = oh * sh + i - pt
        w = (p - oh * Wo) * sw + j - pl
        if 0 <= h < H and 0 <= w < W:
            cols[k, n, p] = x[n, c, h, w]
        else:
            cols[k, n, p] = 0


@cuda.jit
def _col2im(cols, kh, kw, sh, sw, pt, pl, Ho, Wo, zero, out):
    # Padded pixel (hp, wp) is read by tap (i, j) at output (oh, ow) when
    # hp = oh*sh + i and wp = ow*sw + j: i runs over hp's residue mod sh (j
    # likewise), and the taps are summed in the reference's (i, j) order,
    # starting from zero, in the array's dtype.
    N, C, H, W = out.shape
    for e in range(cuda.grid(1), N * C * H * W, cuda.gridsize(1)):
        w = e % W
        r = e // W
        h = r % H
        r //= H
        c = r % C
        n = r // C
        hp = h + pt
        wp = w + pl
        acc = zero
        for i in range(hp % sh, min(kh, hp + 1), sh):
            oh = (hp - i) // sh
            if oh < Ho:
                row = (c * kh + i) * kw
                for j in range(wp % sw, min(kw, wp + 1), sw):
                    ow = (wp - j) // sw
                    if ow < Wo:
                        acc += cols[row + j, n, oh * Wo + ow]
        out[n, c, h, w] = acc


def im2col(x, g, out=None):
    xp = get_xp(x)
    x = xp.ascontiguousarray(x)
    N = x.shape[0]
    if out is None:
        out = xp.empty((g.K, N, g.Ho * g.Wo), dtype=x.dtype)
    _im2col[_grid(out.size), TPB](_arg(x), g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.Wo, _arg(out))
    return out


def col2im(cols, g, out=None):
    xp = get_xp(cols)
    cols = xp.ascontiguousarray(cols)
    if out is None:
        out = xp.empty((cols.shape[1], g.C, g.H, g.W), dtype=cols.dtype)
    _col2im[_grid(out.size), TPB](_arg(cols), g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.Ho, g.Wo,
                                  cols.dtype.type(0), _arg(out))
    return out


# -- elementwise ---------------------------------------------------------------------

@cuda.jit
def _leaky_relu(x, slope, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        y[i] = v if v > 0 else v * slope


@cuda.jit
def _leaky_relu_grad(dy, x, slope, dx):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        d = dy[i]
        dx[i] = d if x[i] > 0 else d * slope


def leaky_relu(x, slope):
    xp = get_xp(x)
    x = xp.ascontiguousarray(x)
    y = xp.empty_like(x)
    _leaky_relu[_grid(x.size), TPB](_arg(x.reshape(-1)), x.dtype.type(slope), _arg(y.reshape(-1)))
    return y


def leaky_relu_grad(dy, x, slope):
    xp = get_xp(dy)
    dy = xp.ascontiguousarray(dy)
    dx = xp.empty_like(dy)
    _leaky_relu_grad[_grid(dy.size), TPB](_arg(dy.reshape(-1)), _arg(xp.ascontiguousarray(x).reshape(-1)),
                                          dy.dtype.type(slope), _arg(dx.reshape(-1)))
    return dx


# -- counter-based hashes: dropout's mask and the keyed draws ------------------------------
# SplitMix64's finaliser of key + i * golden, as in minigan.runtime.randomness: every
# operand is uint64 (a signed or float operand would promote the arithmetic to
# float64), and the products wrap, as they do in NumPy.

_GOLDEN, _MIX1, _MIX2 = (np.uint64(c) for c in (GOLDEN, MIX1, MIX2))  # uint64 operands
_U1, _U11, _U27, _U30, _U31, _U32, _U40 = (np.uint64(s) for s in (1, 11, 27, 30, 31, 32, 40))
_TWO_PI = 2.0 * math.pi
_TWO_M53 = 1.0 / 2.0 ** 53


@cuda.jit(device=True)
def _hash(key, i):
    """SplitMix64's finaliser of ``key + i * golden`` (uint64, wrapping)."""
    z = key + np.uint64(i) * _GOLDEN
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    return z ^ (z >> _U31)


@cuda.jit
def _dropout(x, seed, threshold, scale, y, keep):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        k = (_hash(seed, i) >> _U40) >= threshold  # u = top 24 bits / 2^24; keep if u >= p
        keep[i] = k
        if k:  # statements, not `a if k else 0`, which would unify float32 with an int as float64
            y[i] = x[i] * scale
        else:
            y[i] = 0


@cuda.jit
def _dropout_grad(dy, keep, scale, dx):
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        if keep[i]:
            dx[i] = dy[i] * scale
        else:
            dx[i] = 0


def dropout(x, p, seed):
    xp = get_xp(x)
    x = xp.ascontiguousarray(x)
    y = xp.empty_like(x)
    keep = xp.empty(x.shape, dtype=np.bool_)
    threshold = np.uint64(math.ceil(p * 2**24))
    _dropout[_grid(x.size), TPB](_arg(x.reshape(-1)), np.uint64(seed), threshold,
                                 x.dtype.type(1.0 / (1.0 - p)), _arg(y.reshape(-1)), _arg(keep.reshape(-1)))
    return y, keep


def dropout_grad(dy, keep, p):
    xp = get_xp(dy)
    dy = xp.ascontiguousarray(dy)
    dx = xp.empty_like(dy)
    _dropout_grad[_grid(dy.size), TPB](_arg(dy.reshape(-1)), _arg(xp.ascontiguousarray(keep).reshape(-1)),
                                       dy.dtype.type(1.0 / (1.0 - p)), _arg(dx.reshape(-1)))
    return dx


@cuda.jit
def _keyed_normal(key, out):
    # element i takes hashes 2i and 2i+1: Box-Muller in float64
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        u1 = np.float64((_hash(key, 2 * i) >> _U11) + _U1) * _TWO_M53  # in (0, 1]
        u2 = np.float64(_hash(key, 2 * i + 1) >> _U11) * _TWO_M53  # in [0, 1)
        out[i] = math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


@cuda.jit
def _keyed_integers(key, high, out):
    # Lemire's multiply-shift of the top 32 bits
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = np.int64(((_hash(key, i) >> _U32) * high) >> _U32)


def keyed_normal(out, k):
    _keyed_normal[_grid(out.size), TPB](np.uint64(k), _arg(out.reshape(-1)))
    return out


def keyed_integers(out, k, high):
    _keyed_integers[_grid(out.size), TPB](np.uint64(k), np.uint64(high), _arg(out.reshape(-1)))
    return out


# -- the optimizer and the weight average ----------------------------------------------

@cuda.jit
def _adam(p, g, m, v, b1, a1, b2, a2, step, c2, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = g[i]
        mi = b1 * m[i] + a1 * gi
        vi = b2 * v[i] + a2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (math.sqrt(vi / c2) + eps)


def adam_update(p, g, m, v, lr, b1, b2, eps, t):
    """One Adam step in place over flat buffers (see :func:`minigan.optim.adam_update`); the bias
    corrections are folded into the step size and the second moment's divisor on the host."""
    f = p.dtype.type
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    _adam[_grid(p.size), TPB](_arg(p), _arg(g), _arg(m), _arg(v), f(b1), f(1 - b1), f(b2), f(1 - b2),
                              f(lr / c1), f(c2), f(eps))


@cuda.jit
def _ema(avg, theta, w):
    for i in range(cuda.grid(1), avg.size, cuda.gridsize(1)):
        a = avg[i]
        avg[i] = _mul_rn(w, theta[i] - a)  # the store rounds w * (theta - a) to avg's dtype
        avg[i] += a  # theta - a is taken in avg's dtype (or wider), as in the reference


def ema_update(avg, theta, weight):
    """``avg += weight * (theta - avg)`` over flat buffers, one launch (see
    :func:`minigan.gan.averaging.ema_update`)."""
    _ema[_grid(avg.size), TPB](_arg(avg), _arg(theta), avg.dtype.type(weight))


# -- the BCE loss -----------------------------------------------------------------------

@cuda.jit
def _bce_with_logits(z, t, t_scalar, has_t, zero, one, grad, partials):
    buf = cuda.shared.array(TPB, float64)
    tid = cuda.threadIdx.x
    acc = np.float64(0.0)
    for i in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        zi = z[i]
        ti = t[i] if has_t else t_scalar
        e = math.exp(-abs(zi))
        acc += np.float64(max(zi, zero) - zi * ti + math.log1p(e))  # each loss in z's dtype
        grad[i] = (one / (one + e) if zi >= zero else e / (one + e)) - ti
    buf[tid] = acc
    total = _block_sum(buf, tid)
    if tid == 0:
        partials[cuda.blockIdx.x] = total


@cuda.jit
def _fold_partials(partials, total):
    buf = cuda.shared.array(TPB, float64)
    tid = cuda.threadIdx.x
    acc = np.float64(0.0)
    for i in range(tid, partials.size, TPB):
        acc += partials[i]
    buf[tid] = acc
    s = _block_sum(buf, tid)
    if tid == 0:
        total[0] = s


def bce_with_logits_sum(z, t):
    """``(total, grad)`` of :func:`minigan.losses.bce_with_logits_sum`: the total a 0-d float64
    array on z's device, summed in a fixed order."""
    xp = get_xp(z)
    z = xp.ascontiguousarray(z)
    f = z.dtype.type
    if isinstance(t, (int, float, np.generic)):
        t_arr, t_scalar, has_t = z, f(t), False  # z stands in for the unused array argument
    else:
        if t.shape != z.shape:
            t = xp.broadcast_to(t, z.shape)
        if t.dtype != z.dtype:
            t = t.astype(z.dtype)
        t_arr, t_scalar, has_t = xp.ascontiguousarray(t), f(0), True
    grad = xp.empty_like(z)
    total = xp.empty((), dtype=np.float64)
    blocks = _grid(z.size)
    # one block writes the total itself; several write their sums, which one more block folds
    partials = total.reshape(1) if blocks == 1 else xp.empty(blocks, dtype=np.float64)
    _bce_with_logits[blocks, TPB](_arg(z.reshape(-1)), _arg(t_arr.reshape(-1)), t_scalar, has_t, f(0), f(1),
                                  _arg(grad.reshape(-1)), _arg(partials))
    if blocks > 1:
        _fold_partials[1, TPB](_arg(partials), _arg(total.reshape(1)))
    return total, grad


# -- batch normalisation ----------------------------------------------------------------
# x is viewed as (N, C, S), S = H*W (1 for (N, C)): channel c owns x[:, c, :],
# m = N*S values.  With S > 1 a block takes a channel (its threads split the
# m values at a fixed stride and fold their sums as a tree); with S = 1 (a
# dense layer's output: many channels, one value each per sample) a thread
# takes a channel and walks the batch, reading rows that neighbouring threads
# read too.  Sums are float64.

@cuda.jit
def _bn_stats_blocks(x, mu, var):
    buf = cuda.shared.array(TPB, float64)
    t = cuda.threadIdx.x
    N, C, S = x.shape
    m = N * S
    for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
        acc = np.float64(0.0)
        for q in range(t, m, TPB):
            n = q // S
            acc += x[n, c, q - n * S]
        buf[t] = acc
        mean = _block_sum(buf, t) / m
        acc = np.float64(0.0)
        for q in range(t, m, TPB):
            n = q // S
            d = np.float64(x[n, c, q - n * S]) - mean
            acc += d * d
        buf[t] = acc
        v = _block_sum(buf, t) / m
        if t == 0:
            mu[c] = mean
            var[c] = v


@cuda.jit
def _bn_stats_columns(x, mu, var):
    N, C = x.shape[0], x.shape[1]
    for c in range(cuda.grid(1), C, cuda.gridsize(1)):
        acc = np.float64(0.0)
        for n in range(N):
            acc += x[n, c, 0]
        mean = acc / N
        acc = np.float64(0.0)
        for n in range(N):
            d = np.float64(x[n, c, 0]) - mean
            acc += d * d
        mu[c] = mean
        var[c] = acc / N


@cuda.jit
def _bn_apply(x, S, C, mu, inv_std, gamma, beta, y, xh):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = (i // S) % C
        h = (x[i] - mu[c]) * inv_std[c]
        xh[i] = h
        y[i] = _mul_rn(gamma[c], h)  # rounded to y's dtype by the store, then + beta: the
        y[i] += beta[c]  # reference's two roundings, where NVVM would fuse them into one


@cuda.jit
def _bn_grad_blocks(dy, xh, gamma, inv_std, training, dx, dgamma, dbeta):
    b1 = cuda.shared.array(TPB, float64)
    b2 = cuda.shared.array(TPB, float64)
    t = cuda.threadIdx.x
    N, C, S = dy.shape
    m = N * S
    for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
        sb = np.float64(0.0)
        sg = np.float64(0.0)
        for q in range(t, m, TPB):
            n = q // S
            d = np.float64(dy[n, c, q - n * S])
            sb += d
            sg += d * np.float64(xh[n, c, q - n * S])
        b1[t] = sb
        b2[t] = sg
        sb, sg = _block_sum2(b1, b2, t)
        if t == 0:
            dbeta[c] = sb
            dgamma[c] = sg
        k = np.float64(gamma[c] * inv_std[c])  # the product in the arrays' dtype, as the reference's
        if training:
            mb = sb / m
            mg = sg / m
            for q in range(t, m, TPB):
                n = q // S
                s = q - n * S
                dx[n, c, s] = k * (np.float64(dy[n, c, s]) - mb - np.float64(xh[n, c, s]) * mg)
        else:  # mu and var are constants: no mean terms, dx = dy * k rounded once
            for q in range(t, m, TPB):
                n = q // S
                s = q - n * S
                dx[n, c, s] = k * np.float64(dy[n, c, s])


@cuda.jit
def _bn_grad_columns(dy, xh, gamma, inv_std, training, dx, dgamma, dbeta):
    N, C = dy.shape[0], dy.shape[1]
    for c in range(cuda.grid(1), C, cuda.gridsize(1)):
        sb = np.float64(0.0)
        sg = np.float64(0.0)
        for n in range(N):
            d = np.float64(dy[n, c, 0])
            sb += d
            sg += d * np.float64(xh[n, c, 0])
        dbeta[c] = sb
        dgamma[c] = sg
        k = np.float64(gamma[c] * inv_std[c])
        if training:
            mb = sb / N
            mg = sg / N
            for n in range(N):
                dx[n, c, 0] = k * (np.float64(dy[n, c, 0]) - mb - np.float64(xh[n, c, 0]) * mg)
        else:
            for n in range(N):
                dx[n, c, 0] = k * np.float64(dy[n, c, 0])


def _channels(xp, a):
    """``(N, C)`` or ``(N, C, H, W)`` as a contiguous ``(N, C, S)`` array."""
    a = xp.ascontiguousarray(a)
    return a.reshape(a.shape[0], a.shape[1], -1)


def _as(a, dtype):
    return a if a.dtype == dtype else a.astype(dtype)


def _bn_launch(blocks_kernel, columns_kernel, x3, *args):
    """One launch: a block per channel, or for S = 1 a thread per channel."""
    C = x3.shape[1]
    if x3.shape[2] == 1:
        columns_kernel[_grid(C), TPB](*args)
    else:
        blocks_kernel[min(C, MAX_BLOCKS), TPB](*args)


def batchnorm_stats(x):
    xp = get_xp(x)
    x3 = _channels(xp, x)
    C = x.shape[1]
    mu, var = xp.empty(C, x.dtype), xp.empty(C, x.dtype)
    _bn_launch(_bn_stats_blocks, _bn_stats_columns, x3, _arg(x3), _arg(mu), _arg(var))
    return mu, var


def batchnorm_apply(x, mu, inv_std, gamma, beta):
    xp = get_xp(x)
    x = xp.ascontiguousarray(x)
    y, xh = xp.empty_like(x), xp.empty_like(x)
    C = x.shape[1]
    S = x.size // (x.shape[0] * C)
    _bn_apply[_grid(x.size), TPB](_arg(x.reshape(-1)), S, C, _arg(_as(mu, x.dtype)),
                                  _arg(_as(inv_std, x.dtype)), _arg(gamma), _arg(beta),
                                  _arg(y.reshape(-1)), _arg(xh.reshape(-1)))
    return y, xh


def batchnorm_grad(dy, xh, gamma, inv_std, training):
    xp = get_xp(dy)
    dy3, xh3 = _channels(xp, dy), _channels(xp, xh)
    C = dy.shape[1]
    dx = xp.empty_like(dy3)
    dgamma, dbeta = xp.empty(C, dy.dtype), xp.empty(C, dy.dtype)
    _bn_launch(_bn_grad_blocks, _bn_grad_columns, dy3, _arg(dy3), _arg(xh3), _arg(gamma),
               _arg(_as(inv_std, dy.dtype)), bool(training), _arg(dx), _arg(dgamma), _arg(dbeta))
    return dx.reshape(dy.shape), dgamma, dbeta


# -- sums over every axis but the channel's -------------------------------------------

@cuda.jit
def _channel_sums(dy, out):
    buf = cuda.shared.array(TPB, float64)
    t = cuda.threadIdx.x
    N, C, S = dy.shape
    m = N * S
    for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
        acc = np.float64(0.0)
        for q in range(t, m, TPB):
            n = q // S
            acc += dy[n, c, q - n * S]
        buf[t] = acc
        s = _block_sum(buf, t)
        if t == 0:
            out[c] = s


def channel_sums(dy):
    """``dy (N, C, H, W) -> (C,)``: a block per channel, each summing in float64."""
    xp = get_xp(dy)
    dy3 = _channels(xp, dy)
    C = dy.shape[1]
    out = xp.empty(C, dy.dtype)
    _channel_sums[max(1, min(C, MAX_BLOCKS)), TPB](_arg(dy3), _arg(out))
    return out


TABLE = {f.__name__: f for f in (
    im2col, col2im, leaky_relu, leaky_relu_grad, dropout, dropout_grad, batchnorm_stats,
    batchnorm_apply, batchnorm_grad, adam_update, ema_update, bce_with_logits_sum, channel_sums,
    keyed_normal, keyed_integers)}


# -- launch signatures -------------------------------------------------------------------
# Every kernel above (a @cuda.jit that is not a device function), with the argument types it
# is launched with, written as numba signatures: "{f}" is the arrays' float dtype, expanded to
# float32 and float64 (both are launched: float32 in training, float64 in the gradient checks
# and the tests).  Arrays are C-contiguous (each wrapper makes them so), Python ints enter as
# int64, flags as booleans.  minigan/runtime/gpu_compile.py compiles each one to PTX for
# sm_80 and sm_90 and fails on a kernel that has no entry here; tests/runtime/test_gpu.py
# checks that every launch its tests make has one of these signatures.
_F = ("float32", "float64")
_A1, _A3, _A4 = "{f}[::1]", "{f}[:, :, ::1]", "{f}[:, :, :, ::1]"
_I = "int64"
SIGNATURES = {
    "_im2col": [f"({_A4}, {', '.join([_I] * 7)}, {_A3})"],
    "_col2im": [f"({_A3}, {', '.join([_I] * 8)}, {{f}}, {_A4})"],
    "_leaky_relu": [f"({_A1}, {{f}}, {_A1})"],
    "_leaky_relu_grad": [f"({_A1}, {_A1}, {{f}}, {_A1})"],
    "_dropout": [f"({_A1}, uint64, uint64, {{f}}, {_A1}, boolean[::1])"],
    "_dropout_grad": [f"({_A1}, boolean[::1], {{f}}, {_A1})"],
    "_keyed_normal": [f"(uint64, {_A1})"],
    "_keyed_integers": ["(uint64, uint64, int64[::1])"],
    "_adam": [f"({_A1}, {_A1}, {_A1}, {_A1}, {', '.join(['{f}'] * 7)})"],
    "_ema": [f"({_A1}, {_A1}, {{f}})", "(float64[::1], float32[::1], float64)"],
    "_bce_with_logits": [f"({_A1}, {_A1}, {{f}}, boolean, {{f}}, {{f}}, {_A1}, float64[::1])"],
    "_fold_partials": ["(float64[::1], float64[::1])"],
    "_bn_stats_blocks": [f"({_A3}, {_A1}, {_A1})"],
    "_bn_stats_columns": [f"({_A3}, {_A1}, {_A1})"],
    "_bn_apply": [f"({_A1}, int64, int64, {_A1}, {_A1}, {_A1}, {_A1}, {_A1}, {_A1})"],
    "_bn_grad_blocks": [f"({_A3}, {_A3}, {_A1}, {_A1}, boolean, {_A3}, {_A1}, {_A1})"],
    "_bn_grad_columns": [f"({_A3}, {_A3}, {_A1}, {_A1}, boolean, {_A3}, {_A1}, {_A1})"],
    "_channel_sums": [f"({_A3}, {_A1})"],
}


def kernel_signatures() -> dict:
    """``{kernel name: ["void(...)", ...]}``: :data:`SIGNATURES` with ``{f}`` expanded."""
    out = {}
    for name, sigs in SIGNATURES.items():
        seen = out.setdefault(name, [])
        for s in sigs:
            for f in (_F if "{f}" in s else _F[:1]):
                full = "void" + s.replace("{f}", f)
                if full not in seen:
                    seen.append(full)
    return out
# -- end of launch signatures ------------------------------------------------------------------

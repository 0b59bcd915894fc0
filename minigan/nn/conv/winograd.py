"""The Winograd engine: a strided conv as stride-1 phase convs, each by minimal filtering.

**Phases.**  With stride ``s`` a kernel tap ``i = s*di + a`` (``a < s``) only
ever reads padded rows ``s*(p + di) + a``: the rows of *phase* ``a``.  So a
stride-s conv with a ``k``-tap kernel is a stride-1 conv with ``r = ceil(k/s)``
taps over an image of ``C*s*s`` channels, the phase grids::

    X[n, u, v, (a, b, c)] = x_pad[n, c, s*u + a, s*v + b]
    w[o, (a, b, c), di, dj] = W[o, c, s*di + a, s*dj + b]      (0 where s*di + a >= k)
    y[n, o, p, q] = sum_{kappa, di, dj} w[o, kappa, di, dj] X[n, p + di, q + dj, kappa]

(the k4 s2 convs of the lean pair: 2x2 sub-kernels on 4C channels, the same
multiply-adds as the strided conv and every output written once.)

**Minimal filtering** (Winograd 1980; Lavin & Gray 2016).  The output is cut
into m x m tiles; the tile at ``(t_h, t_w)`` reads an ``alpha x alpha`` patch
``d`` of X (``alpha = m + r - 1``), and with the Toom-Cook matrices
``A^T (m, alpha)``, ``G (alpha, r)``, ``B^T (alpha, alpha)`` of
:func:`toom_cook`::

    V[t, xi, kappa] = (B^T d_{t,kappa} B)[xi]            image side     (T, alpha^2, C s^2)
    U[xi, kappa, o] = (G w_{o,kappa} G^T)[xi]           weights        (alpha^2, C s^2, O)
    M[:, xi]        = V[:, xi] @ U[xi]                 alpha^2 GEMMs  (T, alpha^2, O)
    y tile          = A^T M_{t,o} A                    the m x m outputs

with ``T = N * tiles`` and ``xi`` running over the alpha^2 points.  A tile's
points are side by side (tile-major), so each transform reads and writes one
contiguous block a tile; the GEMMs read every point's (T, C s^2) matrix with a
row stride, which BLAS takes as it is.  Each GEMM
is one point of the tile's product; the direct conv costs ``r^2 m^2`` multiply-
adds a tile and channel pair where this costs ``alpha^2``: on the lean pair's
7 x 7 outputs (one 8 x 8 tile, m = 7, r = 2) 64 against 196, a third.

**Backward**, as the exact adjoints of those linear maps (so the transposed
conv, the adjoint of a conv, runs the same engine the other way round)::

    dM[t, xi, o]  = (A dy_{t,o} A^T)[xi]                output side
    dV[:, xi]     = dM[:, xi] @ U[xi]^T                 then dx: B dV B^T, patches
                                                        summed into the phase grids
    dU[xi]        = V[:, xi]^T @ dM[:, xi]              then dW = G^T dU G

In float32 the transforms add rounding: :func:`tile_sizes` keeps alpha <= 8,
where a tile's relative error stays near 1e-5 (measured in
benchmarks/RESULTS.md, "Winograd error").  The reference functions below are
written against ``xp``; the CPU's kernel table has fused twins.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ...runtime.arrays import get_xp
from ...runtime.registry import reference
from .im2col import batched_matmul

# Toom-Cook's interpolation points, in the order they are taken (infinity comes last
# by construction): small integers and halves keep the transforms' entries exact in
# binary and their float32 rounding small.
POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0)
MAX_ALPHA = 8  # the largest tile read, alpha = m + r - 1


@lru_cache(maxsize=None)
def toom_cook(m: int, r: int):
    """``(A^T (m, alpha), G (alpha, r), B^T (alpha, alpha))`` of F(m, r) in float64:
    ``y = A^T [(G g) * (B^T d)]`` is the correlation ``y_i = sum_k g_k d_{i+k}`` of a
    tile ``d`` of ``alpha = m + r - 1`` values with ``r`` taps ``g``, for ``i < m``.

    A^T and G evaluate polynomials at alpha - 1 points and at infinity; B^T is then
    the one matrix that makes the identity hold, solved for in float64 (and checked).
    m = 1 is a dot product: identity transforms."""
    a = m + r - 1
    if m == 1:
        return np.ones((1, a)), np.eye(a, r), np.eye(a)
    if a - 1 > len(POINTS):
        raise ValueError(f"F({m}, {r}) needs {a - 1} points; at most {len(POINTS)} are known")
    p = np.array(POINTS[:a - 1])
    AT, G = np.zeros((m, a)), np.zeros((a, r))
    AT[:, :-1] = p[None, :] ** np.arange(m)[:, None]
    G[:-1] = p[:, None] ** np.arange(r)[None, :]
    AT[m - 1, -1] = G[-1, r - 1] = 1.0
    # sum_j AT[i, j] G[j, k] BT[j, l] = [l == i + k], for every i < m, k < r, l < alpha
    E = np.einsum("ij,jk->ikj", AT, G).reshape(m * r, a)
    want = np.array([[float(l == i + k) for l in range(a)] for i in range(m) for k in range(r)])
    BT = np.linalg.lstsq(E, want, rcond=None)[0]
    if np.abs(E @ BT - want).max() > 1e-9:
        raise ArithmeticError(f"no Toom-Cook transform F({m}, {r}) on points {p}")
    return AT, G, BT


def tile_size(out: int, r: int) -> int:
    """The tile m for ``out`` outputs along one axis with ``r`` taps: fewest products
    ``(m + r - 1) * ceil(out / m)`` with alpha <= MAX_ALPHA (the smaller m on a tie)."""
    best = min(range(1, max(1, MAX_ALPHA - r + 1) + 1),
               key=lambda m: ((m + r - 1) * -(-out // m), m))
    return best


class WinogradPlan(NamedTuple):
    """Everything the transforms need for one conv geometry (one axis' values in pairs)."""

    sh: int
    sw: int
    rh: int  # sub-kernel taps, ceil(k / s)
    rw: int
    mh: int  # tile outputs
    mw: int
    th: int  # tiles along each axis
    tw: int
    pt: int
    pl: int
    C: int
    H: int
    W: int
    Ho: int
    Wo: int
    ATh: np.ndarray
    ATw: np.ndarray
    Gh: np.ndarray
    Gw: np.ndarray
    BTh: np.ndarray
    BTw: np.ndarray

    @property
    def ah(self):
        return self.mh + self.rh - 1

    @property
    def aw(self):
        return self.mw + self.rw - 1

    @property
    def Hg(self):
        """Rows of the phase grids the tiles read."""
        return self.th * self.mh + self.rh - 1

    @property
    def Wg(self):
        return self.tw * self.mw + self.rw - 1

    @property
    def Ck(self):
        """Channels of the stride-1 conv: (a, b, c)."""
        return self.C * self.sh * self.sw

    def tiles(self, N):
        return N * self.th * self.tw


@lru_cache(maxsize=None)
def make_plan(g) -> WinogradPlan:
    """The :class:`WinogradPlan` of a :class:`.geometry.ConvGeom`, made once per geometry (the
    CPU's policy asks for it on every forward)."""
    rh, rw = -(-g.kh // g.sh), -(-g.kw // g.sw)
    mh, mw = tile_size(g.Ho, rh), tile_size(g.Wo, rw)
    ATh, Gh, BTh = toom_cook(mh, rh)
    ATw, Gw, BTw = toom_cook(mw, rw)
    return WinogradPlan(g.sh, g.sw, rh, rw, mh, mw, -(-g.Ho // mh), -(-g.Wo // mw), g.pt, g.pl,
                        g.C, g.H, g.W, g.Ho, g.Wo, ATh, ATw, Gh, Gw, BTh, BTw)


def multiply_ratio(g) -> float:
    """This engine's GEMM multiply-adds over the direct conv's, for geometry ``g``."""
    p = make_plan(g)
    return p.sh * p.sw * p.ah * p.aw * p.th * p.tw / (g.Ho * g.Wo * g.kh * g.kw)


def worth_it(g, O: int) -> bool:
    """Whether the CPU's policy takes this engine: sub-kernels of at most 3 x 3 (the
    phases of k4 s2 and k5 s2, or a k2 or k3 s1 conv), many channels, and at most half
    the products.  Larger sub-kernels need larger tiles, whose float32 error grows."""
    rh, rw = -(-g.kh // g.sh), -(-g.kw // g.sw)
    return rh <= 3 and rw <= 3 and g.C * g.sh * g.sw >= 64 and O >= 32 and multiply_ratio(g) <= 0.5


def _on(xp, a, dtype):
    return xp.asarray(a, dtype=dtype)


# -- the four transforms: reference code (xp), with twins in the CPU's table -------------

def _phase_grids(x, p):
    """``x (N, C, H, W)`` -> ``X (N, Hg, Wg, sh*sw*C)``: the padded image cut into phases,
    the channel index ``kappa = (a, b, c)`` (so a pixel's channels stay side by side)."""
    xp = get_xp(x)
    N = x.shape[0]
    Hp, Wp = p.sh * p.Hg, p.sw * p.Wg
    xpad = xp.zeros((N, p.C, Hp, Wp), dtype=x.dtype)
    h1, w1 = max(0, min(p.H, Hp - p.pt)), max(0, min(p.W, Wp - p.pl))
    xpad[:, :, p.pt:p.pt + h1, p.pl:p.pl + w1] = x[:, :, :h1, :w1]
    return xpad.reshape(N, p.C, p.Hg, p.sh, p.Wg, p.sw).transpose(0, 2, 4, 3, 5, 1).reshape(
        N, p.Hg, p.Wg, p.Ck)


def _from_phase_grids(X, p):
    """The adjoint of :func:`_phase_grids`: ``(N, Hg, Wg, sh*sw*C) -> (N, C, H, W)``."""
    xp = get_xp(X)
    N = X.shape[0]
    xpad = X.reshape(N, p.Hg, p.Wg, p.sh, p.sw, p.C).transpose(0, 5, 1, 3, 2, 4).reshape(
        N, p.C, p.sh * p.Hg, p.sw * p.Wg)
    dx = xp.zeros((N, p.C, p.H, p.W), dtype=X.dtype)
    h1, w1 = max(0, min(p.H, xpad.shape[2] - p.pt)), max(0, min(p.W, xpad.shape[3] - p.pl))
    dx[:, :, :h1, :w1] = xpad[:, :, p.pt:p.pt + h1, p.pl:p.pl + w1]
    return dx


def _patch_index(xp, t, m, a):
    return xp.arange(t)[:, None] * m + xp.arange(a)[None, :]  # (tiles, alpha)


@reference("winograd_image")
def winograd_image(x, p, out=None):
    """The image side: ``x (N, C, H, W) -> V (T, ah*aw, C*sh*sw)``, ``V = B^T d B`` of
    every tile's patch of the phase grids."""
    xp = get_xp(x)
    N = x.shape[0]
    X = _phase_grids(x, p)
    d = X[:, _patch_index(xp, p.th, p.mh, p.ah)][:, :, :, _patch_index(xp, p.tw, p.mw, p.aw)]
    V = xp.einsum("eu,fv,ntuwvk->ntwefk", _on(xp, p.BTh, x.dtype), _on(xp, p.BTw, x.dtype), d)
    V = V.reshape(p.tiles(N), p.ah * p.aw, p.Ck)
    if out is None:
        return xp.ascontiguousarray(V)
    out[...] = V
    return out


@reference("winograd_image_adjoint")
def winograd_image_adjoint(dV, p, N):
    """The adjoint of :func:`winograd_image`: ``dV (T, ah*aw, C*sh*sw) -> dx (N, C, H, W)``;
    each patch ``B dV B^T`` is added into the phase grids where it was read."""
    xp = get_xp(dV)
    d = xp.einsum("eu,fv,ntwefk->ntuwvk", _on(xp, p.BTh, dV.dtype), _on(xp, p.BTw, dV.dtype),
                  dV.reshape(N, p.th, p.tw, p.ah, p.aw, p.Ck))
    X = xp.zeros((N, p.Hg, p.Wg, p.Ck), dtype=dV.dtype)
    for u in range(p.ah):
        for v in range(p.aw):
            X[:, u:u + p.mh * p.th:p.mh, v:v + p.mw * p.tw:p.mw] += d[:, :, u, :, v]
    return _from_phase_grids(X, p)


@reference("winograd_output")
def winograd_output(M, p, N):
    """The output transform: ``M (T, ah*aw, O) -> y (N, O, Ho, Wo)``, ``A^T M A`` a tile."""
    xp = get_xp(M)
    O = M.shape[2]
    y = xp.einsum("ie,jf,ntwefo->notiwj", _on(xp, p.ATh, M.dtype), _on(xp, p.ATw, M.dtype),
                  M.reshape(N, p.th, p.tw, p.ah, p.aw, O))
    y = y.reshape(N, O, p.th * p.mh, p.tw * p.mw)[:, :, :p.Ho, :p.Wo]
    return xp.ascontiguousarray(y)


@reference("winograd_output_adjoint")
def winograd_output_adjoint(dy, p, out=None):
    """The adjoint of :func:`winograd_output`: ``dy (N, O, Ho, Wo) -> dM (T, ah*aw, O)``,
    ``A dy A^T`` a tile (outputs past Ho, Wo read as zeros)."""
    xp = get_xp(dy)
    N, O = dy.shape[:2]
    t = xp.zeros((N, O, p.th * p.mh, p.tw * p.mw), dtype=dy.dtype)
    t[:, :, :p.Ho, :p.Wo] = dy
    dM = xp.einsum("ie,jf,notiwj->ntwefo", _on(xp, p.ATh, dy.dtype), _on(xp, p.ATw, dy.dtype),
                   t.reshape(N, O, p.th, p.mh, p.tw, p.mw)).reshape(p.tiles(N), p.ah * p.aw, O)
    if out is None:
        return xp.ascontiguousarray(dM)
    out[...] = dM
    return out


@reference("winograd_weights")
def winograd_weights(KG, w2, out=None):
    """``U = KG @ w2``: the sub-kernels ``w2 (rh*rw, C*sh*sw*O)`` through ``KG = G (x) G``
    ``(ah*aw, rh*rw)``, the weight transform as one matrix."""
    if out is None:
        return KG @ w2
    out[...] = KG @ w2
    return out


@reference("winograd_weights_adjoint")
def winograd_weights_adjoint(KG, dU):
    """The adjoint of :func:`winograd_weights`: ``KG^T @ dU``."""
    return KG.T @ dU


class WinogradEngine:
    """The engine methods (see :mod:`.layers`) with image side ``V``, output side ``dM``
    and weights ``U``; one instance per layer and device."""

    name = "winograd"

    def __init__(self, device):
        self.device, self.xp = device, device.xp
        k = device.kernel
        self._image, self._image_adjoint = k(winograd_image), k(winograd_image_adjoint)
        self._output, self._output_adjoint = k(winograd_output), k(winograd_output_adjoint)
        self._bmm = k(batched_matmul)
        self._weights, self._weights_adjoint = k(winograd_weights), k(winograd_weights_adjoint)
        self._buffers, self._kron_of = {}, {}
        self._last_weights = None  # (g, W, U) of the last transform, on the CPU

    def plan(self, g) -> WinogradPlan:
        return make_plan(g)

    def buffer(self, name, shape, dtype):
        """A scratch array kept between calls, as large as the largest request so far."""
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self._buffers[name] = self.xp.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)

    def _kron(self, p, dtype):
        """``G (x) G``, ``(ah*aw, rh*rw)``: the weight transform as one matrix, on this device
        (made once per plan and dtype)."""
        key = (p.ah, p.aw, p.rh, p.rw, dtype)
        KG = self._kron_of.get(key)
        if KG is None:
            KG = self._kron_of[key] = self.xp.asarray(np.kron(p.Gh, p.Gw), dtype=dtype)
        return KG

    def weights(self, W, g):
        """``W (O, C, kh, kw) -> U (ah*aw, C*sh*sw, O)``: the phase sub-kernels, transformed.

        On the CPU the last U is kept with a copy of the W it came from and returned again
        while W is unchanged: D's forward in the generator's step and its next forward in
        its own step see the same weights (an 8 MB transform saved a step; comparing W
        costs a read of it, where on a GPU it would wait for the device)."""
        last = self._last_weights
        if last is not None and last[0] == g and last[1].dtype == W.dtype and self.xp.array_equal(last[1], W):
            return last[2]
        self._last_weights = None  # its U is about to be overwritten in the kept buffer
        U = self._transform_weights(W, g)
        if self.device.name == "cpu":
            self._last_weights = (g, W.copy(), U)
        return U

    def _transform_weights(self, W, g):
        p, xp = self.plan(g), self.xp
        O = W.shape[0]
        w = xp.zeros((O, p.C, p.rh * p.sh, p.rw * p.sw), dtype=W.dtype)
        w[:, :, :g.kh, :g.kw] = W
        w = w.reshape(O, p.C, p.rh, p.sh, p.rw, p.sw).transpose(2, 4, 3, 5, 1, 0)  # (di, dj, a, b, c, o)
        U = self._weights(self._kron(p, W.dtype), w.reshape(p.rh * p.rw, p.Ck * O),
                          out=self.buffer("weights", (p.ah * p.aw, p.Ck * O), W.dtype))
        return U.reshape(p.ah * p.aw, p.Ck, O)

    def image_side(self, x, g):
        p = self.plan(g)
        N = x.shape[0]
        return self._image(x, p, out=self.buffer("image", (p.tiles(N), p.ah * p.aw, p.Ck), x.dtype))

    def output_side(self, y, g):
        p = self.plan(g)
        N, O = y.shape[:2]
        return self._output_adjoint(y, p, out=self.buffer("output", (p.tiles(N), p.ah * p.aw, O), y.dtype))

    def _points(self, a, b, n):
        """``out[:, xi] = a[:, xi] @ b[xi]`` for every point xi: ``a (T, ah*aw, k)`` and ``b
        (ah*aw, k, n)`` -> ``(T, ah*aw, n)``, each point's product one GEMM of strided rows."""
        T, P = a.shape[:2]
        out = self.buffer("products", (T, P, n), a.dtype)
        self._bmm(a.transpose(1, 0, 2), b, out=out.transpose(1, 0, 2))
        return out

    def to_output(self, U, V, g):
        p = self.plan(g)
        return self._output(self._points(V, U, U.shape[2]), p, V.shape[0] // (p.th * p.tw))

    def to_image(self, U, dM, g):
        p = self.plan(g)
        dV = self._points(dM, U.transpose(0, 2, 1), U.shape[1])
        return self._image_adjoint(dV, p, dM.shape[0] // (p.th * p.tw))

    def weight_grad(self, V, dM, g):
        """``dU[xi] = V[:, xi]^T dM[:, xi]``, then ``dW = G^T dU G`` cut back to ``(O, C, kh, kw)``."""
        p = self.plan(g)
        O = dM.shape[2]
        dU = self._bmm(V.transpose(1, 2, 0), dM.transpose(1, 0, 2))  # (ah*aw, Ck, O)
        dw = self._weights_adjoint(self._kron(p, dM.dtype), dU.reshape(p.ah * p.aw, p.Ck * O)).reshape(
            p.rh, p.rw, p.sh, p.sw, p.C, O).transpose(5, 4, 0, 2, 1, 3)  # (o, c, di, a, dj, b)
        dw = dw.reshape(O, p.C, p.rh * p.sh, p.rw * p.sw)
        return self.xp.ascontiguousarray(dw[:, :, :g.kh, :g.kw])

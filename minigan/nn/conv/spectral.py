"""Convolutions as products in the discrete Fourier domain.

A convolution (cross-correlation) of geometry ``g`` with stride ``s``,
``y[n, o, p] = sum_{c,i} w[o, c, i] x[n, c, s p + i - pt]`` (one spatial
axis written; the second works the same way), splits into ``s`` stride-1
correlations, one per *phase* of the input: with ``i - pt = s j + a``
(``0 <= a < s``) and ``x_a[m] = x[s m + a]``,
``y[p] = sum_{a,c,i} w[o, c, i] x_a[n, c, p + j(i)]``.  A stride-1
correlation is a pointwise product after a DFT of size ``P``, and the sum
over the channels and phases there is one small complex GEMM per
frequency::

    X[f, n, (c, a)] = sum_m x_a[n, c, m] e^{-i t_f(m)}          image spectrum  (F, N, C*s*s)
    K[f, o, (c, a)] = sum_{i in a} w[o, c, i] e^{+i t_f(j(i))}  kernel spectrum (F, O, C*s*s)
    Y[f]            = X[f] @ K[f]^T                             (N, C*s*s) @ (C*s*s, O)
    y[n, o, p]      = sum_f a_f / P Re(Y[f, n, o] e^{+i t_f(p)})

with ``t_f(m) = 2 pi f m / P`` (in 2-D, ``2 pi (fh m / Ph + fw l / Pw)``).
The spectrum of a real image is conjugate-symmetric, so only one frequency
of each conjugate pair is kept and counted twice (``a_f = 2``; see
:func:`half_spectrum`).  The DFT is circular: ``P`` is made large enough
that no tap wraps onto an output that is kept (:func:`dft_size`).  G's 7x7
layer (stride 1, 5x5 kernel, "same") needs a 9x9 DFT, 41 frequencies; the
stride-2 layers (14x14 <-> 7x7, four phases of 7x7 with 3x3 sub-kernels)
an 8x8 one, 34 frequencies.

Why: the GEMM of the im2col engine spends ``Ho*Wo*kh*kw`` multiply-adds on
each (sample, in channel, out channel) triple; here it is ``4 F s^2`` (a
complex multiply-add is four real ones).  For G's 7x7 layer that is 1225
against 164, for the stride-2 layers 1225 against 544; the transforms
around the products are small GEMMs (``pixels x 2F`` matrices).

Everything is a real linear map given by a matrix, so the backward pass is
the same maps transposed.  Writing ``G`` for the gradient of the loss with
respect to ``Y`` (as ``dL/dRe Y + i dL/dIm Y``, from ``dy`` through the
transpose of the output map)::

    dX[f] = G[f] @ conj(K[f])          dx = transpose of the image map, applied to dX
    dK[f] = G[f]^T @ conj(X[f])        dw = transpose of the kernel map, applied to dK

The conjugates are never taken as a pass over an array: ``conj(G)`` comes
straight out of a transform whose imaginary rows are negated, the products
are then conjugated as a whole (``conj(dX) = conj(G) @ K``, ``conj(dK) =
conj(G)^T @ X``), and the transforms that take them back to pixels negate
their imaginary rows too.

A transposed convolution is the adjoint of a convolution, so it runs the
same pieces the other way round (see :class:`minigan.nn.Conv2DTranspose`).

Arrays: a spectrum is a complex array ``(F, B1, B2)``, C-contiguous, so each
frequency's matrix is one BLAS operand.  The maps between pixels and
spectra are real GEMMs whose rows hold one image's (or kernel's) spectrum,
each value's real and imaginary parts side by side, ``(B, 2F)``: in memory
a complex ``(B, F)``, which :func:`rows_to_spectrum` and its inverse
transpose.

The engine (:class:`SpectralEngine`) has the six methods of the reference
engine (:mod:`.reference`): the image side is ``X``, the output side
``conj(G)``, the weights ``K``.  It runs on the CPU by default; the GPU takes
the im2col engine (this one runs there only when forced).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...runtime.arrays import get_xp
from ...runtime.registry import reference
from .geometry import ConvGeom
from .im2col import batched_matmul

# The spectral path is taken when its estimated multiply-adds (worth_it) are
# below this share of the im2col engine's: its GEMMs are small and have
# transposes and phase splits around them, so they run slower than the big
# ones.  Measured in the DCGAN step: G's 7x7 layer (estimate 0.20) runs 2.5
# times faster; the stride-2 layers (0.66) save 10-25 ms a step.
WORTH_IT = 0.7
# and only with this many channels on both sides (otherwise the transforms
# dominate and the per-frequency GEMMs are too thin to run fast)
MIN_CHANNELS = 16


def _axis(H: int, k: int, s: int, p: int, Ho: int):
    """``(P, Hp)`` along one axis: the DFT size, and the length of a phase image."""
    Hp = -(-H // s)
    jmin, jmax = -p // s, (k - 1 - p) // s  # the taps' offsets within a phase
    # m - q runs over [-(Ho - 1), Hp - 1]; no offset j + tP (t != 0) may land there
    return max(Hp - jmin, jmax + Ho, jmax - jmin + 1, Hp, Ho), Hp


def dft_size(g: ConvGeom):
    """``(Ph, Pw)``: the smallest DFT sizes with no circular wrap onto a kept output."""
    return (_axis(g.H, g.kh, g.sh, g.pt, g.Ho)[0], _axis(g.W, g.kw, g.sw, g.pl, g.Wo)[0])


def half_spectrum(Ph: int, Pw: int):
    """``(fh, fw, a)``: one frequency of each conjugate pair of a real ``Ph x Pw`` image.

    The spectrum of a real image has ``X[-f] = conj(X[f])`` (indices modulo
    ``P``), so each pair is represented once, by its lexicographically
    smaller member, and counted twice (``a = 2``); the frequencies that are
    their own conjugate count once.  A 9x9 DFT keeps 41 of its 81.
    """
    fh, fw = (m.ravel() for m in np.meshgrid(np.arange(Ph), np.arange(Pw), indexing="ij"))
    ch, cw = -fh % Ph, -fw % Pw
    keep = (fh < ch) | ((fh == ch) & (fw <= cw))
    own = (fh == ch) & (fw == cw)
    return fh[keep], fw[keep], np.where(own[keep], 1.0, 2.0)


def frequencies(g: ConvGeom) -> int:
    return len(half_spectrum(*dft_size(g))[0])


@lru_cache(maxsize=256)  # asked on every forward; the answer depends on the shapes only
def worth_it(g: ConvGeom, N: int, O: int) -> bool:
    """Whether the spectral path should beat the im2col engine for this conv.

    Counts multiply-adds per sample: im2col ``Ho*Wo*kh*kw*C*O``; here
    ``4*F*S*C*O`` for the per-frequency GEMMs (``S = sh*sw`` phases),
    ``2F(S*Hp*Wp*C + Ho*Wo*O)`` for the two transforms, and the kernel's
    transform shared by the batch.
    """
    if min(g.C, O) < MIN_CHANNELS:
        return False
    F, C, S = frequencies(g), g.C, g.sh * g.sw
    pixels = S * _axis(g.H, g.kh, g.sh, g.pt, g.Ho)[1] * _axis(g.W, g.kw, g.sw, g.pl, g.Wo)[1]
    direct = g.Ho * g.Wo * g.kh * g.kw * C * O
    spectral = 4 * F * S * C * O + 2 * F * (pixels * C + g.Ho * g.Wo * O) \
        + 2 * F * S * g.kh * g.kw * C * O / max(N, 1)
    return spectral < WORTH_IT * direct


def _angles(freqs, rows, cols, P: tuple):
    """``t_f(m, l)``: a row per frequency, a column per pixel ``(m, l)`` of ``rows x cols``."""
    fh, fw = (f.reshape(-1, 1, 1) for f in freqs)
    m = np.asarray(rows).reshape(1, -1, 1)
    l_ = np.asarray(cols).reshape(1, 1, -1)
    t = 2 * np.pi * ((fh * m % P[0]) / P[0] + (fw * l_ % P[1]) / P[1])
    return t.reshape(len(fh), -1)


def _planes(t, im_sign, scale=1.0):
    """``(2F, pixels)``: ``scale cos t`` and ``im_sign scale sin t`` in turn, the rows that
    make (or read) each frequency's real and imaginary parts."""
    return np.stack([scale * np.cos(t), im_sign * scale * np.sin(t)], axis=1).reshape(-1, t.shape[1])


class SpectralPlan:
    """The transform matrices of one conv geometry, for one dtype and array module.

    ``F`` frequencies, ``S = sh*sw`` phases.  The maps, each a real matrix
    whose ``2F`` side runs over the frequencies, real part then imaginary
    part of each:

    * ``image (Hp*Wp, 2F)``: a phase image -> its spectrum (``e^{-it}``);
      ``image_c (2F, Hp*Wp)`` takes ``conj(dX)`` back to pixels.
    * ``kernel``: for each phase, ``(taps, T (taps, 2F))``: the taps of one
      (o, c) kernel that fall in that phase -> the spectrum of that
      sub-kernel (``e^{+it}``, each tap at its offset ``j`` within its
      phase); ``kernel_c``: ``(taps, T (2F, taps))``, taking ``conj(dK)``
      back.  One small GEMM per phase: a single ``(kh*kw, S*2F)`` matrix
      would be ``(S-1)/S`` zeros (stride-2 layers, 8192 kernels: the
      GEMM back to taps 1.5-1.8 -> 1.0-1.4 ms; the one into spectra
      about even).
    * ``output (2F, Ho*Wo)``: ``Y`` -> output pixels (with the ``a_f/(Ph Pw)``
      weights); ``output_c (Ho*Wo, 2F)`` takes ``dy`` to ``conj(G)``.
    """

    def __init__(self, g: ConvGeom, dtype, device):
        self.g, self.xp = g, device.xp
        xp = self.xp
        self._to_spectrum_k, self._to_rows_k = device.kernel(rows_to_spectrum), device.kernel(spectrum_to_rows)
        self._split_k, self._merge_k = device.kernel(split_phases), device.kernel(merge_phases)
        (Ph, self.Hp), (Pw, self.Wp) = (_axis(g.H, g.kh, g.sh, g.pt, g.Ho),
                                        _axis(g.W, g.kw, g.sw, g.pl, g.Wo))
        P = (Ph, Pw)
        fh, fw, a = half_spectrum(*P)
        freqs = (fh, fw)
        self.F, self.S = len(fh), g.sh * g.sw
        t_img = _angles(freqs, np.arange(self.Hp), np.arange(self.Wp), P)
        t_out = _angles(freqs, np.arange(g.Ho), np.arange(g.Wo), P)
        a = (a / (Ph * Pw)).reshape(-1, 1)
        # tap i reads x[s q + i - pt] = x_a[q + j] with i - pt = s j + a
        kernel = np.zeros((g.kh, g.kw, self.S, 2 * self.F))
        for i in range(g.kh):
            jh, ah = divmod(i - g.pt, g.sh)
            for k in range(g.kw):
                jw, aw = divmod(k - g.pl, g.sw)
                kernel[i, k, ah * g.sw + aw] = _planes(_angles(freqs, [jh], [jw], P), 1)[:, 0]
        kernel = kernel.reshape(g.kh * g.kw, self.S, 2 * self.F)
        conj_ims = np.tile([1.0, -1.0], self.F)
        self.kernel, self.kernel_c = [], []
        for p in range(self.S):
            # the taps of phase p have the only non-zero rows (frequency 0 gives each a 1)
            taps = np.flatnonzero(np.abs(kernel[:, p]).sum(axis=1))
            T = xp.asarray(kernel[taps, p], dtype=dtype)
            Tc = xp.ascontiguousarray(xp.asarray((kernel[taps, p] * conj_ims).T, dtype=dtype))
            taps = None if len(taps) == g.kh * g.kw else taps  # all of them: no gather
            self.kernel.append((taps, T))
            self.kernel_c.append((taps, Tc))
        mats = {
            "image": _planes(t_img, -1).T,
            "image_c": _planes(t_img, 1),
            # y = sum_f a (Re Y cos t - Im Y sin t)
            "output": _planes(t_out, -1, a),
            # so dL/dRe Y = a cos t . dy and dL/dIm Y = -a sin t . dy; conjugated
            "output_c": _planes(t_out, 1, a).T,
        }
        for name, m in mats.items():
            setattr(self, name, xp.ascontiguousarray(xp.asarray(m, dtype=dtype)))

    def flops(self, N: int, O: int):
        """``(forward, dx, dW)`` FLOPs of the GEMMs this engine runs for ``N`` samples and
        ``O`` output-side channels: each product ``8 F N (C S) O`` (a complex multiply-add
        is 8 real FLOPs) plus the transforms around it (the output side's spectrum of dy,
        computed once for dx and dW, is counted with dW)."""
        g, F, S = self.g, self.F, self.S
        product = 8 * F * N * g.C * S * O
        image = 2 * N * g.C * S * self.Hp * self.Wp * 2 * F
        kernel = 2 * O * g.C * g.kh * g.kw * S * 2 * F
        output = 2 * N * O * g.Ho * g.Wo * 2 * F
        return product + kernel + image + output, product + image, product + kernel + output

    # -- pixels <-> spectra ---------------------------------------------------------

    def _to_spectrum(self, rows, T, shape):
        """Real rows ``(B, pixels)`` -> complex ``(F, *shape)``, through ``T (pixels, 2F)``."""
        return self._to_spectrum_k(self.xp.matmul(rows, T)).reshape((self.F,) + shape)

    def _from_spectrum(self, z, T):
        """Complex ``(F, ...)`` -> real rows ``(B, pixels)``, through ``T (2F, pixels)``."""
        return self.xp.matmul(self._to_rows_k(z.reshape(self.F, -1)), T)

    def _matmul_into(self, a, b, out):
        """``out[...] = a @ b``, straight into ``out`` (a strided view) on NumPy."""
        if self.xp is np:
            np.matmul(a, b, out=out)
        else:
            out[...] = self.xp.matmul(a, b)

    def image_spectrum(self, x):
        """``x (N, C, H, W) -> X (F, N, C*S)``."""
        N, C = x.shape[:2]
        return self._to_spectrum(self._split(x), self.image, (N, C * self.S))

    def image_pixels(self, dXc, N: int):
        """``conj(dX) (F, N, C*S) -> dx (N, C, H, W)``."""
        return self._merge(self._from_spectrum(dXc, self.image_c), N)

    def kernel_spectrum(self, w):
        """``w (O, C, kh, kw) -> K (F, O, C*S)``."""
        O, C = w.shape[:2]
        w2 = w.reshape(O * C, -1)
        rows = self.xp.empty((O * C, self.S, 2 * self.F), dtype=w.dtype)
        for p, (taps, T) in enumerate(self.kernel):
            self._matmul_into(w2 if taps is None else w2[:, taps], T, rows[:, p])
        z = self._to_spectrum_k(rows.reshape(-1, 2 * self.F))
        return z.reshape(self.F, O, C * self.S)

    def kernel_taps(self, dKc, shape):
        """``conj(dK) (F, O, C*S) -> dw (O, C, kh, kw)``: each tap from its phase's spectrum."""
        rows = self._to_rows_k(dKc.reshape(self.F, -1)).reshape(-1, self.S, 2 * self.F)
        dw = self.xp.empty((rows.shape[0], self.g.kh * self.g.kw), dtype=rows.dtype)
        for p, (taps, Tc) in enumerate(self.kernel_c):
            if taps is None:
                self._matmul_into(rows[:, p], Tc, dw)
            else:
                dw[:, taps] = self.xp.matmul(rows[:, p], Tc)
        return dw.reshape(shape)

    def output_spectrum(self, dy):
        """``dy (N, O, Ho, Wo) -> conj(G) (F, N, O)``."""
        N, O = dy.shape[:2]
        return self._to_spectrum(dy.reshape(N * O, -1), self.output_c, (N, O))

    def output_pixels(self, Y):
        """``Y (F, N, O) -> y (N, O, Ho, Wo)``."""
        N, O = Y.shape[1:]
        return self._from_spectrum(Y, self.output).reshape(N, O, self.g.Ho, self.g.Wo)

    # -- phases ---------------------------------------------------------------------

    def _split(self, x):
        """``x (N, C, H, W) -> (N*C*S, Hp*Wp)``, one phase image a row."""
        g, (N, C) = self.g, x.shape[:2]
        if self.S == 1:
            return x.reshape(N * C, -1)
        return self._split_k(x, g.sh, g.sw, self.Hp, self.Wp).reshape(N * C * self.S, -1)

    def _merge(self, rows, N: int):
        """The adjoint of :meth:`_split`: ``(N*C*S, Hp*Wp) -> (N, C, H, W)``."""
        g = self.g
        C = rows.shape[0] // (N * self.S)
        if self.S == 1:
            return rows.reshape(N, C, g.H, g.W)
        return self._merge_k(rows.reshape(N, C, g.sh, g.sw, self.Hp, self.Wp), g.H, g.W)


class SpectralEngine:
    """The engine methods of :class:`.reference.ReferenceEngine` in the DFT domain: the
    weights become ``(plan, K)``, the image side ``X (F, N, C*S)``, the output side
    ``conj(G) (F, N, O)``.  One instance per layer and device; a plan is made once per
    geometry and dtype."""

    name = "spectral"

    def __init__(self, device):
        if device.name != "cpu":
            raise ValueError("the spectral conv engine runs on the CPU only; on a GPU use "
                             "engine='im2col' (the default there) or 'reference'")
        self.device = device
        self._plans = {}
        self._bmm = device.kernel(batched_matmul)

    def plan(self, g: ConvGeom, dtype) -> SpectralPlan:
        key = (g, np.dtype(dtype).str)
        p = self._plans.get(key)
        if p is None:
            p = self._plans[key] = SpectralPlan(g, dtype, self.device)
        return p

    def weights(self, W, g):
        plan = self.plan(g, W.dtype)
        return plan, plan.kernel_spectrum(W)

    def image_side(self, x, g):
        return self.plan(g, x.dtype).image_spectrum(x)

    def output_side(self, y, g):
        return self.plan(g, y.dtype).output_spectrum(y)

    def to_output(self, wk, X, g):
        """``Y[f] = X[f] @ K[f]^T``, back to pixels ``(N, O, Ho, Wo)``."""
        plan, K = wk
        return plan.output_pixels(self._bmm(X, K.transpose(0, 2, 1)))

    def to_image(self, wk, Gc, g):
        """``conj(dX)[f] = conj(G)[f] @ K[f]``, back to pixels ``(N, C, H, W)``."""
        plan, K = wk
        return plan.image_pixels(self._bmm(Gc, K), Gc.shape[1])

    def weight_grad(self, X, Gc, g):
        """``conj(dK)[f] = conj(G)[f]^T @ X[f]``, back to taps ``(O, C, kh, kw)``."""
        plan = self.plan(g, X.real.dtype)
        O = Gc.shape[2]
        return plan.kernel_taps(self._bmm(Gc.transpose(0, 2, 1), X), (O, g.C, g.kh, g.kw))

    def flops(self, g: ConvGeom, N: int, O: int, dtype=np.float32):
        """``(forward, dx, dW)`` FLOPs of the products this engine runs (:meth:`SpectralPlan.flops`)."""
        return self.plan(g, dtype).flops(N, O)


# -- the layouts around the products (references of the CPU's Numba twins) -----------

@reference("split_phases")
def split_phases(x, sh: int, sw: int, Hp: int, Wp: int):
    """``x (N, C, H, W) -> (N, C, sh, sw, Hp, Wp)``, the ``sh*sw`` phases of a strided
    conv's input: ``[n, c, a, b, m, l] = x[n, c, sh*m + a, sw*l + b]`` (zero past the image)."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    if (Hp * sh, Wp * sw) != (H, W):
        padded = xp.zeros((N, C, Hp * sh, Wp * sw), dtype=x.dtype)
        padded[:, :, :H, :W] = x
        x = padded
    return xp.ascontiguousarray(x.reshape(N, C, Hp, sh, Wp, sw).transpose(0, 1, 3, 5, 2, 4))


@reference("merge_phases")
def merge_phases(r, H: int, W: int):
    """The adjoint of :func:`split_phases`: ``(N, C, sh, sw, Hp, Wp) -> (N, C, H, W)``."""
    N, C, sh, sw, Hp, Wp = r.shape
    x = r.transpose(0, 1, 4, 2, 5, 3).reshape(N, C, Hp * sh, Wp * sw)[:, :, :H, :W]
    return get_xp(r).ascontiguousarray(x)


@reference("rows_to_spectrum")
def rows_to_spectrum(r):
    """Real rows ``(B, 2F)``, each the real and imaginary parts of F complex values in
    turn, -> complex ``(F, B)``, C-contiguous (one matrix per frequency)."""
    xp = get_xp(r)
    z = xp.empty((r.shape[1] // 2, r.shape[0]), dtype=xp.result_type(r.dtype, xp.complex64))
    z.real[...] = r[:, 0::2].T
    z.imag[...] = r[:, 1::2].T
    return z


@reference("spectrum_to_rows")
def spectrum_to_rows(z):
    """Inverse of :func:`rows_to_spectrum`: complex ``(F, B)`` -> real rows ``(B, 2F)``."""
    xp = get_xp(z)
    r = xp.empty((z.shape[1], 2 * z.shape[0]), dtype=z.real.dtype)
    r[:, 0::2] = z.real.T
    r[:, 1::2] = z.imag.T
    return r


__all__ = ["SpectralEngine", "SpectralPlan", "worth_it", "dft_size", "half_spectrum", "frequencies"]

"""The hot loops, one file per backend: the conv engine and the elementwise passes.

Every function here takes a :class:`ConvGeom` that describes one 2-D
convolution (the "forward" direction: input ``(N, C, H, W)`` to output
``(N, O, Ho, Wo)``) and moves data between the image layout and the column
layout that turns the convolution into GEMMs::

    cols[(c, i, j), n, (oh, ow)] = x_pad[n, c, oh*sh + i, ow*sw + j]
    cols.shape == (C*kh*kw, N, Ho*Wo)

The rows follow the weight's own order, so a weight ``(O, C, kh, kw)``
enters as the view ``Wm = W.reshape(O, -1)``.  Sample n's columns
``cols[:, n]`` are a ``(C*kh*kw, Ho*Wo)`` matrix (rows ``N*Ho*Wo`` apart,
which BLAS takes as it is), and ``Wm @ cols[:, n]`` is sample n's output
``(O, Ho*Wo)``, already NCHW.  The same array is also one matrix over the
batch, ``cols.reshape(C*kh*kw, N*Ho*Wo)``, for layers whose samples have too
few output pixels for per-sample GEMMs (:mod:`minigan.nn.conv`).

``im2col`` builds the columns; ``col2im`` is its adjoint: every input pixel
sums the column entries that read it.  The dispatch below picks the code:

* CuPy input: the CuPy kernels (``cupy_gpu.py``) when they exist, else the
  NumPy reference code, which is written against ``xp`` and runs there too;
* NumPy input: Numba (``numba_cpu.py``), unless ``MINIGAN_KERNELS=numpy``
  selects the readable reference (``numpy_ref.py``).

Besides the conv engine the same dispatch serves the passes around it that
NumPy would do in several sweeps with temporaries: the spectral engine's
phase splits and transposes, LeakyReLU, dropout and their gradients,
BatchNorm's three passes, the BCE loss, the Adam update and the weight
average's update.  Layers call these functions, never a backend module, so
a CuPy array never reaches a Numba kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import backend
from . import numpy_ref


@dataclass(frozen=True)
class ConvGeom:
    """Shape bookkeeping of one convolution ``(N, C, H, W) -> (N, ?, Ho, Wo)``.

    ``pt, pb, pl, pr`` are the zero paddings at the top, bottom, left and
    right; they may differ ("same" padding puts the odd pixel at the bottom
    and right).  ``Ho = (H + pt + pb - kh) // sh + 1`` and likewise ``Wo``.
    """

    C: int
    H: int
    W: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int

    @property
    def Ho(self) -> int:
        return (self.H + self.pt + self.pb - self.kh) // self.sh + 1

    @property
    def Wo(self) -> int:
        return (self.W + self.pl + self.pr - self.kw) // self.sw + 1

    @property
    def K(self) -> int:
        """Column rows per sample: ``C * kh * kw``."""
        return self.C * self.kh * self.kw


def _module_for(a):
    if backend.is_gpu_array(a):
        try:
            from . import cupy_gpu  # noqa: PLC0415

            return cupy_gpu
        except ImportError:
            return numpy_ref
    if backend.kernel_path() == "numpy":
        return numpy_ref
    from . import numba_cpu  # noqa: PLC0415  (compiles lazily on first use)

    return numba_cpu


def im2col(x, g: ConvGeom, out=None):
    """``x (N, C, H, W) -> cols (C*kh*kw, N, Ho*Wo)``; padding is read as zeros.

    ``out``, if given, is a C-contiguous array of that shape to write into.
    """
    return _module_for(x).im2col(x, g, out)


def col2im(cols, g: ConvGeom, out=None):
    """Adjoint of :func:`im2col`: ``cols (C*kh*kw, N, Ho*Wo) -> (N, C, H, W)``; every
    pixel sums the column entries that read it (entries that read padding are dropped)."""
    return _module_for(cols).col2im(cols, g, out)


def batched_matmul(a, b, out=None):
    """``a (F, m, k) @ b (F, k, n) -> (F, m, n)``; either operand may be one 2-D matrix,
    shared by all F products.  On the Numba path the F products run as one run per
    BLAS thread, side by side (:mod:`minigan.kernels.blas`)."""
    if backend.is_gpu_array(a):
        r = backend.get_xp(a).matmul(a, b)
        if out is None:
            return r
        out[...] = r  # out may be a strided view, which CuPy's matmul need not take
        return out
    if _module_for(a if a.ndim == 3 else b) is numpy_ref:
        return backend.get_xp(a).matmul(a, b, out=out)
    from . import blas  # noqa: PLC0415

    return blas.batched_matmul(a, b, out=out)


def split_phases(x, sh: int, sw: int, Hp: int, Wp: int):
    """``x (N, C, H, W) -> (N, C, sh, sw, Hp, Wp)``, the ``sh*sw`` phases of a strided
    conv's input: ``[n, c, a, b, m, l] = x[n, c, sh*m + a, sw*l + b]`` (zero past the image)."""
    return _module_for(x).split_phases(x, sh, sw, Hp, Wp)


def merge_phases(r, H: int, W: int):
    """The adjoint of :func:`split_phases`: ``(N, C, sh, sw, Hp, Wp) -> (N, C, H, W)``."""
    return _module_for(r).merge_phases(r, H, W)


def rows_to_spectrum(r):
    """Real rows ``(B, 2F)``, each the real and imaginary parts of F complex values in
    turn, -> complex ``(F, B)``, C-contiguous (one matrix per frequency)."""
    return _module_for(r).rows_to_spectrum(r)


def spectrum_to_rows(z):
    """Inverse of :func:`rows_to_spectrum`: complex ``(F, B)`` -> real rows ``(B, 2F)``."""
    return _module_for(z).spectrum_to_rows(z)


def leaky_relu(x, slope: float):
    """``y = x if x > 0 else slope * x``, a new array."""
    return _module_for(x).leaky_relu(x, slope)


def leaky_relu_grad(dy, x, slope: float):
    """``dL/dx = dy if x > 0 else slope * dy``, a new array."""
    return _module_for(dy).leaky_relu_grad(dy, x, slope)


def dropout(x, p: float):
    """Inverted dropout in training mode: ``(y, keep)`` with ``y = x * keep / (1 - p)``.

    ``keep ~ Bernoulli(1 - p)`` is drawn from minigan's global generator (so a
    seed fixes it); the two paths draw different masks from it.
    """
    return _module_for(x).dropout(x, p)


def dropout_grad(dy, keep, p: float):
    """``dL/dx = dy * keep / (1 - p)``."""
    return _module_for(dy).dropout_grad(dy, keep, p)


def batchnorm_stats(x):
    """Per-channel ``(mean, biased variance)`` of ``x (N, C)`` or ``(N, C, H, W)``."""
    return _module_for(x).batchnorm_stats(x)


def batchnorm_apply(x, mu, inv_std, gamma, beta):
    """``x -> (y, xh)`` with ``xh = (x - mu) * inv_std`` and ``y = gamma * xh + beta``, per channel."""
    return _module_for(x).batchnorm_apply(x, mu, inv_std, gamma, beta)


def batchnorm_grad(dy, xh, gamma, inv_std, training: bool):
    """``(dx, dgamma, dbeta)`` of BatchNorm for ``dy`` and the cached ``xh`` (math in :mod:`minigan.nn.batchnorm`)."""
    return _module_for(dy).batchnorm_grad(dy, xh, gamma, inv_std, training)


def adam_update(ps, gs, ms, vs, lr: float, b1: float, b2: float, eps: float, t: int, memo=None):
    """One Adam step at step count ``t`` over the lists ``ps`` (parameters), ``gs``
    (their gradients), ``ms`` and ``vs`` (moments), updating ``ps``, ``ms`` and
    ``vs`` in place.

    The Numba path updates them all in one launch; ``memo``, a dict the caller
    keeps between steps, lets it reuse what it builds from the lists.  Arrays
    that are not C-contiguous, or of mixed dtypes, take the reference code.
    """
    if ps:
        _module_for(ps[0]).adam_update(ps, gs, ms, vs, lr, b1, b2, eps, t, memo)


def ema_update(avgs, thetas, weight: float, memo=None):
    """``avg += weight * (theta - avg)`` for each pair of the lists ``avgs`` and ``thetas``, in
    place: a moving average with decay ``1 - weight`` (:mod:`minigan.gan.averaging`).

    ``avgs`` may be of a wider dtype than ``thetas`` (a float64 average of float32
    weights); the difference is taken in the average's dtype.  The Numba path updates
    them all in one launch, ``memo`` as for :func:`adam_update`.
    """
    if avgs:
        _module_for(avgs[0]).ema_update(avgs, thetas, weight, memo)


def bce_with_logits(z, t):
    """``(sum of the losses, sigmoid(z) - t)``: binary cross-entropy on logits ``z`` against
    targets ``t`` (a float, or an array shaped like ``z``), summed in float64."""
    return _module_for(z).bce_with_logits(z, t)

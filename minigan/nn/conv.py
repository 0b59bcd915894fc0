"""2-D convolution and transposed convolution on one im2col engine.

Layout is NCHW.  A convolution with weight ``W (O, C, kh, kw)`` is one GEMM
per sample over the columns of its input (see :mod:`minigan.kernels`)::

    cols    = im2col(x)                   (K, N, P), K = C*kh*kw, P = Ho*Wo
    Wm      = W.reshape(O, K)             (a view: the columns follow W's order)
    y[n]    = Wm @ cols[:, n] + b         (O, P)  -> y (N, O, Ho, Wo) as it lies

and its backward pass, with ``dy[n]`` sample n's upstream gradient as an
``(O, P)`` matrix::

    dWm         = dy' @ cols.reshape(K, N*P)^T    (O, K), dy' = dy as (O, N*P)
    db          = sum of dy over n and pixels     (O,)
    dcols[:, n] = Wm^T @ dy[n];  dx = col2im(dcols)

The per-sample products read and write NCHW arrays as they lie and run as
batched GEMMs (:func:`minigan.kernels.batched_matmul`: on the CPU, half the
samples on each BLAS thread).  Where a sample has few output pixels
(``PER_SAMPLE_MIN_PIXELS``) they run instead as one GEMM over the batch
with the small side (``y``) copied to ``(O, N, P)``; the columns are never
copied.  The weight gradient follows the same rule: one GEMM over the batch
for few pixels, per-sample products summed in chunks for many.

The transposed convolution is the adjoint of that map, so it runs the same
two pieces the other way round: its forward is the conv's ``dx`` (GEMM then
col2im) and its backward ``dx`` is the conv's forward (im2col then GEMM).
Its weight ``W (in, out, kh, kw)`` is exactly the weight of the conv it is
the adjoint of (that conv maps ``out`` channels to ``in``), which is also
PyTorch's layout.  Strides cost nothing extra: no zeros are inserted.

A conv with many channels on a small image (the DCGAN's layers with 64 or
more channels on both sides) runs instead as products in the DFT domain
(:mod:`minigan.nn.conv_fft`): per (sample, in, out) channel triple G's 7x7
layer needs 164 multiply-adds there against 1225 here, the stride-2 layers
544.  :func:`conv_fft.worth_it` decides from the shapes; ``layer.spectral``
(None, True or False) overrides it.  The NumPy reference kernels
(``MINIGAN_KERNELS=numpy``) and CuPy arrays take the im2col engine unless
forced.

Padding is an int, a pair ``(ph, pw)``, ``"valid"`` (no padding) or
``"same"`` (Keras/TensorFlow meaning): with stride s the conv gives
``ceil(H / s)`` rows, padding ``max((ceil(H/s) - 1)*s + k - H, 0)`` in all,
the odd pixel at the bottom/right; the transposed conv with ``"same"`` gives
``H * s`` rows and is exactly the adjoint of that conv on an ``H*s`` input.
"""
from __future__ import annotations

import math

from .. import backend, kernels
from ..kernels import ConvGeom
from . import conv_fft
from . import init as _init
from .layer import Layer, ShapeError


def _pair(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _check_padding(padding):
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be an int, a pair, 'same' or 'valid'; got {padding!r}")
        return padding
    p = _pair(padding, "padding")
    if min(p) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return p


def same_padding(size: int, k: int, s: int):
    """(before, after) zero padding of TensorFlow's "same" rule along one axis."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _pads(padding, H, W, kh, kw, sh, sw):
    if padding == "same":
        return same_padding(H, kh, sh) + same_padding(W, kw, sw)
    if padding == "valid":
        return 0, 0, 0, 0
    ph, pw = padding
    return ph, ph, pw, pw


def weight_matrix(W):
    """A weight ``(O, C, kh, kw)`` as the GEMM's ``(O, C*kh*kw)`` matrix (a view)."""
    return W.reshape(W.shape[0], -1)


# A sample's products are (O x K) @ (K x P): with few output pixels P they are
# too thin for BLAS, and one GEMM over the whole batch, with the small side
# copied to (O, N, P), runs faster (G's 7x7 layer forced onto im2col, P = 49,
# forward: 48 -> 35 ms); with many (D's first conv, P = 196) the per-sample
# products win (batch 64: 0.41 ms, against 0.58 + 0.14 for the copy).
PER_SAMPLE_MIN_PIXELS = 128
# the per-sample weight-gradient parts held at once: (samples, O, K) under this
# many elements (D's first conv: all 128 samples at once)
SUM_CHUNK = 1 << 22


def _per_sample(cols):
    """``(K, N, P)`` columns as ``N`` matrices ``(K, P)``: a view, no copy."""
    return cols.transpose(1, 0, 2)


def _batch_major(y):
    """``(N, O, P) -> (O, N*P)``, a copy: the output side as one matrix over the batch."""
    N, O, P = y.shape
    return backend.get_xp(y).ascontiguousarray(y.transpose(1, 0, 2)).reshape(O, N * P)


def times_cols(Wm, cols):
    """``y[n] = Wm @ cols[:, n]``: ``(O, K)`` and ``(K, N, P)`` -> ``y (N, O, P)``."""
    K, N, P = cols.shape
    if P >= PER_SAMPLE_MIN_PIXELS:
        return kernels.batched_matmul(Wm, _per_sample(cols))
    y = (Wm @ cols.reshape(K, N * P)).reshape(-1, N, P)
    return backend.get_xp(y).ascontiguousarray(y.transpose(1, 0, 2))


def into_cols(Wm, y, cols):
    """``cols[:, n] = Wm^T @ y[n]`` for ``y (N, O, P)``, into the buffer ``cols (K, N, P)``."""
    xp = backend.get_xp(y)
    WmT = xp.ascontiguousarray(Wm.T)
    if y.shape[2] >= PER_SAMPLE_MIN_PIXELS:
        kernels.batched_matmul(WmT, y, out=_per_sample(cols))
    else:
        xp.matmul(WmT, _batch_major(y), out=cols.reshape(cols.shape[0], -1))
    return cols


def conv_apply(x, Wm, g: ConvGeom, cols=None):
    """The conv map: ``x (N, C, H, W) -> (N, O, Ho*Wo)``, plus the columns it used.

    ``cols`` is an optional buffer ``(K, N, Ho*Wo)`` for the columns.
    """
    cols = kernels.im2col(x, g, out=cols)
    return times_cols(Wm, cols), cols


def conv_adjoint(y, Wm, g: ConvGeom, cols=None):
    """The adjoint map: ``y (N, O, Ho*Wo) -> (N, C, H, W)``; ``cols`` is an optional buffer."""
    if cols is None:
        cols = backend.get_xp(y).empty((Wm.shape[1], y.shape[0], y.shape[2]), dtype=y.dtype)
    return kernels.col2im(into_cols(Wm, y, cols), g)


def weight_gradient(y, cols):
    """``sum_n y[n] @ cols[:, n]^T`` for ``y (N, O, P)``, ``cols (K, N, P)``: ``(O, K)``.

    Few pixels a sample: one GEMM over the batch.  Many: the per-sample
    products, in chunks of samples whose ``(O, K)`` parts are summed (D's
    first conv at batch 128: 0.7-1.0 ms, against 1.9 ms for the one GEMM,
    whose inner dimension N*P is long and outer ones are 64 and 25, plus
    1.6 ms to copy ``y``).
    """
    N, O, P = y.shape
    K = cols.shape[0]
    if P < PER_SAMPLE_MIN_PIXELS:
        return _batch_major(y) @ cols.reshape(K, -1).T
    step = max(1, min(N, SUM_CHUNK // (O * K)))
    total = None
    for n0 in range(0, N, step):
        part = kernels.batched_matmul(y[n0:n0 + step], _per_sample(cols)[n0:n0 + step].transpose(0, 2, 1))
        total = part.sum(axis=0) if total is None else total + part.sum(axis=0)
    return total


class _ConvBase(Layer):
    def __init__(self, in_ch, out_ch, kernel_size, stride, padding, bias, wshape, init):
        super().__init__()
        self.in_ch, self.out_ch = int(in_ch), int(out_ch)
        if self.in_ch < 1 or self.out_ch < 1:
            raise ValueError(f"{type(self).__name__}: channel counts must be positive")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"{type(self).__name__}: kernel_size and stride must be positive")
        self.padding = _check_padding(padding)
        kh, kw = self.kernel_size
        self._add_param("W", _init.get(init)(wshape, *self._fans(kh, kw)))
        if bias:
            self._add_param("b", _init.zeros((out_ch,)))
        self._geoms = {}
        self._scratch = {}
        self._plans = conv_fft.Plans()
        self.spectral = None  # the engine: None decides per shape (conv_fft.worth_it), True / False force it

    def _fans(self, kh, kw):
        return self.in_ch * kh * kw, self.out_ch * kh * kw

    def fans(self):
        return self._fans(*self.kernel_size)

    def geometry(self, H, W) -> ConvGeom:
        """The :class:`ConvGeom` for an input of H x W pixels, made once per input size."""
        g = self._geoms.get((H, W))
        if g is None:
            g = self._geoms[(H, W)] = self._make_geometry(H, W)
        return g

    def _spectral_plan(self, g: ConvGeom, x, O: int):
        """The DFT-domain plan for this call (see :mod:`minigan.nn.conv_fft`), or None for im2col.

        ``O`` is the channel count on the output side of the conv ``g`` describes.
        """
        if self.spectral is False:
            return None
        if self.spectral is None and (backend.is_gpu_array(x) or backend.kernel_path() == "numpy"
                                      or not conv_fft.worth_it(g, x.shape[0], O)):
            return None
        return self._plans(g, x)

    @property
    def last_plan(self):
        """The :class:`conv_fft.SpectralPlan` the last forward ran on, or None (im2col, or none yet)."""
        cached = self._cache[0] if self._cache else None
        return cached[0] if isinstance(cached, tuple) else None

    def _check_input(self, x):
        self._check_float(x)
        if x.ndim != 4 or x.shape[1] != self.in_ch:
            raise self._bad_input(x, f"(N, {self.in_ch}, H, W)")

    def _buffer(self, name, shape, like):
        """A scratch array kept between calls (refilled every time; never handed out).

        The column matrices are large (tens of MB for the DCGAN), and a fresh
        one costs page faults on every step; a layer keeps one store of each
        kind, as large as the largest request so far (D sees 2N samples in
        its own step and N in G's, so a store sized to the last request was
        made anew twice a step).
        """
        size = math.prod(shape)
        buf = self._scratch.get(name)
        if (buf is None or buf.size < size or buf.dtype != like.dtype
                or type(buf) is not type(like)):
            buf = backend.get_xp(like).zeros(size, dtype=like.dtype)
            self._scratch[name] = buf
        return buf[:size].reshape(shape)

    def _spectral_weight_grads(self, plan, Gc, X, dy):
        """Add dW from the spectra ``conj(G)`` (output side) and ``X`` (image side), and db."""
        if self.trainable:
            self.grads["W"] += plan.kernel_taps(conv_fft.kernel_grad(Gc, X), self.params["W"].shape)
        self._bias_grad(dy)

    def _add_bias(self, y):
        if "b" in self.params:
            y += self.params["b"].reshape(1, -1, 1, 1)
        return y

    def _bias_grad(self, dy):
        """``db = sum of dy (N, C, H, W) over every axis but the channel's``.

        The sums run as products with vectors of ones (GEMVs), which NumPy's
        reduction over axes (0, 2, 3) is not: D's second conv at batch 2 x 64,
        (128, 128, 7, 7), 461 -> 56 us.
        """
        if not (self.trainable and "b" in self.params):
            return
        N, C = dy.shape[:2]
        per_plane = dy.reshape(N * C, -1) @ self._ones(dy[0, 0].size, dy)
        self.grads["b"] += self._ones(N, dy) @ per_plane.reshape(N, C)

    def _ones(self, n, like):
        """A length-``n`` vector of ones of ``like``'s array type and dtype, kept between calls."""
        v = self._scratch.get("ones")
        if v is None or v.size < n or v.dtype != like.dtype or type(v) is not type(like):
            v = self._scratch["ones"] = backend.get_xp(like).ones(max(n, 1), dtype=like.dtype)
        return v[:n]

    def __repr__(self):
        k, s = self.kernel_size, self.stride
        ks = k[0] if k[0] == k[1] else k
        ss = s[0] if s[0] == s[1] else s
        p = self.padding if isinstance(self.padding, str) else (
            self.padding[0] if self.padding[0] == self.padding[1] else self.padding)
        return f"{type(self).__name__}({self.in_ch}->{self.out_ch}, k={ks}, s={ss}, p={p!r})"


class Conv2D(_ConvBase):
    """2-D convolution (cross-correlation, as in every DL library).

    x: (N, in_ch, H, W)  W: (out_ch, in_ch, kh, kw)  b: (out_ch,)  y: (N, out_ch, Ho, Wo)
    with Ho = (H + pt + pb - kh) // sh + 1.
    """

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, padding=0, bias=True, init="glorot"):
        kh, kw = _pair(kernel_size, "kernel_size")
        super().__init__(in_ch, out_ch, kernel_size, stride, padding, bias,
                         (out_ch, in_ch, kh, kw), init)

    def _make_geometry(self, H, W) -> ConvGeom:
        kh, kw = self.kernel_size
        sh, sw = self.stride
        return ConvGeom(self.in_ch, H, W, kh, kw, sh, sw, *_pads(self.padding, H, W, kh, kw, sh, sw))

    def output_shape(self, H, W):
        g = self.geometry(H, W)
        return g.Ho, g.Wo

    def multiply_adds(self, in_shape) -> int:
        """``Ho*Wo * (C*kh*kw) * O`` per sample: one column of K = C*kh*kw inputs times
        ``Wm (O, K)`` for each of the Ho*Wo output pixels (padding taps included)."""
        g = self._make_geometry(*in_shape[-2:])
        return max(g.Ho, 0) * max(g.Wo, 0) * g.K * self.out_ch

    def forward(self, x):
        self._check_input(x)
        N, _, H, W = x.shape
        g = self.geometry(H, W)
        if g.Ho < 1 or g.Wo < 1:
            raise self._bad_input(x, f"(N, {self.in_ch}, H, W)",
                                  f"{H}x{W} is too small for a {g.kh}x{g.kw} kernel with this padding")
        W_ = self.params["W"]
        plan = self._spectral_plan(g, x, self.out_ch)
        if plan is not None:
            K, X = plan.kernel_spectrum(W_), plan.image_spectrum(x)
            self._cache = ((plan, X, K), N, g)
            return self._add_bias(plan.output_pixels(conv_fft.conv(X, K)))
        # the columns stay cached for backward; the previous forward's cache is dead by then
        y, cols = conv_apply(x, weight_matrix(W_), g, cols=self._buffer("cols", (g.K, N, g.Ho * g.Wo), x))
        self._cache = (cols, N, g)
        return self._add_bias(y.reshape(N, self.out_ch, g.Ho, g.Wo))

    def backward(self, dy):
        dY = self._weight_grads(dy)
        cached, N, g = self._cache
        if isinstance(cached, tuple):
            plan, _, K = cached
            return plan.image_pixels(conv_fft.conv_adjoint(dY, K), N)
        return conv_adjoint(dY, weight_matrix(self.params["W"]), g, cols=self._buffer("dcols", cached.shape, dy))

    def backward_weights(self, dy):
        self._weight_grads(dy)  # no dL/dx: one GEMM and one col2im saved

    def _weight_grads(self, dy):
        """Add dW and db for ``dy``; return ``dy`` as the dL/dx product needs it: as
        ``(N, out_ch, Ho*Wo)``, or as ``conj(G)`` on the spectral path."""
        cached, N, g = self._need_cache()
        self._check_dy(dy, (N, self.out_ch, g.Ho, g.Wo))
        if isinstance(cached, tuple):
            plan, X, _ = cached
            Gc = plan.output_spectrum(dy)
            self._spectral_weight_grads(plan, Gc, X, dy)
            return Gc
        dY = backend.get_xp(dy).ascontiguousarray(dy).reshape(N, self.out_ch, -1)
        if self.trainable:
            self.grads["W"] += weight_gradient(dY, cached).reshape(self.params["W"].shape)
        self._bias_grad(dy)
        return dY


class Conv2DTranspose(_ConvBase):
    """Transposed 2-D convolution: the adjoint of :class:`Conv2D`.

    x: (N, in_ch, H, W)  W: (in_ch, out_ch, kh, kw)  b: (out_ch,)  y: (N, out_ch, Ho, Wo)
    with Ho = (H - 1)*s - 2p + kh + output_padding for integer padding p,
    Ho = H*s for "same" and Ho = (H - 1)*s + kh + output_padding for "valid".
    """

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, padding=0, output_padding=0,
                 bias=True, init="glorot"):
        kh, kw = _pair(kernel_size, "kernel_size")
        super().__init__(in_ch, out_ch, kernel_size, stride, padding, bias,
                         (in_ch, out_ch, kh, kw), init)
        self.output_padding = _pair(output_padding, "output_padding")
        oph, opw = self.output_padding
        if not (0 <= oph < self.stride[0] and 0 <= opw < self.stride[1]):
            raise ValueError(f"{self!r}: output_padding {output_padding!r} must be >= 0 and "
                             f"smaller than the stride {self.stride}")
        if self.padding == "same" and (oph or opw):
            raise ValueError(f"{self!r}: output_padding is fixed by padding='same'; leave it 0")

    def _fans(self, kh, kw):
        # the weight (in, out, kh, kw) maps `in` channels onto `out` channels
        return self.in_ch * kh * kw, self.out_ch * kh * kw

    def _make_geometry(self, H, W) -> ConvGeom:
        """Geometry of the adjoint conv: (out_ch, Ho, Wo) -> (in_ch, H, W)."""
        kh, kw = self.kernel_size
        sh, sw = self.stride
        if self.padding == "same":
            Ho, Wo = H * sh, W * sw
            pads = _pads("same", Ho, Wo, kh, kw, sh, sw)
        else:
            ph, pw = (0, 0) if self.padding == "valid" else self.padding
            oph, opw = self.output_padding
            Ho = (H - 1) * sh - 2 * ph + kh + oph
            Wo = (W - 1) * sw - 2 * pw + kw + opw
            pads = (ph, ph, pw, pw)
        return ConvGeom(self.out_ch, Ho, Wo, kh, kw, sh, sw, *pads)

    def output_shape(self, H, W):
        g = self.geometry(H, W)
        return g.H, g.W

    def multiply_adds(self, in_shape) -> int:
        """``H*W * (in*kh*kw) * out`` per sample on an H x W input.

        This layer is the adjoint of the conv ``(out, Ho, Wo) -> (in, H, W)``, which
        costs H*W pixels * (out*kh*kw) taps * in channels.  The forward here is that
        conv's dx GEMM, ``Wm^T (K, in) @ x (in, H*W)`` with K = out*kh*kw: the same
        count (col2im then only sums the columns into place)."""
        H, W = in_shape[-2:]
        kh, kw = self.kernel_size
        return H * W * self.in_ch * kh * kw * self.out_ch

    def forward(self, x):
        self._check_input(x)
        N, _, H, W = x.shape
        g = self.geometry(H, W)
        if g.H < 1 or g.W < 1:
            raise self._bad_input(x, f"(N, {self.in_ch}, H, W)",
                                  f"padding {self.padding} leaves no output pixels")
        assert (g.Ho, g.Wo) == (H, W), (g, H, W)
        W_ = self.params["W"]
        plan = self._spectral_plan(g, x, self.in_ch)
        if plan is not None:
            # x sits on the output side of the conv this layer is the adjoint of
            K, Xc = plan.kernel_spectrum(W_), plan.output_spectrum(x)
            self._cache = ((plan, Xc, K), N, g)
            return self._add_bias(plan.image_pixels(conv_fft.conv_adjoint(Xc, K), N))
        X = backend.get_xp(x).ascontiguousarray(x).reshape(N, self.in_ch, -1)
        self._cache = (X, N, g)
        cols = self._buffer("cols", (g.K, N, H * W), x)
        return self._add_bias(conv_adjoint(X, weight_matrix(W_), g, cols=cols))

    def backward(self, dy):
        cols = self._weight_grads(dy)
        cached, N, g = self._cache
        if isinstance(cached, tuple):
            plan, _, K = cached
            return plan.output_pixels(conv_fft.conv(cols, K))
        dx = times_cols(weight_matrix(self.params["W"]), cols)
        return dx.reshape(N, self.in_ch, g.Ho, g.Wo)

    def backward_weights(self, dy):
        self._weight_grads(dy)  # no dL/dx: one GEMM saved

    def _weight_grads(self, dy):
        """Add dW and db for ``dy``; return what dL/dx reuses: ``im2col(dy)``, or the
        spectrum of ``dy`` on the spectral path."""
        cached, N, g = self._need_cache()
        self._check_dy(dy, (N, self.out_ch, g.H, g.W))
        if isinstance(cached, tuple):
            # dW of the adjoint: the conv's weight gradient with dy as its input, x as its dy
            plan, Xc, _ = cached
            D = plan.image_spectrum(dy)
            self._spectral_weight_grads(plan, Xc, D, dy)
            return D
        # the same column buffer as forward: there it is dead once col2im has run
        cols = kernels.im2col(dy, g, out=self._buffer("cols", (g.K, N, g.Ho * g.Wo), dy))
        if self.trainable:
            self.grads["W"] += weight_gradient(cached, cols).reshape(self.params["W"].shape)
        self._bias_grad(dy)
        return cols

    def __repr__(self):
        r = super().__repr__()
        if any(self.output_padding):
            r = r[:-1] + f", output_padding={self.output_padding})"
        return r


__all__ = ["Conv2D", "Conv2DTranspose", "ShapeError", "same_padding"]

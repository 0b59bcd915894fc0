"""2-D convolution and transposed convolution, two adjoint maps on one engine.

Layout is NCHW.  A convolution with weight ``W (O, C, kh, kw)`` and bias
``b (O,)`` maps the *image side* ``x (N, C, H, W)`` to the *output side*
``y (N, O, Ho, Wo)``::

    y[n, o, p, q] = b[o] + sum_{c,i,j} W[o, c, i, j] x_pad[n, c, p*sh + i, q*sw + j]

and its backward pass, for an upstream gradient ``dy`` on the output side::

    dW[o, c, i, j] = sum_{n,p,q} dy[n, o, p, q] x_pad[n, c, p*sh + i, q*sw + j]
    db[o]          = sum_{n,p,q} dy[n, o, p, q]
    dx             = the adjoint map applied to dy

An *engine* computes the three maps (:mod:`.reference` is the textbook
im2col + GEMM + col2im, :mod:`.im2col` the same with fast kernels and
buffers, :mod:`.spectral` products in the DFT domain).  Every engine has
the same six methods: ``weights`` (W in the engine's form), ``image_side``
and ``output_side`` (an array of either side in the engine's form),
``to_output`` (the conv), ``to_image`` (its adjoint) and ``weight_grad``.

The transposed convolution is the adjoint of a convolution, so it runs the
same engine with the two directions swapped: its forward is the conv's dx
(``to_image``) and its backward dx is the conv's forward (``to_output``).
Its weight ``W (in, out, kh, kw)`` is exactly the weight of the conv it is
the adjoint of (that conv maps ``out`` channels to ``in``), which is also
PyTorch's layout.  Strides cost nothing extra: no zeros are inserted.

Which engine runs is decided per input geometry by :func:`choose_engine`;
``layer.engine`` names one to force it, and ``layer.last_engine`` says
which ran.

Padding is an int, a pair ``(ph, pw)``, ``"valid"`` (no padding) or
``"same"`` (Keras/TensorFlow meaning): with stride s the conv gives
``ceil(H / s)`` rows, padding ``max((ceil(H/s) - 1)*s + k - H, 0)`` in all,
the odd pixel at the bottom/right; the transposed conv with ``"same"`` gives
``H * s`` rows and is exactly the adjoint of that conv on an ``H*s`` input.

A Conv2D after a LabelJoin absorbs it (:mod:`minigan.nn.conditioning`): the join's K
planes are constant, all ones for the sample's label, so with ``W = [W_x, W_l]``
split by input channel, the labels' part of the output is a table of K maps::

    T[k, o] = b[o] + A_h^T W_l[o, k] A_w        (K, O, Ho, Wo)
    A_h[i, p] = 1 where row p*sh + i - pt lies in the image (kh, Ho), A_w likewise

(the sum of the taps that land on the image), ``y[n] = conv(x[n], W_x) + T[labels[n]]``,
and ``dW_l[o, k] = A_h S[k, o] A_w^T`` with ``S[k]`` the sum of dy over the samples of
label k.  The engine runs on x alone (C channels, not C + K).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

from ...runtime.registry import reference
from .. import init as _init
from ..activations import absorbs_relu, add_bias_relu, add_channel_bias, relu_slope, through_relu
from ..conditioning import absorbs_join, joined_labels, label_sums
from ..layer import Layer
from .geometry import ConvGeom, check_padding, pads, pair
from .im2col import Im2colEngine
from .reference import ReferenceEngine
from .spectral import SpectralEngine
from .spectral import worth_it as spectral_pays
from .winograd import WinogradEngine
from .winograd import worth_it as winograd_pays

ENGINES = {"reference": lambda device: ReferenceEngine(), "im2col": Im2colEngine,
           "spectral": SpectralEngine, "winograd": WinogradEngine}


def choose_engine(layer, g: ConvGeom, N: int) -> str:
    """The engine a conv layer runs for an input of geometry ``g`` and batch ``N``.

    ``layer.engine`` when it names one.  Otherwise, on a device with a kernel
    table, the CPU: convs whose stride phases have sub-kernels of at most 3 x 3
    and many channels take the Winograd engine where it needs at most half the
    multiplies (:func:`.winograd.worth_it`: the lean pair's k4 s2 layers with 64
    channels or more, a third of the multiplies; the DCGAN's k5 s2 layers, under
    half); convs with many channels on small images take the spectral engine where
    its multiply-adds are well below im2col's (:func:`.spectral.worth_it`: the
    DCGAN's k5 s1 layer on 7 x 7); everything else takes the im2col engine.
    """
    if layer.engine is not None:
        return layer.engine
    dev = layer.device
    if dev.name == "cpu" and dev.fast:
        if winograd_pays(g, layer.conv_out_channels):
            return "winograd"
        if spectral_pays(g, N, layer.conv_out_channels):
            return "spectral"
    return "im2col"


class ConvContext(NamedTuple):
    """What a conv layer's forward keeps for its backward."""

    engine: object  # the engine that ran
    g: ConvGeom
    N: int  # the batch
    weights: object  # W in the engine's form
    saved: object  # the input in the engine's form: image side (Conv2D) or output side (Conv2DTranspose)
    relu: object = None  # (output, slope) of an absorbed (leaky) ReLU, for its derivative
    joined: object = None  # (labels, K) of an absorbed LabelJoin, for the label planes' dW


@reference("channel_sums")
def channel_sums(dy):
    """``db = sum of dy (N, C, H, W) over every axis but the channel's``, ``(C,)``."""
    return dy.sum(axis=(0, 2, 3))


class _ConvBase(Layer):
    def __init__(self, in_ch, out_ch, kernel_size, stride, padding, bias, wshape, init):
        super().__init__()
        self.in_ch, self.out_ch = int(in_ch), int(out_ch)
        if self.in_ch < 1 or self.out_ch < 1:
            raise ValueError(f"{type(self).__name__}: channel counts must be positive")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"{type(self).__name__}: kernel_size and stride must be positive")
        self.padding = check_padding(padding)
        kh, kw = self.kernel_size
        self._add_param("W", _init.get(init)(wshape, *self._fans(kh, kw)))
        if bias:
            self._add_param("b", _init.zeros((out_ch,)))
        self._geoms = {}
        self._engines = {}
        self.engine = None

    @property
    def engine(self):
        """The engine to force (``"reference"``, ``"im2col"``, ``"spectral"`` or ``"winograd"``), or None
        to let :func:`choose_engine` pick one per input geometry."""
        return self._engine

    @engine.setter
    def engine(self, name):
        if name is not None and name not in ENGINES:
            raise ValueError(f"{self!r}: unknown engine {name!r}; choose from {sorted(ENGINES)} or None")
        self._engine = name

    @property
    def last_engine(self):
        """The name of the engine the last forward ran on (None before any)."""
        return self._cache.engine.name if self._cache is not None else None

    def _engine_for(self, g, N):
        name = choose_engine(self, g, N)
        eng = self._engines.get(name)
        if eng is None:
            eng = self._engines[name] = ENGINES[name](self.device)
        return eng

    def _moved(self):
        self._engines = {}  # their buffers and plans belong to the old device

    def __getstate__(self):
        state = super().__getstate__()
        state["_engines"] = {}  # scratch buffers and plans: made again on use
        return state

    def _fans(self, kh, kw):
        return self.in_ch * kh * kw, self.out_ch * kh * kw

    def fans(self):
        return self._fans(*self.kernel_size)

    def geometry(self, H, W, C=None) -> ConvGeom:
        """The :class:`ConvGeom` for an input of H x W pixels, made once per input size;
        for the first C input channels alone where C is given (an absorbed LabelJoin's)."""
        g = self._geoms.get((H, W, C))
        if g is None:
            g = self._make_geometry(H, W)
            g = self._geoms[(H, W, C)] = g if C is None else dataclasses.replace(g, C=C)
        return g

    def _check_input(self, x, C=None):
        self._check_float(x)
        C = self.in_ch if C is None else C
        if x.ndim != 4 or x.shape[1] != C:
            raise self._bad_input(x, f"(N, {C}, H, W)")
        if x.shape[0] == 0:  # the engines' column layouts have no shape for an empty batch
            raise self._bad_input(x, f"(N, {C}, H, W)", "a batch of at least one sample")

    def absorbs(self, activation):
        return absorbs_relu(self, activation, add_channel_bias)

    def _finish(self, y, context, activation, labelled=None):
        """The output: ``y`` plus the bias (or an absorbed join's ``labelled = (T, labels)``),
        through an absorbed ReLU; keeps ``context``."""
        y, relu = add_bias_relu(self, y, relu_slope(activation), labelled)
        self._cache = context._replace(relu=relu)
        return y

    def _bias_grad(self, dy):
        if self.trainable and "b" in self.params:
            self.grads["b"] += self.device.kernel(channel_sums)(dy)

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
        kh, kw = pair(kernel_size, "kernel_size")
        super().__init__(in_ch, out_ch, kernel_size, stride, padding, bias,
                         (out_ch, in_ch, kh, kw), init)

    @property
    def conv_out_channels(self):
        return self.out_ch

    def _make_geometry(self, H, W) -> ConvGeom:
        kh, kw = self.kernel_size
        sh, sw = self.stride
        return ConvGeom(self.in_ch, H, W, kh, kw, sh, sw, *pads(self.padding, H, W, kh, kw, sh, sw))

    def output_shape(self, H, W):
        g = self.geometry(H, W)
        return g.Ho, g.Wo

    def multiply_adds(self, in_shape) -> int:
        """``Ho*Wo * (C*kh*kw) * O`` per sample: one column of K = C*kh*kw inputs times
        ``Wm (O, K)`` for each of the Ho*Wo output pixels (padding taps included)."""
        g = self._make_geometry(*in_shape[-2:])
        return max(g.Ho, 0) * max(g.Wo, 0) * g.K * self.out_ch

    def absorbs_join(self, before):
        return absorbs_join(self, before, self.in_ch)

    def forward(self, x, activation=None, join=None):
        C = self.in_ch - (join.num_classes if join is not None else 0)
        self._check_input(x, C)
        N, _, H, W = x.shape
        g = self.geometry(H, W, None if join is None else C)
        if g.Ho < 1 or g.Wo < 1:
            raise self._bad_input(x, f"(N, {C}, H, W)",
                                  f"{H}x{W} is too small for a {g.kh}x{g.kw} kernel with this padding")
        eng = self._engine_for(g, N)
        Wt, labelled, joined = self.params["W"], None, None
        if join is not None:  # the label planes' part of the conv, looked up per sample
            joined = joined_labels(join, x)
            labelled = (self._label_maps(Wt[:, C:], g), joined[0])
            Wt = self.xp.ascontiguousarray(Wt[:, :C])
        wk = eng.weights(Wt, g)
        cols = eng.image_side(x, g)
        return self._finish(eng.to_output(wk, cols, g), ConvContext(eng, g, N, wk, cols, joined=joined),
                            activation, labelled)

    def _reach(self, g):
        """``A_h (kh, Ho)``, ``A_w (kw, Wo)``: 1 where tap i (j) of output row p (column q)
        lands on the image, not on the padding."""
        xp, dt = self.xp, self.params["W"].dtype
        rows = xp.arange(g.Ho)[None, :] * g.sh + xp.arange(g.kh)[:, None] - g.pt
        cols = xp.arange(g.Wo)[None, :] * g.sw + xp.arange(g.kw)[:, None] - g.pl
        return ((rows >= 0) & (rows < g.H)).astype(dt), ((cols >= 0) & (cols < g.W)).astype(dt)

    def _label_maps(self, W_l, g):
        """``T (K, O, Ho, Wo)``: the conv of each label's plane of ones, plus the bias."""
        A_h, A_w = self._reach(g)
        T = (A_h.T @ W_l @ A_w).transpose(1, 0, 2, 3)  # (O, K, Ho, Wo) -> (K, O, Ho, Wo)
        b = self.params.get("b")
        return self.xp.ascontiguousarray(T if b is None else T + b[:, None, None])

    def _label_weight_grad(self, S, g):
        """``dW_l (O, K, kh, kw)`` for the label sums ``S (K, O, Ho, Wo)`` of dy."""
        A_h, A_w = self._reach(g)
        return A_h @ S.transpose(1, 0, 2, 3) @ A_w.T

    def backward(self, dy):
        dY = self._weight_grads(dy)
        c = self._cache
        return c.engine.to_image(c.weights, dY, c.g)

    def backward_weights(self, dy):
        self._weight_grads(dy)  # no dL/dx: one GEMM and one col2im saved

    def _weight_grads(self, dy):
        """Add dW and db for ``dy``; return ``dy`` on the output side, for dL/dx."""
        eng, g, N, _, cols, relu, joined = self._need_cache()
        self._check_dy(dy, (N, self.out_ch, g.Ho, g.Wo))
        dy = through_relu(self, dy, relu)
        dY = eng.output_side(dy, g)
        if self.trainable:
            self.grads["W"][:, :g.C] += eng.weight_grad(cols, dY, g)
            if joined is not None:
                self.grads["W"][:, g.C:] += self._label_weight_grad(label_sums(dy, *joined), g)
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
        kh, kw = pair(kernel_size, "kernel_size")
        super().__init__(in_ch, out_ch, kernel_size, stride, padding, bias,
                         (in_ch, out_ch, kh, kw), init)
        self.output_padding = pair(output_padding, "output_padding")
        oph, opw = self.output_padding
        if not (0 <= oph < self.stride[0] and 0 <= opw < self.stride[1]):
            raise ValueError(f"{self!r}: output_padding {output_padding!r} must be >= 0 and "
                             f"smaller than the stride {self.stride}")
        if self.padding == "same" and (oph or opw):
            raise ValueError(f"{self!r}: output_padding is fixed by padding='same'; leave it 0")

    @property
    def conv_out_channels(self):
        return self.in_ch  # the conv this layer is the adjoint of maps out_ch -> in_ch

    def _make_geometry(self, H, W) -> ConvGeom:
        """Geometry of the adjoint conv: (out_ch, Ho, Wo) -> (in_ch, H, W)."""
        kh, kw = self.kernel_size
        sh, sw = self.stride
        if self.padding == "same":
            Ho, Wo = H * sh, W * sw
            p = pads("same", Ho, Wo, kh, kw, sh, sw)
        else:
            ph, pw = (0, 0) if self.padding == "valid" else self.padding
            oph, opw = self.output_padding
            Ho = (H - 1) * sh - 2 * ph + kh + oph
            Wo = (W - 1) * sw - 2 * pw + kw + opw
            p = (ph, ph, pw, pw)
        return ConvGeom(self.out_ch, Ho, Wo, kh, kw, sh, sw, *p)

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

    def forward(self, x, activation=None):
        self._check_input(x)
        N, _, H, W = x.shape
        g = self.geometry(H, W)
        if g.H < 1 or g.W < 1:
            raise self._bad_input(x, f"(N, {self.in_ch}, H, W)",
                                  f"padding {self.padding} leaves no output pixels")
        eng = self._engine_for(g, N)
        wk = eng.weights(self.params["W"], g)
        X = eng.output_side(x, g)  # x sits on the output side of the conv this is the adjoint of
        return self._finish(eng.to_image(wk, X, g), ConvContext(eng, g, N, wk, X), activation)

    def backward(self, dy):
        cols = self._weight_grads(dy)
        c = self._cache
        return c.engine.to_output(c.weights, cols, c.g)

    def backward_weights(self, dy):
        self._weight_grads(dy)  # no dL/dx: one GEMM saved

    def _weight_grads(self, dy):
        """Add dW and db for ``dy``; return ``dy`` on the image side, for dL/dx.

        dW of the adjoint is the conv's weight gradient with dy as its input and
        x as its upstream gradient."""
        eng, g, N, _, X, relu, _ = self._need_cache()
        self._check_dy(dy, (N, self.out_ch, g.H, g.W))
        dy = through_relu(self, dy, relu)
        cols = eng.image_side(dy, g)
        if self.trainable:
            self.grads["W"] += eng.weight_grad(cols, X, g)
        self._bias_grad(dy)
        return cols

    def __repr__(self):
        r = super().__repr__()
        if any(self.output_padding):
            r = r[:-1] + f", output_padding={self.output_padding})"
        return r


__all__ = ["Conv2D", "Conv2DTranspose", "ConvContext", "choose_engine", "ENGINES"]

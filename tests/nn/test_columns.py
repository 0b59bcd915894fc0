"""im2col and col2im, the reference code and every device's kernel, against their definitions.

The kernel tests compare each twin with the reference; these check the reference
itself (and each twin again) independently of any other implementation:

* against loops written from the column layout of :class:`minigan.nn.conv.ConvGeom`,
  ``cols[(c, i, j), n, (oh, ow)] = x_pad[n, c, oh*sh + i, ow*sw + j]`` for im2col
  and, for col2im, every pixel summing the entries that read it;
* col2im as the adjoint of im2col: ``<im2col(x), c> = <x, col2im(c)>``;
* small cases worked out by hand.
"""
import itertools

import numpy as np
import pytest
from helpers import conv_geometries
from hypothesis import given
from hypothesis import strategies as st

from minigan.nn.conv import ConvGeom, reference as ref
from minigan.runtime import devices


def small_geometries():
    return conv_geometries(kernel=4, stride=3, pad=2, size=7, channels=3)


def _taps(g):
    """``(row, oh, ow, h, w)`` for every column entry whose pixel ``(h, w)`` lies in the image."""
    for c, i, j, oh, ow in itertools.product(range(g.C), range(g.kh), range(g.kw), range(g.Ho), range(g.Wo)):
        h, w = oh * g.sh + i - g.pt, ow * g.sw + j - g.pl
        if 0 <= h < g.H and 0 <= w < g.W:
            yield c, (c * g.kh + i) * g.kw + j, oh * g.Wo + ow, h, w


def loop_im2col(x, g):
    N = x.shape[0]
    cols = np.zeros((g.K, N, g.P))
    for c, row, p, h, w in _taps(g):
        cols[row, :, p] = x[:, c, h, w]
    return cols


def loop_col2im(cols, g):
    N = cols.shape[1]
    x = np.zeros((N, g.C, g.H, g.W))
    for c, row, p, h, w in _taps(g):
        x[:, c, h, w] += cols[row, :, p]
    return x


def _impls(device):
    """``(name, im2col, col2im)`` to check on ``device``: the reference code, and the
    device's kernels (its twins, where its table has them)."""
    dev = devices.device(device)
    return [("reference", ref.im2col, ref.col2im), ("kernel", dev.kernel(ref.im2col), dev.kernel(ref.col2im))]


def _np(a):
    return devices.to_numpy(a)


@given(g=small_geometries(), N=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_im2col_and_col2im_match_their_loops(device, g, N, seed):
    rng = np.random.default_rng(seed)
    dev = devices.device(device)
    x, cols = rng.standard_normal((N, g.C, g.H, g.W)), rng.standard_normal((g.K, N, g.P))
    want_cols, want_x = loop_im2col(x, g), loop_col2im(cols, g)
    for name, im2col, col2im in _impls(device):
        np.testing.assert_array_equal(_np(im2col(dev.asarray(x), g)).reshape(g.K, N, g.P), want_cols,
                                      err_msg=f"{name} im2col, {g}")
        np.testing.assert_allclose(_np(col2im(dev.asarray(cols), g)), want_x, rtol=1e-12, atol=1e-12,
                                   err_msg=f"{name} col2im, {g}")


@given(g=small_geometries(), seed=st.integers(0, 2**16))
def test_col2im_is_the_adjoint_of_im2col(device, g, seed):
    rng = np.random.default_rng(seed)
    dev = devices.device(device)
    x, c = rng.standard_normal((2, g.C, g.H, g.W)), rng.standard_normal((g.K, 2, g.P))
    for name, im2col, col2im in _impls(device):
        lhs = float((im2col(dev.asarray(x), g).reshape(g.K, 2, g.P) * dev.asarray(c)).sum())
        rhs = float((dev.asarray(x) * col2im(dev.asarray(c), g)).sum())
        assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs)), (name, g)


def _g(H, W, kh, kw, sh, sw, pt=0, pb=0, pl=0, pr=0, C=1):
    return ConvGeom(C, H, W, kh, kw, sh, sw, pt, pb, pl, pr)


# (geometry, cols of one sample (K, P), its image (C, H, W)), worked out by hand:
# cols rows run over the taps (c, i, j), columns over the output pixels (oh, ow).
BY_HAND = {
    # two taps side by side, stride 2: the windows do not overlap
    "stride = kernel": (_g(1, 4, 1, 2, 1, 2), [[1, 2], [3, 4]], [[[1, 3, 2, 4]]]),
    # stride 1: the middle pixel is read by both windows and sums both entries
    "overlap": (_g(1, 3, 1, 2, 1, 1), [[1, 2], [3, 4]], [[[1, 2 + 3, 4]]]),
    # one pixel of padding each side: the entries that read it (1 and 6) are dropped
    "padding": (_g(1, 2, 1, 3, 1, 1, pl=1, pr=1), [[1, 2], [3, 4], [5, 6]], [[[2 + 3, 4 + 5]]]),
    # stride 3 past a 1-wide kernel: pixels no window reads are zero
    "gaps": (_g(1, 5, 1, 1, 1, 3), [[7, 8]], [[[7, 0, 0, 8, 0]]]),
    # no right padding, kernel twice the stride: the last pixel is read once, by the last tap
    "k = 2s, no right padding": (_g(1, 6, 1, 4, 1, 2), [[1, 2], [3, 4], [5, 6], [7, 8]],
                                  [[[1, 3, 5 + 2, 7 + 4, 6, 8]]]),
    # two rows, two channels, a vertical kernel with padding on top only
    "channels, rows": (_g(2, 1, 2, 1, 1, 1, pt=1, C=2), [[1, 2], [3, 4], [5, 6], [7, 8]],
                       [[[2 + 3], [4]], [[6 + 7], [8]]]),
}


@pytest.mark.parametrize("case", list(BY_HAND))
def test_col2im_by_hand(device, case):
    g, cols, image = BY_HAND[case]
    cols, image = np.array(cols, float), np.array(image, float)
    dev = devices.device(device)
    batch = np.stack([cols, 10 * cols], axis=1)  # (K, 2, P): a second sample, ten times the first
    want = np.stack([image, 10 * image])
    assert batch.shape == (g.K, 2, g.P) and want.shape == (2, g.C, g.H, g.W)
    np.testing.assert_array_equal(loop_col2im(batch, g), want)
    for name, _, col2im in _impls(device):
        np.testing.assert_array_equal(_np(col2im(dev.asarray(batch), g)), want, err_msg=name)

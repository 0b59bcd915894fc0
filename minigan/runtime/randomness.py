"""Counter-based random numbers: every value is a hash of (key, its index).

A training step's noise and fake labels are drawn from a key made of the
run's seed, what is drawn and the step (:func:`key`), and element i of an
array is a function of (key, i) alone (SplitMix64's finaliser, Steele, Lea &
Flood 2014, applied to ``key + i * golden``).  So:

* nothing needs saving to resume exactly: the step number is the state;
* every element can be drawn by its own thread, in any order, on any device
  (CuPy's own generator states cannot be saved; these need none);
* the same code runs on NumPy and CuPy (and has a GPU kernel twin).

Dropout's masks use the same hash (:func:`minigan.nn.misc.keep_mask`).
"""
from __future__ import annotations

import math

from .arrays import get_xp
from .registry import reference

GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
MASK64 = (1 << 64) - 1

# what a key draws, so that two draws of one step never share a key
NOISE, LABELS, EVAL_NOISE = 1, 2, 3


def splitmix64(xp, z):
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic)."""
    u64 = xp.uint64
    z = (z ^ (z >> u64(30))) * u64(MIX1)
    z = (z ^ (z >> u64(27))) * u64(MIX2)
    return z ^ (z >> u64(31))


def _mix(z: int) -> int:
    z = (z ^ (z >> 30)) * MIX1 & MASK64
    z = (z ^ (z >> 27)) * MIX2 & MASK64
    return z ^ (z >> 31)


def key(*parts: int) -> int:
    """A 64-bit key from integers (e.g. seed, what, step): each part hashed into the last."""
    k = 0
    for p in parts:
        k = _mix((k + GOLDEN + (int(p) & MASK64)) & MASK64)
    return k


def hashes(xp, n: int, k: int):
    """``splitmix64(k + i * golden)`` for i < n: n independent 64-bit draws of key ``k``."""
    u64 = xp.uint64
    return splitmix64(xp, xp.arange(n, dtype=u64) * u64(GOLDEN) + u64(k))


@reference("keyed_normal")
def keyed_normal(out, k: int):
    """Fill the contiguous float array ``out`` with N(0, 1) draws of key ``k`` (Box-Muller).

    Element i takes the hashes 2i and 2i+1: ``u1 = (h >> 11 + 1) / 2^53`` in (0, 1],
    ``u2 = (h >> 11) / 2^53`` in [0, 1); ``z = sqrt(-2 ln u1) cos(2 pi u2)``, in float64.
    """
    xp = get_xp(out)
    h = hashes(xp, 2 * out.size, k).reshape(-1, 2)
    scale = 1.0 / 2.0 ** 53
    u1 = ((h[:, 0] >> xp.uint64(11)) + xp.uint64(1)).astype(xp.float64) * scale
    u2 = (h[:, 1] >> xp.uint64(11)).astype(xp.float64) * scale
    z = xp.sqrt(-2.0 * xp.log(u1)) * xp.cos((2.0 * math.pi) * u2)
    out[...] = z.reshape(out.shape)
    return out


@reference("keyed_integers")
def keyed_integers(out, k: int, high: int):
    """Fill the contiguous int64 array ``out`` with integers in [0, high) of key ``k``:
    ``(h >> 32) * high >> 32`` (Lemire's multiply-shift; bias below 2^-32 * high)."""
    xp = get_xp(out)
    h = hashes(xp, out.size, k) >> xp.uint64(32)
    out[...] = ((h * xp.uint64(high)) >> xp.uint64(32)).astype(out.dtype).reshape(out.shape)
    return out


def normal(device, shape, k: int, dtype):
    """A new array of N(0, 1) draws of key ``k`` on ``device``."""
    out = device.xp.empty(shape, dtype=dtype)
    return device.kernel(keyed_normal)(out, k)


def integers(device, shape, k: int, high: int):
    """A new int64 array of draws in [0, high) of key ``k`` on ``device``."""
    out = device.xp.empty(shape, dtype=device.xp.int64)
    return device.kernel(keyed_integers)(out, k, high)

"""Weight initialisers.  Each takes a shape and fan sizes and returns a NumPy array.

* ``normal(std)``: N(0, std^2); DCGAN (Radford et al. 2015) uses std = 0.02.
* ``glorot_uniform``: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010; Keras' default).
* ``he_normal``: N(0, 2 / fan_in) (He et al. 2015), for ReLU networks.
* ``zeros``.

Fans: a Dense ``W (in, out)`` has fan_in = in, fan_out = out; a conv kernel
``(a, b, kh, kw)`` has receptive field ``kh*kw`` and fans ``in_ch*kh*kw`` and
``out_ch*kh*kw``.
"""
from __future__ import annotations

import numpy as np

from ..runtime import devices


def normal(shape, fan_in, fan_out, std=0.02, dtype=devices.DEFAULT_DTYPE):
    return (devices.global_rng().standard_normal(shape) * std).astype(dtype)


def glorot_uniform(shape, fan_in, fan_out, dtype=devices.DEFAULT_DTYPE):
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return devices.global_rng().uniform(-a, a, size=shape).astype(dtype)


def he_normal(shape, fan_in, fan_out, dtype=devices.DEFAULT_DTYPE):
    return (devices.global_rng().standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def zeros(shape, fan_in=None, fan_out=None, dtype=devices.DEFAULT_DTYPE):
    return np.zeros(shape, dtype=dtype)


INITIALIZERS = {"normal": normal, "dcgan": normal, "glorot": glorot_uniform,
                "glorot_uniform": glorot_uniform, "he": he_normal, "he_normal": he_normal,
                "zeros": zeros}


def get(init):
    """An initialiser from a name in :data:`INITIALIZERS` or a callable."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ValueError(f"unknown initialiser {init!r}; choose from {sorted(INITIALIZERS)}") from None


def apply(model, init, std=0.02):
    """Re-initialise every weight ``W`` of ``model`` with ``init``; biases to zero.

    BatchNorm's ``gamma`` goes to N(1, std^2) when ``init`` is ``"dcgan"``, as
    in the DCGAN reference code, and ``beta`` to zero.
    """
    fn = get(init)
    for _, layer, key in model.named_parameters():
        p = layer.params[key]
        if key == "W":
            fan_in, fan_out = layer.fans()
            kw = {"std": std} if fn is normal else {}
            new = fn(p.shape, fan_in, fan_out, dtype=p.dtype, **kw)
        elif key == "gamma":
            new = (1.0 + normal(p.shape, 0, 0, std=std) if init == "dcgan"
                   else np.ones(p.shape)).astype(p.dtype)
        else:
            new = np.zeros(p.shape, dtype=p.dtype)
        p[...] = layer.device.asarray(new)
    return model

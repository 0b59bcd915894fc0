"""Small helpers shared by the tests."""
import numpy as np

from minigan.runtime import devices


def on(device, *arrays, dtype=np.float64):
    """Arrays cast to ``dtype`` and moved to ``device``."""
    out = tuple(devices.to_device(np.asarray(a, dtype=dtype), device) for a in arrays)
    return out if len(out) > 1 else out[0]


def use_engine(layer, engine):
    """Force a conv ``layer`` onto ``engine`` (a name in ``minigan.nn.conv.ENGINES``); returns it."""
    layer.engine = engine
    return layer


def direct_conv2d(x, W, b, stride, pads):
    """Convolution by its definition (a loop over output pixels), for checking the engine.

    y[n, o, p, q] = b[o] + sum_{c,i,j} W[o, c, i, j] * xpad[n, c, p*sh + i, q*sw + j]
    """
    sh, sw = stride
    pt, pb, pl, pr = pads
    xpad = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    N, C, Hp, Wp = xpad.shape
    O, _, kh, kw = W.shape
    Ho, Wo = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
    y = np.zeros((N, O, Ho, Wo))
    for p in range(Ho):
        for q in range(Wo):
            patch = xpad[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw]
            y[:, :, p, q] = np.einsum("ncij,ocij->no", patch, W)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def fit_until_interrupted(trainer, steps, log=lambda s: None):
    """Run ``trainer.fit`` and stop it, as a crash would, just before its ``steps + 1``-th step."""
    import pytest  # noqa: PLC0415

    real_step, calls = trainer.train_step, []

    def dying_step(*a):
        if len(calls) == steps:
            raise KeyboardInterrupt
        calls.append(1)
        return real_step(*a)

    trainer.train_step = dying_step
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(log=log)


def conv_geometries(kernel=5, stride=4, pad=3, size=12, channels=6):
    """A hypothesis strategy of conv geometries (asymmetric padding, a stride larger than the
    kernel, 1x1 kernels, odd sizes), each bound the largest value drawn."""
    from hypothesis import strategies as st  # noqa: PLC0415

    from minigan.nn.conv import ConvGeom  # noqa: PLC0415

    @st.composite
    def draw_geometry(draw):
        kh, kw = draw(st.integers(1, kernel)), draw(st.integers(1, kernel))
        sh, sw = draw(st.integers(1, stride)), draw(st.integers(1, stride))
        pt, pb, pl, pr = (draw(st.integers(0, pad)) for _ in range(4))
        H = draw(st.integers(max(1, kh - pt - pb), size))
        W = draw(st.integers(max(1, kw - pl - pr), size))
        return ConvGeom(draw(st.integers(1, channels)), H, W, kh, kw, sh, sw, pt, pb, pl, pr)

    return draw_geometry()


def assert_every_twin_is_tested(table, prefix, test_file):
    """Each twin of a kernel table replaces a marked reference, and ``test_file`` compares the
    two (it names ``numpy_ref.NAME`` and ``PREFIX.NAME``)."""
    import pathlib  # noqa: PLC0415

    from minigan.runtime.registry import REFERENCES  # noqa: PLC0415

    source = pathlib.Path(test_file).read_text()
    for name, twin in table.items():
        assert name in REFERENCES, f"twin {name!r} has no reference"
        assert twin.__name__ == name
        assert f"numpy_ref.{name}" in source and f"{prefix}.{name}" in source, \
            f"no test compares twin {name!r} with its reference"

"""The GPU stand-in is as strict as CuPy where a CPU-only test would otherwise miss a GPU bug."""
import numpy as np
import pytest
from conftest import gpu

from minigan import nn
from minigan.runtime import devices

pytestmark = pytest.mark.gpu


def _standin():
    dev = gpu()
    if dev.xp.__name__ != "minigan.testing.gpu_standin.xp":
        pytest.skip("a real GPU is here: the stand-in is not used")
    from minigan.testing import gpu_standin

    return dev, gpu_standin


def test_no_implicit_conversion_and_no_mixing():
    dev, gs = _standin()
    a = dev.asarray(np.ones((2, 3), np.float32))
    for convert in (np.asarray, np.array, lambda v: np.concatenate([v, np.ones((2, 3))]),
                    lambda v: v + np.ones(3), lambda v: np.ones(3) * v, lambda v: v @ np.ones((3, 1)),
                    lambda v: dev.xp.where(v > 0, np.ones((2, 3)), v), memoryview):
        with pytest.raises(TypeError):
            convert(a)
    b = a * np.float32(2) + 1  # scalars are fine, as in CuPy
    assert isinstance(b, dev.array_type) and devices.to_numpy(b).tolist() == [[3.0] * 3] * 2


def test_every_read_on_the_host_is_counted():
    dev, gs = _standin()
    a = dev.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    reads = [lambda: float(a.sum()), lambda: a[0, 0].item(), lambda: bool(a.max() > 1), lambda: a.tolist(),
             lambda: a.get(), lambda: a[a > 2], lambda: int(a.sum()), lambda: f"{a.sum():.1f}",
             lambda: devices.to_numpy(a)]
    for read in reads:
        with gs.counting() as c:
            read()
        assert c.syncs == 1, c.reasons
    with gs.counting() as c:
        b = (a * 2).sum(axis=0) + dev.xp.exp(a).mean()  # device work only
        dev.xp.asarray(np.ones(3))  # a transfer to the device
    assert (c.syncs, c.to_device, c.to_host) == (0, 1, 0)
    assert isinstance(b, dev.array_type)


def test_a_layer_refuses_an_input_from_another_device():
    dev, _ = _standin()
    layer = nn.Dense(3, 2).to("gpu")
    with pytest.raises(nn.DeviceError, match="lives on the gpu"):
        layer.forward(np.ones((4, 3), np.float32))
    cpu_layer = nn.Dense(3, 2)
    with pytest.raises(nn.DeviceError, match="lives on the cpu"):
        cpu_layer.forward(dev.asarray(np.ones((4, 3), np.float32)))


def test_a_device_array_is_known_before_anything_asked_for_the_gpu():
    dev, _ = _standin()
    a = dev.asarray(np.ones(3, np.float32))
    assert devices.device_of(a) is dev and devices.get_xp(a) is dev.xp

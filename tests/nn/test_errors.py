"""Bad input gets a clear error that names the layer and the expected shape."""
import numpy as np
import pytest

from minigan import nn


def f32(*shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize("layer,x,match", [
    (nn.Dense(4, 3), f32(2, 5), r"Dense\(4, 3\): expected input of shape \(N, 4\), got \(2, 5\)"),
    (nn.Dense(4, 3), f32(2, 4, 1), r"expected input of shape \(N, 4\)"),
    (nn.Conv2D(3, 8, 3), f32(2, 3, 5), r"Conv2D\(3->8.*expected input of shape \(N, 3, H, W\)"),
    (nn.Conv2D(3, 8, 3), f32(2, 1, 5, 5), r"expected input of shape \(N, 3, H, W\), got \(2, 1, 5, 5\)"),
    (nn.Conv2D(1, 8, 5), f32(2, 1, 3, 9), r"too small for a 5x5 kernel"),
    (nn.Conv2DTranspose(2, 1, 3), f32(2, 3, 4, 4), r"Conv2DTranspose\(2->1.*\(N, 2, H, W\)"),
    (nn.Conv2DTranspose(1, 1, 1, 1, 3), f32(1, 1, 2, 2), r"leaves no output pixels"),
    (nn.BatchNorm(4), f32(2, 3), r"BatchNorm\(4\): expected input of shape \(N, 4\) or \(N, 4, H, W\)"),
    (nn.Reshape((2, 3)), f32(2, 5), r"6 values per sample"),
    (nn.Flatten(), f32(5), r"at least two dimensions"),
])
def test_wrong_shapes(layer, x, match):
    with pytest.raises(nn.ShapeError, match=match):
        layer.forward(x)


def test_wrong_dtype():
    with pytest.raises(TypeError, match=r"Dense\(2, 2\): input dtype float64 differs.*float32"):
        nn.Dense(2, 2).forward(np.zeros((1, 2)))
    with pytest.raises(TypeError, match="floating-point"):
        nn.Conv2D(1, 1, 1).forward(np.zeros((1, 1, 2, 2), np.int64))


@pytest.mark.parametrize("layer,x", [(nn.Dense(2, 3), f32(4, 2)), (nn.Conv2D(1, 2, 3, 2, "same"), f32(2, 1, 6, 6)),
                                     (nn.Conv2DTranspose(1, 2, 3, 2, "same"), f32(2, 1, 3, 3)),
                                     (nn.BatchNorm(2), f32(3, 2)), (nn.LeakyReLU(), f32(2, 2)),
                                     (nn.Dropout(0.5), f32(2, 2)), (nn.Flatten(), f32(2, 2, 2))])
def test_backward_checks(layer, x):
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward\\(\\)"):
        layer.backward(f32(1, 1))
    y = layer.forward(x)
    with pytest.raises(nn.ShapeError, match="dy has shape"):
        layer.backward(np.zeros((y.shape[0] + 1,) + y.shape[1:], np.float32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2D(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="output_padding"):
        nn.Conv2DTranspose(1, 1, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="positive"):
        nn.Dense(0, 3)
    with pytest.raises(ValueError, match="Dropout"):
        nn.Dropout(1.0)
    with pytest.raises(TypeError, match="not a Layer"):
        nn.Sequential(nn.Dense(1, 1), "relu")


def test_state_dict_checks_names_and_shapes():
    a = nn.Sequential(nn.Dense(3, 2), nn.BatchNorm(2))
    b = nn.Sequential(nn.Dense(3, 4), nn.BatchNorm(4))
    with pytest.raises(nn.ShapeError, match="param.0.W"):
        b.load_state_dict(a.state_dict())
    with pytest.raises(KeyError, match="lacks"):
        nn.Dense(3, 2).load_state_dict({**nn.Dense(3, 2).state_dict(), "param.9.W": np.zeros(1)})


@pytest.mark.parametrize("layer", [nn.Conv2D(1, 2, 3), nn.Conv2DTranspose(1, 2, 3, 2, "same")])
def test_a_conv_refuses_an_empty_batch_and_a_dy_of_another_dtype(layer):
    with pytest.raises(nn.ShapeError, match=r"got \(0, 1, 5, 5\) \(a batch of at least one sample\)"):
        layer.forward(f32(0, 1, 5, 5))
    y = layer.forward(f32(2, 1, 5, 5))
    for dtype in (np.float64, np.int64, np.float16):
        with pytest.raises(TypeError, match=rf"dy has dtype {np.dtype(dtype).name}, expected float32"):
            layer.backward(np.zeros(y.shape, dtype))
    assert layer.backward(np.zeros(y.shape, np.float32)).dtype == np.float32


def test_dense_refuses_a_dy_of_another_dtype():
    d = nn.Dense(3, 2)
    d.forward(f32(4, 3))
    with pytest.raises(TypeError, match="dy has dtype float64, expected float32"):
        d.backward(np.zeros((4, 2)))


@pytest.mark.parametrize("bad", ["shape", "dtype", "missing"])
def test_load_state_dict_checks_every_entry_before_it_writes_one(bad):
    model = nn.Sequential(nn.Dense(3, 4), nn.BatchNorm(4), nn.Dense(4, 2))
    before = model.state_dict()
    state = {k: v + 1 for k, v in before.items()}
    last = "param.2.b"  # written last: every entry before it would be overwritten first
    if bad == "shape":
        state[last] = np.zeros(3, np.float32)
    elif bad == "dtype":
        state[last] = np.array(["a", "b"])
    else:
        del state[last]
    with pytest.raises((nn.ShapeError, TypeError, KeyError)):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)

"""model.summary(input_shape) and ``minigan summary``: shapes, parameter counts, multiply-adds."""
import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigan import nn
from minigan.cli import main
from minigan.gan.models import build
from minigan.nn.summary import summary_rows
from minigan.runtime import devices


def totals(model, shape):
    rows = summary_rows(model, shape)
    return sum(r.params for r in rows), sum(r.multiply_adds for r in rows)


# -- the seed networks -----------------------------------------------------------

def test_dcgan_counts_match_the_tensorflow_tutorial():
    G, D = build("dcgan")
    g_params, g_macs = totals(G, (100,))
    d_params, d_macs = totals(D, (1, 28, 28))
    assert g_params == 2_305_472 and d_params == 212_865
    assert g_params == G.num_params() and d_params == D.num_params()
    # G: Dense, then the transposed convs at their input sizes 7x7, 7x7, 14x14
    assert g_macs == (100 * 7 * 7 * 256 + 7 * 7 * 256 * 25 * 128 + 7 * 7 * 128 * 25 * 64
                      + 14 * 14 * 64 * 25 * 1)
    # D: the convs at their output sizes 14x14 and 7x7, then Dense 6272 -> 1
    assert d_macs == 14 * 14 * 1 * 25 * 64 + 7 * 7 * 64 * 25 * 128 + 6272


def test_dcgan_output_shapes():
    G, D = build("dcgan")
    assert [r.output_shape[1:] for r in summary_rows(G, (100,))] == [
        (12544,), (12544,), (12544,), (256, 7, 7), (128, 7, 7), (128, 7, 7), (128, 7, 7),
        (64, 14, 14), (64, 14, 14), (64, 14, 14), (1, 28, 28), (1, 28, 28)]
    assert [r.output_shape[1:] for r in summary_rows(D, (1, 28, 28))] == [
        (64, 14, 14), (64, 14, 14), (64, 14, 14), (128, 7, 7), (128, 7, 7), (128, 7, 7), (6272,), (1,)]


def test_mlp_counts():
    G, D = build("mlp")
    assert totals(G, (100,)) == (100 * 128 + 128 + 128 * 784 + 784, 100 * 128 + 128 * 784)
    assert totals(D, (784,)) == (784 * 128 + 128 + 128 + 1, 784 * 128 + 128)


@pytest.mark.parametrize("model,image", [("mlp", (784,)), ("conv", (1, 28, 28)), ("dcgan", (1, 28, 28))])
def test_conditional_models_trace_through_their_label_join(model, image):
    G, D = build(model, conditional=True)
    g, d = summary_rows(G, (100,), name="G"), summary_rows(D, image, name="D")
    assert (g[0].name, g[0].layer, g[0].output_shape[1:]) == ("G.0", "LabelJoin(10)", (110,))
    assert d[0].output_shape[1:] == (image[0] + 10,) + image[1:]
    assert sum(r.params for r in g) == G.num_params() and sum(r.params for r in d) == D.num_params()
    assert "labels (N,) for its LabelJoin" in G.summary((100,))


def test_table_text():
    G, _ = build("dcgan")
    text = G.summary((100,), name="G")
    assert isinstance(text, str)
    lines = text.splitlines()
    assert lines[0] == "G: input (N, 100)"
    assert "multiply-adds: per sample, in the GEMMs" in lines[1]
    row = next(line for line in lines if line.startswith("G.4 "))
    assert row.split()[-2:] == ["819,200", "40,140,800"] and "(N, 128, 7, 7)" in row
    total = next(line for line in lines if line.startswith("total"))
    assert total.split()[1:] == ["2,305,472", "51,744,000"]
    assert "25,472 values in buffers" in text  # the BatchNorm running statistics, not trained


def test_nested_sequentials_are_flattened_with_dotted_names():
    model = nn.Sequential(nn.Sequential(nn.Dense(3, 4), nn.ReLU()),
                          nn.Sequential(nn.Sequential(nn.Dense(4, 2))))
    rows = summary_rows(model, (3,))
    assert [r.name for r in rows] == ["0.0", "0.1", "1.0.0"]
    assert [r.name for r in summary_rows(model, (3,), name="M")] == ["M.0.0", "M.0.1", "M.1.0.0"]
    assert [r.multiply_adds for r in rows] == [12, 0, 8]
    assert summary_rows(nn.Dense(3, 4), (3,))[0].params == 16  # a single layer is one row


def test_frozen_parameters_are_not_trainable():
    _, D = build("mlp")
    D.trainable = False
    rows = summary_rows(D, (784,))
    assert sum(r.params for r in rows) == 0 and sum(r.frozen for r in rows) == D.num_params()
    assert "100,609 frozen parameters" in D.summary((784,))


def test_regrouped_batch_counts_per_model_sample():
    from minigan.gan.mixture_models import build_mixture

    _, D = build_mixture(4)
    rows = summary_rows(D, (2,), batch=8)
    assert rows[0].output_shape == (2, 8)
    assert rows[1].multiply_adds == 8 * 200 / 4  # one Dense row per 4 input points
    assert "(N/4, 200)" in D.summary((2,), batch=8)


# -- the per-layer multiply-adds ----------------------------------------------------

@given(C=st.integers(1, 3), O=st.integers(1, 3), H=st.integers(1, 9), W=st.integers(1, 9),
       k=st.integers(1, 4), s=st.integers(1, 3), pad=st.sampled_from([0, 1, "same", "valid"]))
def test_conv_counts_one_column_per_output_pixel(C, O, H, W, k, s, pad):
    conv = nn.Conv2D(C, O, k, s, pad)
    Ho, Wo = conv.output_shape(H, W)
    if min(Ho, Wo) < 1:
        return
    y = conv.forward(np.zeros((1, C, H, W), np.float32))
    assert conv.multiply_adds((C, H, W)) == y[0].size * C * k * k


@given(C=st.integers(1, 3), O=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
       k=st.integers(1, 4), s=st.integers(1, 3), pad=st.sampled_from([0, 1, "same", "valid"]),
       op=st.integers(0, 2))
def test_transposed_conv_counts_as_the_conv_it_is_the_adjoint_of(C, O, H, W, k, s, pad, op):
    op = 0 if pad == "same" else min(op, s - 1)
    convT = nn.Conv2DTranspose(C, O, k, s, pad, output_padding=op)
    Ho, Wo = convT.output_shape(H, W)
    if min(Ho, Wo) < 1:
        return
    conv = nn.Conv2D(O, C, k, s, pad)  # maps (O, Ho, Wo) back to (C, H, W)
    assert conv.output_shape(Ho, Wo) == (H, W)
    assert convT.multiply_adds((C, H, W)) == conv.multiply_adds((O, Ho, Wo)) == H * W * C * k * k * O


def test_layers_without_a_gemm_count_zero():
    for layer in (nn.BatchNorm(4), nn.ReLU(), nn.Tanh(), nn.Dropout(0.5), nn.Flatten(), nn.LabelJoin(3)):
        assert layer.multiply_adds((4,)) == 0
    assert nn.Dense(7, 5).multiply_adds((7,)) == 35
    assert nn.Dense(7, 5, bias=False).multiply_adds((7,)) == 35  # bias adds are not counted


# -- the model is left as it was ------------------------------------------------------

def snapshot(model):
    arrays = {}
    for name, layer, key in model.named_parameters():
        arrays["param." + name] = np.array(layer.params[key])
        arrays["grad." + name] = np.array(layer.grads[key])
    for name, layer, key in model.named_buffers():
        arrays["buffer." + name] = np.array(layer.buffers[key])
    modes = [(m.training, m.trainable, m.dtype) for m in model.modules()]
    caches = [m._cache for m in model.modules()]
    return arrays, modes, caches


@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_summary_leaves_the_model_untouched(model):
    G, D = build(model, conditional=True)
    devices.manual_seed(3)
    z = np.random.default_rng(0).standard_normal((4, 100)).astype(np.float32)
    nn.set_labels(G, np.arange(4))
    G.zero_grad()
    G.backward(np.ones_like(G.forward(z)))  # non-zero grads, running statistics moved, caches full
    G.layers[1].trainable = False
    before = snapshot(G)
    rng_before = copy.deepcopy(devices.rng_state())
    labels = G.layers[0].labels
    G.summary((100,))
    after = snapshot(G)
    assert before[0].keys() == after[0].keys()
    for k in before[0]:
        np.testing.assert_array_equal(before[0][k], after[0][k], err_msg=k)
    assert before[1] == after[1]
    assert all(a is b for a, b in zip(before[2], after[2]))
    assert G.layers[0].labels is labels
    assert devices.rng_state() == rng_before


# -- bad input_shape ------------------------------------------------------------------

@pytest.mark.parametrize("shape,error,match", [
    (100, TypeError, "without the batch dimension"),
    ("100", TypeError, "tuple of positive ints"),
    ((), TypeError, "tuple of positive ints"),
    ((100.0,), TypeError, "tuple of positive ints"),
    ((0, 28), ValueError, "positive"),
    ((64, 1, 28, 28), nn.ShapeError, r"D\.0 Conv2D\(1->64.*without the batch.*expected input"),
    ((784,), nn.ShapeError, r"D\.0 .*cannot take input \(N, 784\)"),
])
def test_bad_input_shape(shape, error, match):
    _, D = build("dcgan")
    with pytest.raises(error, match=match):
        D.summary(shape, name="D")


def test_a_single_sample_traces_through_batchnorm():
    # BatchNorm in training mode refuses a batch of one (no batch statistics); the trace runs in eval mode
    G, _ = build("dcgan")
    assert [r.output_shape for r in summary_rows(G, (100,), batch=1)][-1] == (1, 1, 28, 28)
    assert G.training


def test_bad_batch():
    with pytest.raises(ValueError, match="batch"):
        nn.Dense(2, 2).summary((2,), batch=0)


# -- the command ----------------------------------------------------------------------

def test_cli_summary_dcgan(capsys):
    assert main(["summary", "--model", "dcgan"]) == 0
    out = capsys.readouterr().out
    totals_ = [line.split()[1] for line in out.splitlines() if line.startswith("total")]
    assert totals_ == ["2,305,472", "212,865"]
    assert "G.10" in out and "D.7" in out


def test_cli_summary_mlp_conditional(capsys):
    assert main(["summary", "--model", "mlp", "--conditional"]) == 0
    out = capsys.readouterr().out
    totals_ = [int(line.split()[1].replace(",", "")) for line in out.splitlines() if line.startswith("total")]
    assert totals_ == [110 * 128 + 128 + 128 * 784 + 784, 794 * 128 + 128 + 128 + 1]


def test_cli_summary_bad_model(capsys):
    with pytest.raises(SystemExit) as e:
        main(["summary", "--model", "vae"])
    assert e.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


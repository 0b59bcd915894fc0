"""The step profiler's counting and tables (benchmarks/profile_step.py); no timing is asserted."""
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import profile_step as prof  # noqa: E402
import torch_reference  # noqa: E402

from minigan import nn  # noqa: E402


@pytest.mark.parametrize("kind", prof.PASSES)
def test_conv_pass_flops_by_hand(kind):
    # 14x14 -> 7x7 pixels, each 128 channels x (64 channels x 4x4 taps), 128 samples
    layer = nn.Conv2D(64, 128, 4, 2, 1)
    assert prof.pass_flops(layer, (128, 64, 14, 14), kind) == 2 * 128 * 128 * 7 * 7 * 64 * 16
    assert prof.gemm_shape(layer, (128, 64, 14, 14), kind) == {
        "forward": (128, 1024, 128 * 49), "dX": (1024, 128, 128 * 49), "dW": (128, 128 * 49, 1024)}[kind]


@pytest.mark.parametrize("kind", prof.PASSES)
def test_the_conv_pairs_other_layers_by_hand(kind):
    # G's transposed conv 7x7 -> 14x14: each input pixel's 128 channels meet 64 x 4x4 outputs
    convt = nn.Conv2DTranspose(128, 64, 4, 2, "same", bias=False)
    assert prof.pass_flops(convt, (64, 128, 7, 7), kind) == 2 * 64 * 49 * 128 * 16 * 64 == 822_083_584
    assert prof.gemm_shape(convt, (64, 128, 7, 7), kind) == {
        "forward": (1024, 128, 64 * 49), "dX": (128, 1024, 64 * 49), "dW": (128, 64 * 49, 1024)}[kind]
    # D's first conv, real + fake as one batch: 28x28 -> 14x14, 64 channels of 1 x 4x4 taps
    assert prof.pass_flops(nn.Conv2D(1, 64, 4, 2, "same"), (128, 1, 28, 28), kind) == 51_380_224
    dense = nn.Dense(100, 6272, bias=False)
    assert prof.pass_flops(dense, (64, 100), kind) == 2 * 64 * 100 * 6272
    m, k, n = prof.gemm_shape(dense, (64, 100), kind)
    assert 2 * m * k * n == 2 * 64 * 100 * 6272
    # the projection head: x . w and x . E[y], 6272 features a row
    assert prof.pass_flops(nn.LabelProjection(6272, 50), (128, 6272), kind) == 2 * 128 * 2 * 6272
    assert prof.pass_flops(nn.LeakyReLU(0.2), (128, 64, 14, 14), kind) == 0


def test_pass_flops_refuses_an_unknown_pass():
    with pytest.raises(ValueError, match="pass"):
        prof.pass_flops(nn.Dense(2, 3), (4, 2), "backward")


def test_pass_table_rates():
    layer = nn.Conv2D(64, 128, 4, 2, 1)
    shape = (128, 64, 14, 14)
    flops = prof.pass_flops(layer, shape, "forward")
    shapes = {prof.gemm_shape(layer, shape, "forward"): flops / 0.004 / 1e9}  # 4 ms at its shape
    text = prof.pass_table([("D", 2, layer, "forward", shape, 1.0, flops, 0.008)], shapes)
    row = text.splitlines()[2]
    assert row.startswith("| D[2] Conv2D(64->128, k=4, s=2, p=1) | - | forward | 128 | 1 | 1644.2 | 8.00 |")
    assert row.endswith(f"| {flops / 0.008 / 1e9:.1f} | 4.00 | 2.0 |")


def test_breakdown_and_category_tables():
    rows = [("kernel im2col", "im2col / col2im", 2.0, 3.0), ("kernel col2im", "im2col / col2im", 1.0, 1.5),
            ("np.matmul", prof.GEMM, 4.0, 2.0)]
    assert prof.category_totals(rows) == {"im2col / col2im": 4.5, prof.GEMM: 2.0}
    text = prof.breakdown_table(rows, step_s=0.010)
    assert "| kernel im2col | im2col / col2im | 2 | 3.00 |" in text
    assert text.splitlines()[-1].endswith("| other |  | 3.50 |")  # 10 ms less the 6.5 timed
    assert "| im2col / col2im | 4.50 | 45% |" in prof.totals_table(prof.category_totals(rows), 10.0)


def test_layer_categories():
    assert prof.layer_category(nn.BatchNorm(4)) == "BatchNorm"
    assert prof.layer_category(nn.Dense(2, 3)) == prof.GEMM_AT
    assert prof.layer_category(nn.Tanh()) == "activations"


def test_torch_ops_are_charged_to_their_nearest_category():
    assert torch_reference.op_category(["aten::mkldnn_convolution", "aten::_convolution"]) == "conv forward"
    assert torch_reference.op_category(["aten::convolution_backward",
                                        "ConvolutionBackward0"]) == "conv dX + dW (one op)"
    assert torch_reference.op_category(["aten::copy_", "aten::addmm", "aten::linear"]) == "dense GEMM (all passes)"
    assert torch_reference.op_category(["aten::sqrt", "adam"]) == "Adam"
    assert torch_reference.op_category(["aten::mul", "MulBackward0"]) == "other ops (elementwise, copies, views)"

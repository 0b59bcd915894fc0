"""``minigan gradcheck`` with no target: the built-in cases pass, and they reach every conv
engine a CPU runs and the geometries where the conv kernels have edge cases."""
import copy

import numpy as np
import pytest

from minigan import nn
from minigan.cli import main
from minigan.gradcheck import check_layer, check_loss, standard_cases

CASES = {c[0]: c for c in standard_cases()}


@pytest.mark.parametrize("label", list(CASES))
def test_standard_case_passes(label):
    _, kind, obj, x, args = CASES[label]
    report = check_layer(obj, x, label=label) if kind == "layer" else check_loss(obj, x, *args, label=label)
    report.assert_ok(1e-6)


def _convs():
    """``(label, layer, geometry, engine that ran)`` for every conv in the standard cases."""
    out = []
    for label, kind, obj, x, _ in standard_cases():
        if kind != "layer":
            continue
        model = copy.deepcopy(obj).astype(np.float64)
        y = x
        for layer in (model.layers if isinstance(model, nn.Sequential) else [model]):
            g = layer.geometry(*y.shape[-2:]) if isinstance(layer, (nn.Conv2D, nn.Conv2DTranspose)) else None
            y = layer.forward(y)
            if g is not None:
                out.append((label, layer, g, layer.last_engine))
    return out


def test_standard_cases_reach_every_cpu_engine():
    """im2col where nothing is forced, the spectral engine both where it pays on its own
    (choose_engine routes the conv there) and forced, for both conv layers."""
    ran = {(type(layer).__name__, engine, layer.engine is None) for _, layer, _, engine in _convs()}
    for kind in ("Conv2D", "Conv2DTranspose"):
        assert (kind, "im2col", True) in ran
        assert (kind, "spectral", True) in ran, f"no {kind} that choose_engine sends to the spectral engine"
        assert (kind, "spectral", False) in ran


def test_standard_cases_reach_the_edge_geometries():
    """Strided convs with no padding on the right and a kernel that is a multiple of the
    stride, on both engines, both layers; a kernel smaller than the stride too."""
    seen = set()
    for _, layer, g, engine in _convs():
        name = type(layer).__name__
        if g.sw > 1 and g.pr == 0 and g.kw % g.sw == 0:
            seen.add((name, engine, "no right padding, k multiple of s"))
        if g.kw < g.sw:
            seen.add((name, engine, "k < s"))
    for name in ("Conv2D", "Conv2DTranspose"):
        for engine in ("im2col", "spectral"):
            assert (name, engine, "no right padding, k multiple of s") in seen, (name, engine)
        assert (name, "im2col", "k < s") in seen, name


def test_the_command_checks_every_case(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "all gradients agree with central differences to 1e-06" in out
    listed = [line[:46].strip() for line in out.splitlines()[1:] if line[:46].strip()]
    assert listed[:len(CASES)] == list(CASES)

"""``minigan gradcheck FILE.py:NAME --shape ...``: checking a user's own layer."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minigan
from minigan import nn
from minigan.cli import main
from minigan.gradcheck import GradCheckEntry, check_layer

LAYERS = '''
import numpy as np
from minigan import nn


class Square(nn.Layer):
    """y = x * x;  dL/dx = 2 x dy."""

    def forward(self, x):
        self._cache = x
        return x * x

    def backward(self, dy):
        return 2 * self._cache * dy


class Scale(nn.Layer):
    """y = x * w per feature, x: (N, F), w: (F,);  dL/dx = dy * w,  dL/dw = sum_n x dy."""

    def __init__(self, features=3):
        super().__init__()
        self._add_param("w", np.linspace(0.5, 1.5, features))

    def forward(self, x):
        self._cache = x
        return x * self.params["w"]

    def backward(self, dy):
        self.grads["w"] += (self._cache * dy).sum(axis=0)
        return dy * self.params["w"]


class Affine(nn.Layer):
    """y = x W + b with W: (30, 20), more entries than are checked one by one."""

    def __init__(self):
        super().__init__()
        self._add_param("W", np.random.default_rng(1).standard_normal((30, 20)))
        self._add_param("b", np.zeros(20))

    def forward(self, x):
        self._cache = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy):
        self.grads["W"] += self._cache.T @ dy
        self.grads["b"] += dy.sum(axis=0)
        return dy @ self.params["W"].T


def make_square():
    return Square()


square = Square()
used = Scale()
used.grads["w"] += 5.0  # left over from an earlier backward: the check starts from zero
'''

BUGS = '''
from layers import Affine, Scale, Square


class SquareSignBug(Square):
    def backward(self, dy):
        return -2 * self._cache * dy


class ScaleFactorBug(Scale):
    def backward(self, dy):
        self.grads["w"] += 2 * (self._cache * dy).sum(axis=0)
        return dy * self.params["w"]


class SquareOneElementBug(Square):
    """Right everywhere but at x[1, 2]."""

    def backward(self, dy):
        dx = 2 * self._cache * dy
        dx[1, 2] = 0.0
        return dx


class SquareAgain(Square):
    pass


class AffineTransposeBug(Affine):
    def backward(self, dy):
        self.grads["W"] += self._cache.T @ dy[:, ::-1]
        self.grads["b"] += dy.sum(axis=0)
        return dy @ self.params["W"].T
'''


@pytest.fixture
def files(tmp_path):
    (tmp_path / "layers.py").write_text(LAYERS)
    (tmp_path / "bugs.py").write_text(textwrap.dedent(BUGS))  # imports layers.py beside it
    return tmp_path


def run(capsys, *argv):
    code = main(["gradcheck", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- layers that are right ----------------------------------------------------------

@pytest.mark.parametrize("name,shape,tensors", [
    ("Square", "4,3", ["dL/dx"]),
    ("Scale", "5,3", ["dL/dx", "dL/dw"]),
    ("Affine", "4,30", ["dL/dx", "dL/dW", "dL/db"]),
    ("make_square", "2,3,4,4", ["dL/dx"]),  # a function returning a layer; an NCHW input
    ("square", "3,2", ["dL/dx"]),  # a layer instance
    ("used", "5,3", ["dL/dx", "dL/dw"]),  # with non-zero gradients in it
])
def test_correct_layers_pass(files, capsys, name, shape, tensors):
    code, out, err = run(capsys, f"{files / 'layers.py'}:{name}", "--shape", shape)
    assert code == 0, out + err
    assert err == ""
    assert "all gradients agree with central differences to 1e-06" in out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  dL/d")]
    assert listed == tensors


# -- layers with a planted bug ---------------------------------------------------------

@pytest.mark.parametrize("name,shape,bad,good,where", [
    ("SquareSignBug", "4,3", "dL/dx", [], "at x["),
    ("ScaleFactorBug", "5,3", "dL/dw", ["dL/dx"], "at w["),
    ("SquareOneElementBug", "4,3", "dL/dx", [], "at x[1, 2]:"),
    ("AffineTransposeBug", "4,30", "dL/dW", ["dL/dx", "dL/db"], "along random directions (W has 600 entries"),
])
def test_a_planted_bug_fails_and_is_named(files, capsys, name, shape, bad, good, where):
    code, out, err = run(capsys, f"{files / 'bugs.py'}:{name}", "--shape", shape)
    assert code == 1
    status = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.startswith("  dL/d")}
    assert status[bad] == "FAIL" and all(status[g] == "ok" for g in good)
    verdict = next(line for line in out.splitlines() if line.startswith(f"{bad} disagrees"))
    assert "worst relative error" in verdict and where in verdict, verdict
    assert "gradients disagree (tolerance 1e-06)" in out


def test_tol_decides(files, capsys):
    # a 1% error in dw: caught at the default tolerance, let through at 5%
    (files / "close.py").write_text(textwrap.dedent('''
        from layers import Scale

        class Close(Scale):
            def backward(self, dy):
                self.grads["w"] += 1.01 * (self._cache * dy).sum(axis=0)
                return dy * self.params["w"]
    '''))
    target = f"{files / 'close.py'}:Close"
    assert run(capsys, target, "--shape", "5,3")[0] == 1
    assert run(capsys, target, "--shape", "5,3", "--tol", "0.05")[0] == 0


def test_seed_changes_the_input(files, capsys):
    target = f"{files / 'layers.py'}:Square"
    a = run(capsys, target, "--shape", "4,3", "--seed", "1")[1]
    b = run(capsys, target, "--shape", "4,3", "--seed", "2")[1]
    assert a != b and "seed 1" in a and "seed 2" in b


def test_loading_leaves_the_process_as_it_was(files, capsys):
    modules, path, cwd = set(sys.modules), list(sys.path), os.getcwd()
    assert run(capsys, f"{files / 'bugs.py'}:SquareSignBug", "--shape", "2,2")[0] == 1
    assert set(sys.modules) - modules == set()  # neither bugs.py nor the layers.py it imports
    assert sys.path == path and os.getcwd() == cwd
    # the files are read again on the next load, as edited since
    assert run(capsys, f"{files / 'bugs.py'}:SquareAgain", "--shape", "2,2")[0] == 0
    (files / "layers.py").write_text(LAYERS.replace("return 2 * self._cache * dy", "return 3 * self._cache * dy"))
    assert run(capsys, f"{files / 'bugs.py'}:SquareAgain", "--shape", "2,2")[0] == 1


# -- what cannot be checked: one line, exit 2 -----------------------------------------------

def _errors(d):
    (d / "broken.py").write_text("def f(:\n")
    (d / "raises.py").write_text("raise RuntimeError('no data\\nhere')\n")
    (d / "exits.py").write_text("import sys\nsys.exit('bye')\n")
    (d / "misc.py").write_text(textwrap.dedent('''
        from minigan import nn

        n = 3
        class Plain:
            pass
        def not_a_layer():
            return 42
        def fails():
            raise ValueError("bad config")
        class NeedsArgs(nn.Layer):
            def __init__(self, size):
                super().__init__()
        class NoSuper(nn.Layer):
            def __init__(self):
                pass
        class Matrix(nn.Layer):
            def forward(self, x):
                if x.ndim != 4:
                    raise nn.ShapeError("Matrix: expected input of shape (N, C, H, W), got " + str(x.shape))
                self._cache = x
                return 1.0 * x
            def backward(self, dy):
                return dy
        class NoBackward(nn.Layer):
            def forward(self, x):
                return 1.0 * x
        class WrongDx(nn.Layer):
            def forward(self, x):
                return 1.0 * x
            def backward(self, dy):
                return dy[:, :1]
    '''))
    f = str(d / "misc.py")
    return [
        ([f"{d / 'missing.py'}:X", "--shape", "2,3"], "no file"),
        ([f"{d}:X", "--shape", "2,3"], "is a directory"),
        ([f"{d / 'broken.py'}:X", "--shape", "2,3"], "broken.py failed to import: SyntaxError"),
        ([f"{d / 'raises.py'}:X", "--shape", "2,3"], "raises.py failed to import: RuntimeError: no data here"),
        ([f"{d / 'exits.py'}:X", "--shape", "2,3"], "exits.py failed to import: SystemExit: bye"),
        ([f, "--shape", "2,3"], "expected a target FILE.py:NAME"),
        ([f"{f}:Nope", "--shape", "2,3"], "has no 'Nope'; its layers: Matrix, NeedsArgs"),
        ([f"{f}:n", "--shape", "2,3"], "n in .* is of type int, not a Layer subclass"),
        ([f"{f}:Plain", "--shape", "2,3"], "is the class Plain, not a subclass of minigan.nn.Layer"),
        ([f"{f}:not_a_layer", "--shape", "2,3"], r"not_a_layer\(\) returned a value of type int, not a minigan.nn.Layer"),
        ([f"{f}:fails", "--shape", "2,3"], r"fails\(\) raised ValueError: bad config"),
        ([f"{f}:NeedsArgs", "--shape", "2,3"], r"NeedsArgs\(\) raised TypeError.*no arguments"),
        ([f"{f}:NoSuper", "--shape", "2,3"], r"super\(\).__init__\(\)"),
        ([f"{f}:Matrix", "--shape", "2,3"],
         r"Matrix\(\) raised on an input of shape \(2, 3\): ShapeError: Matrix: expected input"),
        ([f"{f}:NoBackward", "--shape", "2,3"], r"NoBackward\(\).backward raised .*NotImplementedError"),
        ([f"{f}:WrongDx", "--shape", "2,3"], r"returned dL/dx of shape \(2, 1\) for an input of shape \(2, 3\)"),
        ([f"{f}:Matrix", "--shape", "2,x"], "--shape must be positive integers"),
        ([f"{f}:Matrix", "--shape", "2,0,3,3"], "--shape must be positive integers"),
        ([f"{f}:Matrix", "--shape", ""], "--shape must be positive integers"),
        ([f"{f}:Matrix"], "needs --shape"),
        (["--shape", "2,3"], "--shape needs a target"),
        (["--seed", "1"], "--seed needs a target"),
        ([f"{f}:Matrix", "--shape", "2,3", "--tol", "-1"], "--tol must be a positive number"),
        ([f"{f}:Matrix", "--shape", "2,3", "--tol", "abc"], "--tol must be a positive number"),
        ([f"{f}:Matrix", "--shape", "2,3", "--seed", "x"], "--seed must be an integer"),
    ]


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    import re

    for argv, match in _errors(tmp_path):
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("minigan gradcheck: "), (argv, err)
        assert re.search(match, lines[0]), (argv, lines[0])
        assert "Traceback" not in err + out


def test_as_a_command_without_traceback(tmp_path):
    (tmp_path / "raises.py").write_text("import numpy\nraise ImportError('needs a GPU')\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(minigan.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-m", "minigan.cli", "gradcheck", f"{tmp_path / 'raises.py'}:L",
                          "--shape", "2,2"], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"minigan gradcheck: {tmp_path / 'raises.py'} failed to import: ImportError: needs a GPU"]


# -- the report behind it -------------------------------------------------------------------

def test_report_locates_the_worst_element():
    class OffByOne(nn.Layer):
        def forward(self, x):
            self._cache = x
            return x * x

        def backward(self, dy):
            dx = 2 * self._cache * dy
            dx[0, 1, 2, 3] *= 1.5
            return dx

    rep = check_layer(OffByOne(), np.random.default_rng(0).standard_normal((2, 3, 4, 5)))
    (e,) = rep.entries
    assert e.index == (0, 1, 2, 3) and e.where == "[0, 1, 2, 3]" and e.direction is None
    assert e.analytic == pytest.approx(1.5 * e.numeric, rel=1e-6)
    assert rep.failures() == [e] and not rep.ok()
    with pytest.raises(AssertionError, match=r"\[0, 1, 2, 3\]"):
        rep.assert_ok()


def test_report_of_a_random_direction_check():
    rep = check_layer(nn.Dense(30, 20), np.random.default_rng(0).standard_normal((4, 30)))
    W = next(e for e in rep.entries if e.name == "W")
    assert W.mode == "12 dirs" and W.index is None and 0 <= W.direction < 12
    assert W.where == f"random direction {W.direction + 1} of 12"
    rep.assert_ok()


def test_entries_keep_their_positional_fields():
    e = GradCheckEntry("x", 4, "all", 1e-9, 1e-11)
    assert (e.name, e.size, e.mode, e.rel_err, e.abs_err, e.index) == ("x", 4, "all", 1e-9, 1e-11, None)

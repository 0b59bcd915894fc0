"""``minigan gradcheck``: every built-in layer and loss (:func:`minigan.gradcheck.run_standard`),
or with ``FILE.py:NAME --shape N,C,H,W`` a user's own layer.

NAME in FILE.py is a :class:`minigan.nn.Layer` subclass (made with no
arguments), a Layer instance, or any callable that returns a Layer with no
arguments.  The layer is checked by :func:`minigan.gradcheck.check_layer` in
float64 at a standard normal input of the given shape: dL/dx and every
parameter gradient against central differences of ``L = sum(layer(x) * dy)``
for a random ``dy``.  Exit status 0 when all agree within ``--tol``, 1 when
one does not (the report names it, its worst relative error and where),
2 when the layer cannot be checked at all (one line on stderr).
"""
from __future__ import annotations

import copy
import importlib.machinery
import importlib.util
import itertools
import math
import os
import sys

import numpy as np

from ..gradcheck import check_layer, run_standard
from ..nn import Layer
from ..runtime import devices
from .args import add_threads, quiet_on_closed_pipe


class TargetError(ValueError):
    """The target cannot be loaded or checked; the message is one line."""


_counter = itertools.count()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def parse_shape(text: str) -> tuple:
    """``"4,3,8,8"`` -> ``(4, 3, 8, 8)``: positive ints, batch first."""
    parts = [p.strip() for p in text.split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise TargetError(f"--shape must be positive integers separated by commas, batch first "
                          f"(N,F or N,C,H,W), got {text!r}")
    return shape


def load_module(path: str):
    """Run the Python file at ``path`` as a fresh module and return it.

    The module sits in ``sys.modules`` (and its folder at the front of
    ``sys.path``, for imports of files beside it) only while it runs; the
    modules it imports from its own folder are dropped from ``sys.modules``
    afterwards too (the loaded module keeps what it needs).  So a second load
    runs the files again, as edited since, and nothing stays behind.
    """
    if not os.path.exists(path):
        raise TargetError(f"no file {path}")
    if os.path.isdir(path):
        raise TargetError(f"{path} is a directory, not a Python file")
    name = f"_minigan_user_layer_{next(_counter)}"
    # an explicit source loader: the file is Python whatever its suffix
    loader = importlib.machinery.SourceFileLoader(name, path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    folder = os.path.dirname(os.path.abspath(path))
    before = set(sys.modules)
    sys.modules[name] = module  # dataclasses and the like look their module up while it runs
    sys.path.insert(0, folder)
    try:
        loader.exec_module(module)
    except (Exception, SystemExit) as e:  # noqa: BLE001 -- whatever the file raises is one line
        raise TargetError(f"{path} failed to import: {_one_line(e)}") from None
    finally:
        sys.modules.pop(name, None)
        for new in set(sys.modules) - before:
            file = getattr(sys.modules[new], "__file__", None) or ""
            # a submodule of a package loaded before (minigan's own, when the file sits in
            # its checkout) stays: a second copy of it would make a second Layer class
            if (new.partition(".")[0] not in before
                    and os.path.abspath(file).startswith(folder + os.sep)):
                del sys.modules[new]
        if sys.path and sys.path[0] == folder:
            del sys.path[0]
        else:  # the file moved sys.path around; remove our entry wherever it went
            try:
                sys.path.remove(folder)
            except ValueError:
                pass
    return module


def load_layer(target: str):
    """``(layer, label)`` for ``FILE.py:NAME``."""
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise TargetError(f"expected a target FILE.py:NAME, got {target!r}")
    module = load_module(path)
    if not hasattr(module, name):
        found = sorted(k for k, v in vars(module).items()
                       if not k.startswith("_") and (isinstance(v, Layer) or (isinstance(v, type)
                                                                              and issubclass(v, Layer))))
        defined = f"; its layers: {', '.join(found)}" if found else "; it defines no Layer"
        raise TargetError(f"{path} has no {name!r}{defined}")
    obj = getattr(module, name)
    if isinstance(obj, Layer):
        return obj, name
    if isinstance(obj, type) and not issubclass(obj, Layer):
        raise TargetError(f"{name} in {path} is the class {obj.__name__}, not a subclass of "
                          f"minigan.nn.Layer")
    if not callable(obj):
        raise TargetError(f"{name} in {path} is of type {type(obj).__name__}, not a Layer subclass or "
                          f"a function that returns a Layer")
    try:
        layer = obj()
    except Exception as e:  # noqa: BLE001 -- the user's constructor, one line
        raise TargetError(f"{name}() raised {_one_line(e)} (it is called with no arguments)") from None
    if not isinstance(layer, Layer):
        raise TargetError(f"{name}() returned a value of type {type(layer).__name__}, not a "
                          f"minigan.nn.Layer")
    return layer, f"{name}()"


def _trial(layer, label, x):
    """One float64 forward and backward, so that a layer which cannot run on ``x`` is
    named in one line before any finite difference is taken."""
    shape = tuple(x.shape)
    if not isinstance(getattr(layer, "params", None), dict):
        raise TargetError(f"{label} has no params dict: does its __init__ call super().__init__()?")
    try:
        trial = copy.deepcopy(layer).astype(np.float64)
    except Exception as e:  # noqa: BLE001
        raise TargetError(f"{label} cannot be copied and cast to float64: {_one_line(e)}") from None
    try:
        y = trial.forward(x.copy())
    except Exception as e:  # noqa: BLE001
        raise TargetError(f"{label} raised on an input of shape {shape}: {_one_line(e)}") from None
    if not isinstance(y, np.ndarray) or y.dtype.kind != "f":
        what = f"an array of {y.dtype}" if isinstance(y, np.ndarray) else f"a {type(y).__name__}"
        raise TargetError(f"{label}.forward returned {what}, not a floating-point array")
    dy = np.random.default_rng(0).standard_normal(y.shape)
    try:
        dx = trial.backward(dy)
    except Exception as e:  # noqa: BLE001
        raise TargetError(f"{label}.backward raised on an upstream gradient of shape {tuple(y.shape)} "
                          f"(input {shape}): {_one_line(e)}") from None
    if getattr(dx, "shape", None) != shape:
        raise TargetError(f"{label}.backward returned dL/dx of shape {getattr(dx, 'shape', type(dx).__name__)}"
                          f" for an input of shape {shape}")
    for name, lyr, key in trial.named_parameters():
        g = lyr.grads.get(key) if isinstance(getattr(lyr, "grads", None), dict) else None
        if getattr(g, "shape", None) != lyr.params[key].shape:
            raise TargetError(f"{label}: parameter {name} of shape {lyr.params[key].shape} has no "
                              f"gradient of that shape in grads (use self._add_param({key!r}, value))")


def run_target(target: str, shape_text: str, seed: int = 0, tol: float = 1e-6, out=print) -> bool:
    """Check the layer ``target`` (``FILE.py:NAME``) at an input of ``shape_text``; print the
    report; return True when every gradient agrees within ``tol``."""
    shape = parse_shape(shape_text)
    devices.manual_seed(seed)  # a layer that draws its weights from minigan's generator
    layer, label = load_layer(target)
    x = np.random.default_rng(seed).standard_normal(shape)
    _trial(layer, label, x)
    try:
        report = check_layer(layer, x, seed=seed, label=label)
    except Exception as e:  # noqa: BLE001 -- the layer misbehaved between calls
        raise TargetError(f"checking {label} failed: {_one_line(e)}") from None

    out(f"{label} at x of shape {shape}, float64, seed {seed}: "
        f"L = sum(layer(x) * dy) for a random dy, analytic gradients vs central differences")
    out(f"  {'gradient':<16}{'size':>8}  {'checked':<9}{'rel err':>10}  {'worst at':<28}result")
    for e in report.entries:
        good = e.rel_err <= tol
        out(f"  {'dL/d' + e.name:<16}{e.size:>8}  {e.mode:<9}{e.rel_err:>10.2e}  {e.where:<28}"
            f"{'ok' if good else 'FAIL'}")
    bad = report.failures(tol)
    if not bad:
        out(f"\nall gradients agree with central differences to {tol:g}")
        return True
    out("")
    for e in bad:
        if e.index is not None:
            where = f"at {e.name}{e.where}"
        else:
            where = (f"along random directions ({e.name} has {e.size} entries, checked along "
                     f"{e.mode.split()[0]} random unit vectors, not one by one; the worst was "
                     f"direction {e.direction + 1})")
        out(f"dL/d{e.name} disagrees: worst relative error {e.rel_err:.2e} {where}: backward gives "
            f"{e.analytic:.6g}, central differences {e.numeric:.6g}")
    out(f"\n{len(bad)} of {len(report.entries)} gradients disagree (tolerance {tol:g})")
    return False


def add_parser(sub):
    p = sub.add_parser("gradcheck", help="check layers' gradients against finite differences",
                       description="With no target: check every built-in layer and loss against central "
                                   "differences in float64.  With FILE.py:NAME: check your own layer, "
                                   "NAME being a minigan.nn.Layer subclass (made with no arguments) or "
                                   "a function that returns a Layer, at a random input of --shape: "
                                   "dL/dx and every parameter gradient.  Exit 0 when they agree, 1 when "
                                   "one does not (the report names it and where), 2 when the layer "
                                   "cannot be checked.")
    p.add_argument("target", nargs="?", default=None, metavar="FILE.py:NAME",
                   help="a layer of your own to check (default: the built-in cases)")
    p.add_argument("--shape", default=None, metavar="N,C,H,W",
                   help="the input's shape, batch first: N,F or N,C,H,W (with a target)")
    # --seed and --tol are parsed by the handler, so that a bad value is one line like the others
    p.add_argument("--seed", default=None,
                   help="seed of the input, dy and the layer's initialisation (with a target; default 0)")
    p.add_argument("--tol", default="1e-6", help="relative error allowed (default 1e-6)")
    add_threads(p)


@quiet_on_closed_pipe
def run(args):
    # a usage error exits 2 (through main), apart from 1: "a gradient disagrees"
    try:
        tol = float(args.tol)
    except ValueError:
        tol = math.nan
    if not (math.isfinite(tol) and tol > 0):
        raise TargetError(f"--tol must be a positive number, got {args.tol!r}")
    try:
        seed = 0 if args.seed is None else int(args.seed)
    except ValueError:
        raise TargetError(f"--seed must be an integer, got {args.seed!r}") from None
    if args.target is None:
        for flag in ("shape", "seed"):
            if getattr(args, flag) is not None:
                raise TargetError(f"--{flag} needs a target FILE.py:NAME")
        return 0 if run_standard(tol=tol) else 1
    if args.shape is None:
        raise TargetError(f"checking {args.target} needs --shape (N,F or N,C,H,W)")
    return 0 if run_target(args.target, args.shape, seed=seed, tol=tol) else 1


__all__ = ["add_parser", "run", "run_target", "load_layer", "load_module", "parse_shape", "TargetError"]

"""Where one train step of the lean conv pair (MNIST's default) spends its time, against the GEMM floor.

    python benchmarks/profile_step.py [--batch 64] [--threads 2] [--steps 10] [--repeats 5]
                                      [--markdown FILE] [--no-torch]

The step is the trainer's own (:meth:`minigan.gan.Trainer.train_step`) with the
default MNIST recipe of ``minigan train`` (:meth:`TrainConfig.for_dataset`: the
self-conditioned pair with its projection head, Adam, G's weight average), on a
fixed real batch, noise and labels, CPU kernel table, float32.  It prints:

1. **Per pass.**  For every conv, transposed conv and dense layer (the projection
   head included), each pass the step runs (forward, input gradient dX, weight
   gradient dW) at the batch it runs at (D sees real and fake as one batch of 2B in
   its own step when it has no BatchNorm, the fake alone in G's step): its FLOPs
   (2 x multiply-adds, :func:`pass_flops`), its time (median over ``--repeats``
   after a warm-up; the layer's own ``forward``, ``backward`` with
   ``trainable = False`` for dX alone, ``backward_weights`` for dW alone, on the
   engine the layer picks in the step) and its GFLOP/s.
2. **Per kernel.**  ``--steps`` steps of the real ``train_step`` with every kernel of
   the CPU's kernel table, NumPy's ``matmul``, ``ascontiguousarray`` and
   ``concatenate``, each layer's passes, the losses, the optimizers and the weight
   average wrapped in timers (in this script only, undone after): the *exclusive* wall
   time of each (its own time less that of the wrapped calls inside it), in ms per
   step, summed per category; "other" is the step time less their sum (the Python of
   the step and the Sequential loops).  GEMMs the layers write as ``@`` are not
   calls that can be wrapped: they stay in the layer's own code.
3. **The floor.**  NumPy's float32 GEMM rate (2048^3, the better of a measurement
   before and one after the steps; and at each GEMM shape of the step, written as the
   one im2col GEMM over the batch, best of the repeats); the step's FLOPs; the floor
   = FLOPs / rate; the whole step's median time and step / floor.
4. **PyTorch** (when it is installed): the same networks and step
   (``torch_reference.conv_step_fn``, the networks of ``quality.py``) in a child
   process that imports PyTorch and never minigan, so that :func:`minigan.tune_cpu`
   here does not reach it: its step median, and torch.profiler's self CPU time per op
   and per category, and its step / floor.

Thread counts are fixed before NumPy loads its BLAS (:func:`minigan.cli.bench.thread_env`),
then :func:`minigan.tune_cpu` is applied, as ``benchmarks/bench.py`` does.
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # before NumPy loads its BLAS
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[_var] = _threads

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402  (beside this file)
import torch_reference  # noqa: E402

import minigan  # noqa: E402
from minigan import nn, runtime  # noqa: E402
from minigan.cli.bench import block_times, ms, table, thread_env, threads_ready, timeit  # noqa: E402
from minigan.gan import step as step_module  # noqa: E402
from minigan.gan.config import TrainConfig  # noqa: E402
from minigan.gan.models import CODE_SCALE, CODES  # noqa: E402
from minigan.gan.trainer import Trainer  # noqa: E402
from minigan.nn.conv.im2col import Im2colEngine  # noqa: E402

PASSES = ("forward", "dX", "dW")
GEMM_LAYERS = (nn.Dense, nn.Conv2D, nn.Conv2DTranspose, nn.LabelProjection)
DATA_SAMPLES = 512  # random images the clusters are made of


# -- FLOPs and GEMM shapes (pure) ------------------------------------------------------

def pass_flops(layer, in_shape, kind: str) -> int:
    """FLOPs (2 x multiply-adds) of one pass ``kind`` ("forward", "dX" or "dW") of ``layer``
    on an input of ``in_shape`` (batch first).  Each pass of a conv, a transposed conv or
    a dense layer is one product of the same size (the im2col count: padding taps
    included); the projection head's are its two inner products a row."""
    if kind not in PASSES:
        raise ValueError(f"pass {kind!r}: expected one of {PASSES}")
    if not isinstance(layer, GEMM_LAYERS):
        return 0
    return 2 * in_shape[0] * layer.multiply_adds(tuple(in_shape[1:]))


def gemm_shape(layer, in_shape, kind: str) -> tuple:
    """``(m, k, n)`` of the pass as one GEMM ``(m x k) @ (k x n)`` over the batch (im2col
    form: ``N*P`` pixel columns).  A conv is ``O x K`` weights against ``K x N*P`` columns
    (``K = C*kh*kw``); a transposed conv is the adjoint of the conv (out -> in), so its
    forward is that conv's dX and its dX that conv's forward."""
    N = in_shape[0]
    if isinstance(layer, nn.Dense):
        i, o = layer.in_features, layer.out_features
        return {"forward": (N, i, o), "dX": (N, o, i), "dW": (i, N, o)}[kind]
    if isinstance(layer, nn.LabelProjection):
        F = layer.in_features
        return {"forward": (N, F, 1), "dX": (N, 1, F), "dW": (F, N, 1)}[kind]
    if isinstance(layer, nn.Conv2D):
        g = layer.geometry(*in_shape[2:])
        O, K, NP = layer.out_ch, g.K, N * g.Ho * g.Wo
        return {"forward": (O, K, NP), "dX": (K, O, NP), "dW": (O, NP, K)}[kind]
    if isinstance(layer, nn.Conv2DTranspose):
        g = layer.geometry(*in_shape[2:])
        O, K, NP = layer.in_ch, g.K, N * in_shape[2] * in_shape[3]
        return {"forward": (K, O, NP), "dX": (O, K, NP), "dW": (O, NP, K)}[kind]
    raise TypeError(f"{layer!r} runs no GEMM")


# -- what each wrapped name is charged to (pure) ----------------------------------------

GEMM = "GEMM (BLAS calls)"
GEMM_AT = "GEMM written as @ (im2col engine, Dense)"
WINOGRAD = "Winograd tile and weight transforms"
HEAD = "projection head (its kernels, label rows)"
KERNEL_CATEGORIES = {
    "im2col": "im2col / col2im", "col2im": "im2col / col2im", "batched_matmul": GEMM,
    "leaky_relu": "activations", "leaky_relu_grad": "activations", "dropout": "activations",
    "dropout_grad": "activations", "batchnorm_stats": "BatchNorm", "batchnorm_apply": "BatchNorm",
    "batchnorm_grad": "BatchNorm", "batchnorm_leaky_apply": "BatchNorm (with the LeakyReLU after it)",
    "batchnorm_leaky_grad": "BatchNorm (with the LeakyReLU after it)",
    "add_channel_bias": "bias adds (with the LeakyReLU after them)",
    "add_label_bias": "bias adds (with the LeakyReLU after them)", "adam_update": "Adam", "ema_update": "weight average (EMA)",
    "bce_with_logits_sum": "losses", "channel_sums": "bias gradients",
    "split_phases": "spectral transforms", "merge_phases": "spectral transforms",
    "rows_to_spectrum": "spectral transforms", "spectrum_to_rows": "spectral transforms",
    "winograd_image": WINOGRAD, "winograd_image_adjoint": WINOGRAD, "winograd_output": WINOGRAD,
    "winograd_output_adjoint": WINOGRAD, "winograd_weights": WINOGRAD, "winograd_weights_adjoint": WINOGRAD,
    "projection_head": HEAD, "projection_head_grad": HEAD, "projection_head_weight_grad": HEAD,
}
NUMPY_CATEGORIES = {"matmul": GEMM, "ascontiguousarray": "copies / transposes",
                    "concatenate": "concatenate"}
ENGINE_METHODS = ("to_output", "adjoint_columns", "weight_grad")  # their GEMMs are @ or np.matmul
LAYER_CATEGORIES = ((nn.Dense, GEMM_AT), ((nn.Conv2D, nn.Conv2DTranspose), "conv layer code (bias, checks)"),
                    ((nn.LabelProjection,), HEAD),
                    ((nn.BatchNorm,), "BatchNorm"),
                    ((nn.LeakyReLU, nn.Tanh, nn.ReLU, nn.Sigmoid, nn.Dropout), "activations"),
                    ((nn.Reshape, nn.Flatten), "reshapes"),
                    ((nn.DiscreteCode, nn.LabelJoin), "code and labels"))
GEMM_CATEGORIES = (GEMM, GEMM_AT)


def layer_category(layer) -> str:
    for classes, category in LAYER_CATEGORIES:
        if isinstance(layer, classes):
            return category
    return "other layers"


def category_totals(rows) -> dict:
    """``{category: ms}`` from ``[(name, category, calls, ms)]``, largest first."""
    out = defaultdict(float)
    for _, category, _, t in rows:
        out[category] += t
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def fmt_rate(flops, seconds) -> str:
    return f"{flops / seconds / 1e9:.1f}" if seconds > 0 and flops else "-"


# -- the step --------------------------------------------------------------------------

def build_step(batch: int, seed: int = 0):
    """A :class:`Trainer` with the default MNIST recipe of the conv pair on random images,
    and ``step()`` running its ``train_step`` on a fixed batch, noise and labels."""
    dev = runtime.device("cpu")
    cfg = TrainConfig.for_dataset("mnist", model="conv", batch_size=batch, seed=seed, device=dev.name,
                                  out="runs/profile")  # writes nothing
    data = np.random.default_rng(seed).uniform(-1, 1, (max(DATA_SAMPLES, batch), 1, 28, 28))
    t = Trainer(cfg, data=data.astype(np.float32), progress=False)
    real, z, y_real, y_fake = t.step_inputs(np.arange(batch))
    return t, (real, z, y_real, y_fake), lambda: t.train_step(real, z, y_real, y_fake)


# -- exclusive timers (part 2) ----------------------------------------------------------

class Timers:
    """Exclusive wall time and calls per name, of calls made on the main thread (BLAS
    helpers run products on worker threads, inside a call already timed)."""

    def __init__(self):
        self.seconds, self.calls, self.category = defaultdict(float), defaultdict(int), {}
        self.stack, self.on = [], False
        self.undo = []

    def wrap(self, name, category, fn):
        self.category[name] = category
        main = threading.main_thread()

        def timed(*args, **kwargs):
            if not self.on or threading.current_thread() is not main:
                return fn(*args, **kwargs)
            self.stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                inner = self.stack.pop()
                self.seconds[name] += dt - inner
                self.calls[name] += 1
                if self.stack:
                    self.stack[-1] += dt
        return timed

    def patch(self, obj, attr, name, category):
        """Replace ``obj.attr`` (a module's function, a table's entry, an instance's method)
        by its timed wrapper until :meth:`restore`."""
        if isinstance(obj, dict):
            old = obj[attr]
            obj[attr] = self.wrap(name, category, old)
            self.undo.append(lambda: obj.__setitem__(attr, old))
        else:
            old, own = getattr(obj, attr), attr in vars(obj)
            setattr(obj, attr, self.wrap(name, category, old))
            self.undo.append(lambda: setattr(obj, attr, old) if own else delattr(obj, attr))

    def restore(self):
        while self.undo:
            self.undo.pop()()

    def rows(self, steps: int):
        """``[(name, category, calls per step, ms per step)]``, longest first."""
        r = [(n, self.category[n], self.calls[n] / steps, 1e3 * s / steps) for n, s in self.seconds.items()]
        return sorted(r, key=lambda row: -row[3])


def layer_name(net: str, i: int, layer) -> str:
    return f"{net}[{i}] {layer!r}"


def record_schedule(timers, net, i, layer, schedule):
    """Wrap ``layer``'s passes in timers, and note in ``schedule`` each GEMM pass the step
    runs: ``(net, i, pass, input shape) -> calls``.  ``backward`` is dX, and dW too when
    the layer is trainable; a pass called from within the same layer's pass is not noted."""
    state = {"shape": None, "depth": 0}
    for method in ("forward", "backward", "backward_weights"):
        inner = timers.wrap(f"{layer_name(net, i, layer)} {method}", layer_category(layer),
                            getattr(layer, method))

        def noted(x, _method=method, _inner=inner, **kw):  # kw: an absorbed activation
            if timers.on and state["depth"] == 0 and isinstance(layer, GEMM_LAYERS):
                if _method == "forward":
                    state["shape"] = tuple(x.shape)
                kinds = {"forward": ["forward"], "backward_weights": ["dW"],
                         "backward": ["dX"] + (["dW"] if layer.trainable else [])}[_method]
                for kind in kinds:
                    key = (net, i, kind, tuple(x.shape) if _method == "forward" else state["shape"])
                    schedule[key] = schedule.get(key, 0) + 1
            state["depth"] += 1
            try:
                return _inner(x, **kw)
            finally:
                state["depth"] -= 1
        setattr(layer, method, noted)


def instrument_kernels(timers):
    """Timers on the CPU's kernel table and NumPy's entry points.  Put them in place before
    the trainer's first step: its conv engines keep the table's entries they are made with."""
    kernels = runtime.device("cpu").kernels
    for name in list(kernels):
        timers.patch(kernels, name, f"kernel {name}", KERNEL_CATEGORIES.get(name, "other kernels"))
    for name, category in NUMPY_CATEGORIES.items():
        timers.patch(np, name, f"np.{name}", category)
    for name in ENGINE_METHODS:
        timers.patch(Im2colEngine, name, f"Im2colEngine.{name} (own code)", GEMM_AT)


def instrument_step(timers, trainer, schedule):
    """Timers on the step's own parts: layer passes, losses, optimizers, weight average."""
    timers.patch(step_module, "d_mean_output", "D's mean outputs (step statistics)", "losses")
    timers.patch(step_module, "set_labels", "set_labels", "code and labels")
    for net, model in (("G", trainer.G), ("D", trainer.D)):
        timers.patch(model, "zero_grad", f"{net} zero_grad", "zero_grad")
        for i, layer in enumerate(model.layers):
            record_schedule(timers, net, i, layer, schedule)
    for net, opt in (("G", trainer.opt_G), ("D", trainer.opt_D)):
        timers.patch(opt, "step", f"Adam {net} (optimizer code)", "Adam")
    for method in ("d_real", "d_fake", "g"):
        timers.patch(trainer.loss, method, f"loss {method}", "losses")
    if trainer.ema is not None:
        timers.patch(trainer.ema, "update", "weight average update", "weight average (EMA)")
    timers.patch(trainer.health, "record", "health record", "other bookkeeping")


def kernel_breakdown(batch: int, steps: int):
    """``(rows, schedule, instrumented step s)``: the exclusive times over ``steps`` steps of
    a fresh trainer with the timers in place, and the GEMM passes a step runs
    (:func:`record_schedule`, calls per step).  Run a plain step first: Numba compiles
    nothing while NumPy's functions are wrapped."""
    timers, schedule = Timers(), {}
    try:
        instrument_kernels(timers)
        trainer, _, step = build_step(batch)
        instrument_step(timers, trainer, schedule)
        for _ in range(3):
            step()
        timers.on = True
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        total = (time.perf_counter() - t0) / steps
        timers.on = False
    finally:
        timers.restore()
    schedule = {k: v / steps for k, v in schedule.items()}
    return timers.rows(steps), schedule, total


# -- per-pass timings (part 1) -----------------------------------------------------------

def layer_inputs(model, x):
    """``[input of layer i]`` for one forward of ``model`` on ``x``."""
    xs = []
    for layer in model.layers:
        xs.append(x)
        x = layer.forward(x)
    return xs


def step_inputs(trainer, real, z, y_real, y_fake):
    """``{(net, batch): (labels or None, [input of each layer])}`` for the batches the step
    feeds its networks: G on the noise, D on real + fake (one batch) and on the fake."""
    xp = trainer.xp
    fake = trainer.G.forward(z)
    out = {("G", len(z)): (None, layer_inputs(trainer.G, z))}
    for x, y in ((xp.concatenate([real, fake]), None if y_real is None else xp.concatenate([y_real, y_fake])),
                 (fake, y_fake)):
        if y is not None:
            nn.set_labels(trainer.D, y)
        out[("D", len(x))] = (y, layer_inputs(trainer.D, x))
    return out


def time_pass(layer, x, kind: str, repeats: int) -> float:
    """Median seconds of one pass: ``forward``; dX alone (``backward``, the layer frozen);
    dW alone (``backward_weights``)."""
    y = layer.forward(x)
    if kind == "forward":
        return timeit(lambda: layer.forward(x), repeats)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype)
    if kind == "dW":
        return timeit(lambda: layer.backward_weights(dy), repeats)
    layer.trainable = False
    try:
        return timeit(lambda: layer.backward(dy), repeats)
    finally:
        layer.trainable = True


def pass_rows(trainer, inputs, schedule, repeats: int):
    """``[(net, i, layer, pass, in_shape, calls, flops, seconds)]`` for every GEMM pass of the step."""
    rows = []
    order = sorted(schedule.items(), key=lambda kv: (kv[0][0] == "D", kv[0][1], PASSES.index(kv[0][2]),
                                                     -kv[0][3][0]))
    for (net, i, kind, shape), calls in order:
        model = trainer.G if net == "G" else trainer.D
        labels, xs = inputs[(net, shape[0])]
        if labels is not None:
            nn.set_labels(model, labels)
        layer = model.layers[i]
        t = time_pass(layer, xs[i], kind, repeats)
        rows.append((net, i, layer, kind, shape, calls, pass_flops(layer, shape, kind), t))
    trainer.G.zero_grad(), trainer.D.zero_grad()
    return rows


# -- GEMM rates (part 3) -----------------------------------------------------------------

def shape_rate(m: int, k: int, n: int, repeats: int) -> float:
    """NumPy's float32 GEMM rate in GFLOP/s for ``(m x k) @ (k x n)``, contiguous operands:
    the best of ``repeats`` calls (what the machine can do at that shape; a floor)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    return 2 * m * k * n / min(block_times(lambda: np.matmul(a, b, out=out), repeats)) / 1e9


# -- PyTorch (part 4) ----------------------------------------------------------------------

def torch_profile(cfg, batch, threads, steps, repeats):
    """PyTorch's side (:func:`torch_reference.profile_conv_step`) in a child process, or None
    when PyTorch is not installed."""
    if not harness.torch_available():
        return None
    code = (cfg.clusters, CODE_SCALE) if cfg.clusters else CODES["conv"]
    req = {"batch": batch, "clusters": cfg.clusters, "g_ema": cfg.g_ema, "lr": cfg.lr,
           "betas": [cfg.beta1, cfg.beta2], "code": list(code), "seed": cfg.seed, "threads": threads,
           "steps": steps, "repeats": repeats}
    env = {**os.environ, **thread_env(threads)}
    proc = subprocess.run([sys.executable, "-c", torch_reference.PROFILE_CHILD_CODE, torch_reference.__file__,
                           json.dumps(req)], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"the PyTorch child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the report ------------------------------------------------------------------------------

def pass_table(rows, shapes) -> str:
    """Part 1 as a Markdown table: a row per (layer, pass, batch); ``shapes`` maps each
    :func:`gemm_shape` to NumPy's GEMM rate there (GFLOP/s)."""
    r = []
    for net, i, layer, kind, shape, calls, flops, t in rows:
        engine = getattr(layer, "last_engine", None) or "-"
        floor = flops / (shapes[gemm_shape(layer, shape, kind)] * 1e9)
        r.append([layer_name(net, i, layer), engine, kind, shape[0], f"{calls:g}", f"{flops / 1e6:.1f}",
                  ms(t), fmt_rate(flops, t), ms(floor), f"{t / floor:.1f}"])
    return table(["layer", "engine", "pass", "batch", "calls / step", "MFLOP", "ms", "GFLOP/s",
                  "one GEMM of its shape, ms", "ratio"], r)


def breakdown_table(rows, step_s) -> str:
    """Part 2 as a Markdown table: a row per timed name, then "other"."""
    r = [[name, category, f"{calls:g}", f"{t:.2f}"] for name, category, calls, t in rows if t >= 0.005]
    rest = 1e3 * step_s - sum(t for *_, t in rows)
    r.append(["other (Python overhead: the step's own code, Sequential loops, timers)", "other", "",
              f"{rest:.2f}"])
    return table(["timed call (exclusive time)", "category", "calls / step", "ms / step"], r)


def totals_table(totals: dict, step_ms: float) -> str:
    r = [[c, f"{t:.2f}", f"{100 * t / step_ms:.0f}%"] for c, t in totals.items()]
    return table(["category", "ms / step", "of the step"], r)


def torch_tables(res, flops, rate, out, top=15):
    """Part 4: PyTorch's step, its top ops by self CPU time and its categories."""
    ops = sorted(res["ops"].items(), key=lambda kv: -kv[1][0])[:top]
    out(table(["op", "self CPU ms / step", "calls / step"],
              [[name, f"{us / 1e3:.2f}", f"{calls:g}"] for name, (us, calls) in ops]))
    cats = dict(sorted(res["categories"].items(), key=lambda kv: -kv[1]))
    rest = res["profiled_step_s"] * 1e6 - sum(cats.values())
    cats["outside any op (Python, autograd engine, profiler)"] = rest
    out("")
    out(totals_table({k: v / 1e3 for k, v in cats.items()}, 1e3 * res["profiled_step_s"]))
    out(f"\nPyTorch {res['version']} ({res['threads']} threads): step **{ms(res['step_s'])} ms** "
        f"(median; {ms(res['profiled_step_s'])} ms under the profiler); "
        f"{flops / res['step_s'] / 1e9:.1f} GFLOP/s; step / floor **{res['step_s'] * rate * 1e9 / flops:.2f}**")


def report(args, out=print):
    """Run the four parts and print them."""
    load = harness._loadavg()
    trainer, batch_inputs, step = build_step(args.batch)
    for _ in range(3):  # compiles the kernels (on a fresh machine) before anything is timed
        step()
    rate0 = harness.gemm_rate(repeats=max(3, args.repeats))
    step_s = timeit(step, args.repeats, warmup=2)
    rows, schedule, instrumented_s = kernel_breakdown(args.batch, args.steps)
    passes = pass_rows(trainer, step_inputs(trainer, *batch_inputs), schedule, args.repeats)
    rate = max(rate0, harness.gemm_rate(repeats=max(3, args.repeats)))
    shapes = {}
    for net, i, layer, kind, shape, calls, flops, t in passes:
        key = gemm_shape(layer, shape, kind)
        if key not in shapes:
            shapes[key] = shape_rate(*key, args.repeats)
    torch_res = torch_profile(trainer.config, args.batch, args.threads, args.steps,
                              args.repeats) if args.torch else None
    write_report(args, out, trainer, step_s, rows, instrumented_s, passes, shapes, rate, torch_res, load)


def write_report(args, out, trainer, step_s, rows, instrumented_s, passes, shapes, rate, torch_res, load):
    cfg = trainer.config
    out(f"# One train step of the lean conv pair, batch {args.batch}, CPU, {args.threads} threads\n")
    out(f"recipe: `TrainConfig.for_dataset('mnist', model='conv')`: clusters {cfg.clusters}, "
        f"lr {cfg.lr:g}, g_ema {cfg.g_ema:g}, loss {cfg.loss}; D on real + fake as one batch: "
        f"{trainer.joint_D}\n")
    out(f"command: `{' '.join(args.argv)}`; load average (1, 5, 15 min) at start: {load}\n")
    out("## 1. GEMM passes (median of isolated calls)\n")
    out(pass_table(passes, shapes))
    flops = sum(f * c for *_, c, f, _t in passes)
    pass_s = sum(t * c for *_, c, _f, t in passes)
    shape_floor = sum(f * c / (shapes[gemm_shape(layer, shape, kind)] * 1e9)
                      for _, _, layer, kind, shape, c, f, _ in passes)
    out(f"\nsum of the GEMM passes (time x calls): {ms(pass_s)} ms, {flops / 1e9:.2f} GFLOP, "
        f"{fmt_rate(flops, pass_s)} GFLOP/s\n")
    out(f"## 2. Where the step's time goes ({args.steps} instrumented steps)\n")
    out(breakdown_table(rows, instrumented_s))
    totals = category_totals(rows)
    totals["other (Python overhead)"] = 1e3 * instrumented_s - sum(totals.values())
    out("")
    out(totals_table(totals, 1e3 * instrumented_s))
    gemm_ms = sum(totals.get(c, 0.0) for c in GEMM_CATEGORIES)
    out(f"\ninstrumented step {ms(instrumented_s)} ms (plain step {ms(step_s)} ms): GEMM and the "
        f"conv / dense layers' own code {gemm_ms:.2f} ms, everything else "
        f"{1e3 * instrumented_s - gemm_ms:.2f} ms\n")
    out("## 3. Against the GEMM floor\n")
    out(table(["what", "value"], [
        ["NumPy float32 GEMM 2048^3", f"{rate:.1f} GFLOP/s"],
        ["step FLOPs (conv / dense passes)", f"{flops / 1e9:.3f} GFLOP"],
        ["floor at the 2048^3 rate", f"{ms(flops / rate / 1e9)} ms"],
        ["floor at each pass's own GEMM shape", f"{ms(shape_floor)} ms"],
        ["minigan step (median)", f"{ms(step_s)} ms ({fmt_rate(flops, step_s)} GFLOP/s)"],
        ["minigan step / floor (2048^3; at shape)", f"{step_s * rate * 1e9 / flops:.2f}; "
                                                   f"{step_s / shape_floor:.2f}"],
    ]))
    out("")
    out(table(["GEMM (m x k) @ (k x n)", "GFLOP/s (best of the repeats)"],
              [[f"({m} x {k}) @ ({k} x {n})", f"{r:.1f}"] for (m, k, n), r in sorted(shapes.items())]))
    out("\n## 4. PyTorch, the same step (child process, torch.profiler)\n")
    if torch_res is None:
        out("(PyTorch is not installed, or --no-torch: skipped)")
    else:
        torch_tables(torch_res, flops, rate, out)
        out(f"\nminigan / PyTorch: {step_s / torch_res['step_s']:.2f}")
    out(f"\nload average at the end: {harness._loadavg()} (other work on the machine inflates every figure)")


def parser():
    p = argparse.ArgumentParser(prog="python benchmarks/profile_step.py",
                                description="Profile one train step of the lean conv pair against the "
                                            "GEMM floor (and PyTorch's, when installed); Markdown tables.")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--threads", type=int, default=2, help="threads for BLAS, Numba and PyTorch (default 2)")
    p.add_argument("--steps", type=int, default=10, help="instrumented / profiled steps (default 10)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each measurement (default 5)")
    p.add_argument("--markdown", metavar="FILE", help="also write the report to FILE")
    p.add_argument("--torch", action=argparse.BooleanOptionalAction, default=True,
                   help="also profile PyTorch when it is installed (default: yes)")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if min(args.batch, args.threads, args.steps, args.repeats) < 1:
        parser().error("--batch, --threads, --steps and --repeats must be at least 1")
    args.argv = ["python benchmarks/profile_step.py"] + argv
    if not threads_ready(args.threads):
        print(f"warning: thread variables are not set for {args.threads} threads before NumPy was "
              "imported; run this file as a script", file=sys.stderr)
    minigan.tune_cpu()
    lines = []

    def out(text=""):
        print(text, flush=True)
        lines.append(text)

    report(args, out)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

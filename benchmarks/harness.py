"""The benchmark harness behind ``benchmarks/bench.py``: minigan against PyTorch.

It times, as medians over repeats after a warm-up:

* each layer's forward and backward, for the MLP GAN and the DCGAN;
* one whole GAN train step, the trainer's own (:func:`minigan.cli.bench.setup`):
  the discriminator step on a real and a fake batch, then the generator step
  through the frozen discriminator, Adam on both;
* for every conv layer of the DCGAN, its ``col2im`` against the GEMM whose
  output it consumes;
* the machine's float32 GEMM rate (NumPy, 2048^3), and the rate the DCGAN
  step achieves counting its FLOPs as the GEMMs an im2col engine performs
  (:func:`gemm_flops`);

for each kernel path (``numpy``: the reference code alone; ``numba``: the
CPU's kernel table; ``cupy`` when CuPy sees a GPU) and, when PyTorch is
installed, the same networks and step in PyTorch in the same run, so that
the ratio minigan/PyTorch is measured under the same conditions.  PyTorch is
optional and never imported by this process: it runs in a child process
(:class:`TorchProcess`, code in ``torch_reference.py`` beside this file)
with the environment the harness was started with, as a user's script
would: :func:`minigan.tune_cpu` changes nothing in the environment, but its
settings in this process (Numba's passive OpenMP workers, glibc's malloc
thresholds) would not be PyTorch's (passive waiting doubles PyTorch's
small-op cost: MLP step 2.3 ms -> 7.6 ms measured), and importing PyTorch
first in the same process instead slows minigan's DCGAN step (228-258 ->
287-296 ms).  The two processes take turns: the parent sends "time n
steps", the child answers with the times, so the blocks still alternate.

Thread counts must be fixed before NumPy loads its BLAS, so
``benchmarks/bench.py`` sets them (:func:`minigan.cli.bench.thread_env`) before
it imports anything, then applies :func:`minigan.tune_cpu`.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys

import numpy as np
import torch_reference

from minigan.cli.bench import (NOISE_DIM, block_times, layer_times, ms, setup, synchronizer, table,
    thread_env, threads_ready, timeit)
from minigan.nn import Conv2D, Conv2DTranspose, Dense, Sequential
from minigan.runtime import devices

__all__ = ["setup", "timeit", "layer_times", "thread_env", "threads_ready"]

TUNING = None  # what minigan.tune_cpu did in this process (set by bench.py), for the report


# -- timing --------------------------------------------------------------------------

def local_block(fn, sync=lambda: None):
    """A block timer for :func:`timeit_interleaved`: ``block(n, warmup) -> [seconds]``;
    ``sync`` waits for the device after each call."""
    return lambda n, warmup: block_times(fn, n, warmup, sync)


def timeit_interleaved(blocks: dict, repeats: int, rounds: int = 3, warmup: int = 2) -> dict:
    """Median times of several ``name -> block`` contenders, taken in alternating blocks.

    ``block(n, warmup)`` runs ``warmup`` untimed calls, then returns ``n``
    call times (:func:`local_block`, or :meth:`TorchProcess.block` in a
    child process).  On a shared, noisy machine alternating puts every
    contender under the same conditions, so their ratios stay meaningful
    when absolute times drift.  Each block starts with an untimed call: the
    thread pool of the previous contender (PyTorch's OpenMP, OpenBLAS,
    Numba) may still be spinning, and that tail should not be charged to
    the next one.
    """
    times = {name: [] for name in blocks}
    per_round = max(1, -(-repeats // rounds))
    for r in range(rounds):
        for name, block in blocks.items():
            times[name] += block(per_round, warmup if r == 0 else 1)
    return {name: statistics.median(t) for name, t in times.items()}


def gemm_rate(n: int = 2048, repeats: int = 7) -> float:
    """Measured float32 GEMM rate of NumPy's BLAS in GFLOP/s (``n^3`` matmul)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    return 2 * n ** 3 / timeit(lambda: np.matmul(a, b, out=out), repeats) / 1e9


# -- FLOPs ---------------------------------------------------------------------------

def layer_flops(layer, in_shape):
    """``(forward, dx, dW)`` GEMM FLOPs of one layer for an input of ``in_shape``.

    Conv layers count the GEMMs of the im2col engine: ``2 * M * K * O`` with
    ``M`` the pixel rows, ``K = C*kh*kw`` and ``O`` the channels on the other
    side; forward, dx and dW are one such GEMM each.  Layers without a GEMM
    count zero.
    """
    N = in_shape[0]
    if isinstance(layer, Dense):
        f = 2 * N * layer.in_features * layer.out_features
    elif isinstance(layer, Conv2D):
        g = layer.geometry(*in_shape[2:])
        f = 2 * N * g.Ho * g.Wo * g.K * layer.out_ch
    elif isinstance(layer, Conv2DTranspose):
        g = layer.geometry(*in_shape[2:])
        f = 2 * N * in_shape[2] * in_shape[3] * g.K * layer.in_ch
    else:
        return 0, 0, 0
    return f, f, f


def performed_flops(layer, in_shape):
    """``(forward, dx, dW)`` FLOPs of the GEMMs ``layer`` actually runs on the current path:
    :func:`layer_flops`, except for a conv on the spectral engine, which counts its
    per-frequency products and transforms (:meth:`minigan.nn.conv.spectral.SpectralPlan.flops`).
    Call it after a forward on an input of ``in_shape``."""
    if getattr(layer, "last_engine", None) == "spectral":
        ctx = layer._cache
        return ctx.engine.flops(ctx.g, in_shape[0], layer.conv_out_channels)
    return layer_flops(layer, in_shape)


def gemm_flops(model: Sequential, x, performed: bool = False):
    """Per-layer ``(name, forward, dx, dW)`` GEMM FLOPs for input ``x`` (runs one forward):
    an im2col engine's (:func:`layer_flops`), or with ``performed`` the ones run."""
    rows = []
    for layer in model.layers:
        y = layer.forward(x)
        count = performed_flops(layer, x.shape) if performed else layer_flops(layer, x.shape)
        rows.append((repr(layer),) + tuple(count))
        x = y
    return rows


def step_flops(G, D, z, real, performed: bool = False) -> int:
    """GEMM FLOPs of the train step: G forward and backward, without dx of its first
    layer (its input is noise); D forward on the real, the fake and the fake again
    (G step); dW on real and fake; dx on the fake in the G step and, except for D's
    first layer (its input is data), on real and fake."""
    def per_layer(model, x):
        rows = np.array([r[1:] for r in gemm_flops(model, x, performed)])
        first_dx = next((r[1] for r in rows if r[1]), 0)
        return rows.sum(axis=0), first_dx

    g, g_first_dx = per_layer(G, z)
    d, d_first_dx = per_layer(D, real)
    return int(g.sum() - g_first_dx + 3 * d[0] + 3 * d[1] - 2 * d_first_dx + 2 * d[2])


# -- per-layer timings ----------------------------------------------------------------

def col2im_vs_gemm(D, G, batch: int, repeats: int):
    """For each conv layer of the DCGAN: (name, engine, GEMM s, col2im s) on the current kernel path.

    Conv2D uses col2im for dx (``dcols[n] = Wm^T @ dy[n]``); Conv2DTranspose in
    its forward (``dcols[n] = Wm^T @ x[n]``).  Both are timed as the im2col
    engine runs them (:meth:`minigan.nn.conv.im2col.Im2colEngine.adjoint_columns`,
    then the device's col2im).  A layer that runs on the spectral or the Winograd
    engine (:mod:`minigan.nn.conv.spectral`, :mod:`minigan.nn.conv.winograd`) has no
    col2im: its row says so, with None for both times.
    """
    from minigan.nn.conv.reference import col2im  # noqa: PLC0415

    rng = np.random.default_rng(2)
    out = []
    for model, x in ((G, rng.standard_normal((batch, NOISE_DIM), dtype=np.float32)),
                     (D, rng.uniform(-1, 1, (batch, 1, 28, 28)).astype(np.float32))):
        for layer in model.layers:
            y = layer.forward(x)
            if isinstance(layer, (Conv2D, Conv2DTranspose)) and layer.last_engine in ("spectral", "winograd"):
                out.append((repr(layer), layer.last_engine, None, None))
            elif isinstance(layer, (Conv2D, Conv2DTranspose)):
                N, _, H, W = x.shape
                ctx = layer._cache
                eng, g, Wm = ctx.engine, ctx.g, ctx.weights
                P = g.Ho * g.Wo
                if isinstance(layer, Conv2D):
                    grad = rng.standard_normal((N, layer.out_ch, P), dtype=np.float32)
                else:
                    grad = np.ascontiguousarray(x).reshape(N, layer.in_ch, P)
                cols = eng.adjoint_columns(Wm, grad, g)
                img = np.empty((N, g.C, g.H, g.W), np.float32)
                c2i = layer.device.kernel(col2im)
                t_gemm = timeit(lambda: eng.adjoint_columns(Wm, grad, g), repeats)  # noqa: B023
                t_c2i = timeit(lambda: c2i(cols, g, out=img), repeats)  # noqa: B023
                out.append((repr(layer), "im2col", t_gemm, t_c2i))
            x = y
    return out


# -- PyTorch -------------------------------------------------------------------------

def torch_available() -> bool:
    import importlib.util  # noqa: PLC0415

    return importlib.util.find_spec("torch") is not None


class TorchProcess:
    """PyTorch's train step, run and timed in a child process with PyTorch's own environment.

    The child imports PyTorch before anything else and never imports minigan
    (so none of what :func:`minigan.tune_cpu` sets up in this process reaches
    it): it loads ``torch_reference.py`` as a lone file and answers one JSON
    line per request (:func:`torch_reference.serve`).
    """

    def __init__(self, threads: int):
        import json  # noqa: PLC0415
        import subprocess  # noqa: PLC0415

        self._json = json
        self.proc = subprocess.Popen([sys.executable, "-c", torch_reference.CHILD_CODE,
                                      torch_reference.__file__], env=dict(os.environ), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.info = self._ask({"cmd": "info", "threads": threads})

    def _ask(self, req):
        self.proc.stdin.write(self._json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch child process died")
        return self._json.loads(line)

    def step_block(self, model: str, batch: int, joint: bool = False):
        """A block timer (see :func:`timeit_interleaved`) for PyTorch's step
        (:func:`torch_reference.torch_step_fn`)."""
        key = f"{model}/{batch}/{int(joint)}"
        self._ask({"cmd": "setup", "key": key, "model": model, "batch": batch, "joint": joint})
        return lambda n, warmup: self._ask({"cmd": "time", "key": key, "n": n, "warmup": warmup})["times"]

    def conv_block(self, req: dict):
        """A block timer for PyTorch's step of the lean conv pair's recipe
        (:func:`torch_reference.conv_step_fn`; ``req`` as it takes it)."""
        key = f"conv/{req['batch']}"
        self._ask({"cmd": "conv_setup", "key": key, **req})
        return lambda n, warmup: self._ask({"cmd": "time", "key": key, "n": n, "warmup": warmup})["times"]

    def close(self):
        self._ask({"cmd": "quit"})
        self.proc.wait()


# -- machine -------------------------------------------------------------------------

def machine_info(torch_info=None) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba  # noqa: PLC0415

    info = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": f"{numba.__version__} (threading layer {_numba_layer()})",
        "blas": _blas_name(),
        "threads": os.environ.get("OPENBLAS_NUM_THREADS", "?"),
        "load average (1, 5, 15 min) at start": _loadavg(),
    }
    if TUNING is not None:
        info["minigan.tune_cpu"] = "; ".join(f"{k}: {v}" for k, v in TUNING.items())
    if torch_info is not None:
        info["torch"] = (f"{torch_info['version']} ({torch_info['threads']} threads, child process, "
                         f"OMP_WAIT_POLICY {torch_info['OMP_WAIT_POLICY']})")
    cp = devices.cupy_module()
    if cp is not None:
        info["cupy"] = cp.__version__
        info["gpu"] = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return info


def _loadavg():
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _numba_layer():
    import numba  # noqa: PLC0415

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return "not started"


def _blas_name():
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy
        return "unknown"


# -- report --------------------------------------------------------------------------

# the kernel paths: (device, kernel table)
PATHS = {"numpy": ("cpu", "reference"), "numba": ("cpu", "numba"), "cupy": ("gpu", None)}


def kernel_paths(requested):
    paths = []
    for p in requested:
        if p == "cupy" and not devices.gpu_available():
            print("(skipping cupy: CuPy or a GPU is not available)")
            continue
        paths.append(p)
    return paths


def path_setup(path, model, batch):
    """:func:`minigan.cli.bench.setup` on kernel path ``path``."""
    return setup(model, batch, *PATHS[path])


def run(args, out=print):
    torch = TorchProcess(args.threads) if args.torch and torch_available() else None
    if args.torch and torch is None:
        out("(PyTorch is not installed: skipping the PyTorch reference)")
    try:
        return _run(args, torch, out)
    finally:
        if torch is not None:
            torch.close()


def _run(args, torch, out):
    paths = kernel_paths(args.kernels)
    rep = {"mlp": args.repeats * 5, "dcgan": args.repeats}

    # warm the Numba caches (compiles on a fresh machine) before any timing
    path_setup("numba", "dcgan", 2).step()

    out("# minigan benchmark\n")
    info = machine_info(torch.info if torch is not None else None)
    out(table(["what", "value"], list(info.items())))
    out(f"\ncommand: `{' '.join(args.argv)}`\n")

    rate0 = gemm_rate(repeats=max(3, args.repeats // 2))

    out("## Whole train step (median ms)\n")
    header = ["model", "batch"] + [f"minigan {p}" for p in paths]
    if torch is not None:
        header += ["PyTorch, D on real and fake apart", "PyTorch, D on one real+fake batch",
                   "minigan numba / faster PyTorch"]
    rows, step_ms = [], {}
    flops = {}
    for model in args.models:
        for batch in args.batch:
            fns = {}
            for p in paths:
                s = path_setup(p, model, batch)
                fns[p] = local_block(s.step, synchronizer(s.device))
                if p == "numba" and model == "dcgan":
                    flops[batch] = (step_flops(s.G, s.D, s.z, s.real),
                                    step_flops(s.G, s.D, s.z, s.real, performed=True))
            if torch is not None:
                for joint in (False, True):
                    fns[("torch", joint)] = torch.step_block(model, batch, joint)
            t = timeit_interleaved(fns, rep[model])
            step_ms.update({(model, batch, p): t[p] for p in paths})
            row = [model, batch] + [ms(t[p]) for p in paths]
            if torch is not None:
                best = min(t[("torch", False)], t[("torch", True)])
                row += [ms(t[("torch", False)]), ms(t[("torch", True)])]
                row.append(f"{t['numba'] / best:.2f}" if "numba" in t else "-")
            rows.append(row)
    out(table(header, rows))

    # the rate is taken before and after the steps and the higher one used: on a
    # shared host a single measurement has come out at half the usual value
    rate1 = gemm_rate(repeats=max(3, args.repeats // 2))
    rate = max(rate0, rate1)
    out(f"\nfloat32 GEMM 2048^3 (NumPy): **{rate:.1f} GFLOP/s** "
        f"(before the steps {rate0:.1f}, after {rate1:.1f}; the higher is used below)\n")

    if flops:
        out("\n## DCGAN step against the GEMM rate (numba path)\n")
        r = []
        for batch, (f, done) in flops.items():
            t = step_ms[("dcgan", batch, "numba")]
            r.append([batch, f"{f / 1e9:.1f}", ms(f / (rate * 1e9)), ms(t),
                      f"{f / t / 1e9:.1f}", f"{100 * f / t / 1e9 / rate:.0f}%",
                      f"{done / 1e9:.1f}", f"{100 * done / t / 1e9 / rate:.0f}%"])
        out(table(["batch", "GEMM GFLOP (im2col count)", "GEMM floor ms", "step ms", "achieved GFLOP/s",
                    "of GEMM rate", "GFLOP performed", "performed, of GEMM rate"], r))
        out("\nThe first count is the GEMMs of an im2col engine for this step; the spectral "
            "engine performs fewer (its per-frequency products and transforms, second count).\n")

    if "numba" in paths and "dcgan" in args.models:
        out(f"\n## col2im vs the GEMM it serves (DCGAN, numba, batch {args.batch[0]}, ms)\n")
        G, D, *_ = path_setup("numba", "dcgan", args.batch[0])
        r = [[name, engine, ms(tg), ms(tc), f"{tc / tg:.2f}"] if tg else
             [name, engine, "-", "none", "0"]
             for name, engine, tg, tc in col2im_vs_gemm(D, G, args.batch[0], args.repeats)]
        out(table(["layer", "engine", "GEMM", "col2im", "col2im / GEMM"], r))

    if not args.no_layers:
        for model in args.models:
            batch = args.batch[0]
            out(f"\n## Per layer, {model}, batch {batch} (median ms, forward / backward)\n")
            cols, names = {}, None
            for p in paths:
                G, D, z, real, _, dev = path_setup(p, model, batch)
                sync = synchronizer(dev)
                t = ([("G " + n, f, b) for n, f, b in layer_times(G, z, rep[model], sync)]
                     + [("D " + n, f, b) for n, f, b in layer_times(D, real, rep[model], sync)])
                names = [n for n, _, _ in t]
                cols[p] = [(f, b) for _, f, b in t]
                fl = [r[1:] for r in gemm_flops(G, z) + gemm_flops(D, real)]
            r = []
            for i, name in enumerate(names):
                floor = f"{ms(fl[i][0] / rate / 1e9)} / {ms((fl[i][1] + fl[i][2]) / rate / 1e9)}"
                r.append([name] + [f"{ms(cols[p][i][0])} / {ms(cols[p][i][1])}" for p in paths]
                         + [floor if fl[i][0] else ""])
            out(table(["layer"] + paths + ["GEMM floor at the measured rate"], r))
    out(f"\nload average at the end: {_loadavg()} (other work on the machine inflates every figure)")
    return 0


def parser(prog="python benchmarks/bench.py", quick=False):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Time minigan's layers and GAN train steps on each kernel path "
                    "(and PyTorch, when installed) and print Markdown tables.")
    p.add_argument("--quick", action=argparse.BooleanOptionalAction, default=quick,
                   help=f"batch 64 only, fewer repeats (default: {'yes' if quick else 'no'})")
    p.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (default 64 256)")
    p.add_argument("--kernels", nargs="+", default=["numpy", "numba", "cupy"],
                   choices=["numpy", "numba", "cupy"], help="kernel paths (cupy only with a GPU)")
    p.add_argument("--models", nargs="+", default=["mlp", "dcgan"], choices=["mlp", "dcgan"])
    p.add_argument("--torch", action=argparse.BooleanOptionalAction, default=True,
                   help="also time PyTorch when it is installed (default: yes)")
    p.add_argument("--threads", type=int, default=2, help="threads for BLAS, Numba and PyTorch")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (DCGAN; MLP x5)")
    p.add_argument("--no-layers", action="store_true", help="skip the per-layer tables")
    return p


def parse(argv, prog="python benchmarks/bench.py", quick=False):
    args = parser(prog, quick).parse_args(argv)
    if args.batch is None:
        args.batch = [64] if args.quick else [64, 256]
    if args.repeats is None:
        args.repeats = 5 if args.quick else 15
    args.argv = [prog] + list(argv)
    return args


def main(argv=None, prog="python benchmarks/bench.py"):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv, prog)
    if not threads_ready(args.threads):
        print(f"warning: thread variables are not set for {args.threads} threads before NumPy "
              "was imported; run through benchmarks/bench.py", file=sys.stderr)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

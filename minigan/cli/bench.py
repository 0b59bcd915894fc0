"""``minigan bench``: per-step and per-layer timings on the devices minigan runs on.

It times, as medians after a warm-up, the trainer's own GAN step (D on a real
and a fake batch, G through the frozen D, Adam on both; :func:`setup`) and
each layer's forward and backward, for the MLP GAN and the DCGAN, on each
device asked for (the CPU with its Numba kernels, a GPU when CuPy sees one)
and, with ``--reference``, on the same devices with the reference code alone.

The comparison with PyTorch, the GEMM rate a step reaches and the col2im
study live in the repository's ``benchmarks/`` (``python benchmarks/bench.py``),
which builds on this module.

The threads (``--threads``, else the default of every command:
``$MINIGAN_THREADS`` or the idle cores) are set at run time by
:func:`minigan.runtime.tuning.set_threads`, with :func:`minigan.tune_cpu`'s
other settings applied first.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import NamedTuple

import numpy as np

from ..gan.models import image_shape
from ..gan.trainer import TrainConfig, Trainer
from ..runtime import devices
from ..runtime.tuning import tune_cpu
from .args import Formatter, Parser, examples, quiet_on_closed_pipe

NOISE_DIM = 100


class StepSetup(NamedTuple):
    G: object
    D: object
    z: object  # (batch, 100) noise on the device
    real: object  # a fixed real batch on the device
    step: object  # runs one train step
    device: devices.Device


def setup(model: str, batch: int, device="cpu", kernels: str | None = None, seed: int = 0) -> StepSetup:
    """The trainer's own step (:meth:`minigan.gan.Trainer.train_step`: BCE, Adam 1e-4,
    betas (0.5, 0.999)) on a fixed (noise, real batch) pair on ``device``."""
    dev = devices.device(device, kernels)
    rng = np.random.default_rng(seed)
    data = rng.uniform(-1, 1, (batch,) + image_shape(model)).astype(np.float32)
    cfg = TrainConfig(model=model, batch_size=batch, lr=1e-4, beta1=0.5, seed=seed, device=dev.name,
                      out="runs/bench")  # writes nothing
    t = Trainer(cfg, data=data, progress=False)
    t.G.to(dev), t.D.to(dev)  # the kernel table asked for (the trainer takes the device's own)
    z = dev.asarray(rng.standard_normal((batch, NOISE_DIM), dtype=np.float32))
    real = dev.asarray(data)
    return StepSetup(t.G, t.D, z, real, lambda: t.train_step(real, z), dev)


def synchronizer(dev: devices.Device):
    """A function that waits for ``dev`` to finish its queued work (nothing on the CPU)."""
    if dev.name == "gpu":
        return dev.xp.cuda.Device().synchronize
    return lambda: None


def block_times(fn, n: int, warmup: int = 2, sync=lambda: None) -> list:
    """``warmup`` untimed calls of ``fn``, then the seconds of ``n`` timed ones."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def timeit(fn, repeats: int, warmup: int = 2, sync=lambda: None) -> float:
    """Median wall time of ``fn()`` in seconds."""
    return statistics.median(block_times(fn, repeats, warmup, sync))


def layer_times(model, x, repeats: int, sync=lambda: None):
    """``[(name, forward_s, backward_s)]`` for each layer of a Sequential, fed real activations."""
    out = []
    rng = np.random.default_rng(1)
    for layer in model.layers:
        y = layer.forward(x)
        dy = layer.device.asarray(rng.standard_normal(y.shape).astype(np.float32))
        tf = timeit(lambda: layer.forward(x), repeats, sync=sync)  # noqa: B023
        layer.forward(x)
        tb = timeit(lambda: layer.backward(dy), repeats, sync=sync)  # noqa: B023
        out.append((repr(layer), tf, tb))
        x = y
    return out


def table(header, rows) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def ms(s) -> str:
    return f"{1e3 * s:.2f}"


def backends(args):
    """``[(label, device, kernels)]`` for the devices and kernel tables asked for."""
    out = []
    for d in args.device:
        if d == "gpu" and not devices.gpu_available():  # asked for by name: no silent skip
            devices.device("gpu")  # raises minigan.runtime.gpu_env.GpuUnavailable, naming the cause
        out.append((d, d, None))
        if args.reference:
            out.append((f"{d} reference", d, "reference"))
    return out


def machine_line(threads) -> str:
    import numba  # noqa: PLC0415  (start-up: Numba's import, ~0.3 s, not needed by --help)

    line = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {threads}; "
            f"load average {os.getloadavg()[0]:.2f}; "
            f"Python {platform.python_version()}, NumPy {np.__version__}, Numba {numba.__version__}")
    cp = devices.cupy_module()
    if cp is not None:
        line += f"; CuPy {cp.__version__} on {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}"
    return line


def run(args, out=print) -> int:
    chosen = backends(args)
    threads = tuning_threads()
    out(f"# minigan bench\n\n{machine_line(threads)}\n")
    rows = []
    for model in args.models:
        for batch in args.batch:
            row = [model, batch]
            for _, dev, kernels in chosen:
                s = setup(model, batch, dev, kernels)
                row.append(ms(timeit(s.step, args.repeats * (5 if model == "mlp" else 1),
                                     sync=synchronizer(s.device))))
            rows.append(row)
    out("## Train step (median ms)\n")
    out(table(["model", "batch"] + [label for label, _, _ in chosen], rows))
    if not args.no_layers:
        batch = args.batch[0]
        for model in args.models:
            cols, names = {}, []
            for label, dev, kernels in chosen:
                s = setup(model, batch, dev, kernels)
                sync = synchronizer(s.device)
                t = ([("G " + n, f, b) for n, f, b in layer_times(s.G, s.z, args.repeats, sync)]
                     + [("D " + n, f, b) for n, f, b in layer_times(s.D, s.real, args.repeats, sync)])
                names = [n for n, _, _ in t]
                cols[label] = [f"{ms(f)} / {ms(b)}" for _, f, b in t]
            out(f"\n## Per layer, {model}, batch {batch} (median ms, forward / backward)\n")
            out(table(["layer"] + list(cols), [[n] + [cols[c][i] for c in cols] for i, n in enumerate(names)]))
    return 0


def tuning_threads() -> str:
    """The threads this process runs with, as :func:`minigan.tune_cpu` reports them."""
    return tune_cpu().get("threads", "?")


def parser(prog="minigan bench"):

    p = Parser(
        prog=prog, formatter_class=Formatter, epilog=examples("bench"),
        description="Time the GAN train step and each layer's forward and backward on each device "
                    "(median ms, Markdown tables).  The CPU settings of minigan.tune_cpu are applied "
                    "first.  The comparison with PyTorch lives in the repository's benchmarks/.")
    p.add_argument("--models", nargs="+", default=["conv"], choices=["conv", "dcgan", "mlp"],
                   help="networks whose train step and layers are timed (default conv, the lean conv "
                        "pair minigan train trains by default)")
    p.add_argument("--batch", type=int, nargs="+", default=[64],
                   help="batch sizes (default 64); the per-layer tables use the first")
    p.add_argument("--device", nargs="+", default=None, choices=["cpu", "gpu"],
                   help="devices (default: the CPU, and the GPU when CuPy sees one)")
    p.add_argument("--reference", action="store_true",
                   help="also time each device with the reference code alone (no kernel table)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for BLAS and the Numba kernels (default: $MINIGAN_THREADS, else the "
                        "cores idle when the command starts, at least 1)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (DCGAN; the MLP x5; default 5)")
    p.add_argument("--no-layers", action="store_true", help="skip the per-layer tables")
    return p


def parse(argv, prog="minigan bench"):
    args = parser(prog).parse_args(argv)
    if args.device is None:
        args.device = ["cpu"] + (["gpu"] if devices.gpu_available() else [])
    for name in ("threads", "repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser(prog).error(f"--{name} must be at least 1")
    if min(args.batch) < 1:
        parser(prog).error("--batch sizes must be at least 1")
    return args


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def thread_env(threads: int) -> dict:
    """Environment variables that give BLAS, Numba (and PyTorch) ``threads`` threads; they
    only act when set before NumPy loads its BLAS."""
    return {k: str(threads) for k in THREAD_VARS}


def threads_ready(threads: int) -> bool:
    """Whether this process was started with :func:`thread_env` for ``threads``."""
    return all(os.environ.get(k) == v for k, v in thread_env(threads).items())


def main(argv=None) -> int:
    """``minigan bench``: checks the arguments, sets the threads, times."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)  # exits on --help / bad args
    try:
        tune_cpu(threads=args.threads)
    except ValueError as e:  # a bad $MINIGAN_THREADS
        print(f"minigan bench: {e}", file=sys.stderr)
        return 2
    try:
        return quiet_on_closed_pipe(run)(args)
    except devices.DeviceUnavailable as e:  # --device gpu where there is none: exit 1, no silent skip
        print(f"minigan bench: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

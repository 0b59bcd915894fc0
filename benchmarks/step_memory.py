"""Memory of the lean conv pair's train step (MNIST's default recipe, batch 64, CPU).

    python benchmarks/step_memory.py [--steps 30]
    PYTHONPATH=/path/to/an/older/checkout python benchmarks/step_memory.py   # the same, older code

Prints the process's resident memory before the first step, its peak (``ru_maxrss``)
after the steps, and the peak of the arrays allocated within a step beyond what was
held before it (``tracemalloc``, which NumPy reports its arrays to), with what a step
leaves held.  Run it twice against a fresh ``MINIGAN_HOME``: the first run compiles
the Numba kernels, which raises the process's peak by more than any step does.
Uses only ``Trainer``, ``TrainConfig`` and ``tune_cpu``, so it runs on older
checkouts too.
"""
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse  # noqa: E402
import resource  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

import minigan  # noqa: E402
from minigan.gan.config import TrainConfig  # noqa: E402
from minigan.gan.trainer import Trainer  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args(argv)
    minigan.tune_cpu()
    cfg = TrainConfig.for_dataset("mnist", model="conv", batch_size=64, seed=0, device="cpu",
                                  out="runs/step-memory")  # writes nothing: no fit(), no save()
    data = np.random.default_rng(0).uniform(-1, 1, (512, 1, 28, 28)).astype(np.float32)
    t = Trainer(cfg, data=data, progress=False)
    inputs = t.step_inputs(np.arange(64))
    before = rss_mib()
    t.train_step(*inputs)  # the first step makes the engines' kept buffers
    tracemalloc.start()
    for _ in range(5):
        t.train_step(*inputs)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    for _ in range(max(0, args.steps - 6)):
        t.train_step(*inputs)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"minigan {getattr(minigan, '__version__', '?')} from {os.path.dirname(minigan.__file__)}")
    print(f"resident before the first step {before:.1f} MiB; peak after {max(args.steps, 6)} steps "
          f"{maxrss:.1f} MiB; within a step, arrays at their peak {peak / 2**20:.1f} MiB beyond "
          f"what was held before it ({held / 2**20:.1f} MiB still held after)")


if __name__ == "__main__":
    sys.exit(main())

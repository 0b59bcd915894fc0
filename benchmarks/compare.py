"""Time the GAN train steps of two commits alternately, to tell a change's effect from noise.

    python benchmarks/compare.py OLD [NEW] [--models dcgan mlp] [--rounds 6] [--steps 40]

Each commit is exported with ``git archive`` into a temporary folder (NEW
defaults to the working tree as it is).  Then, round after round, a fresh
process of each times ``--steps`` steps of the trainer's own step
(``minigan.cli.bench.setup(model, 64)``) after a warm-up and prints the median;
the rounds alternate OLD, NEW, so both see the same drifts of this shared
machine.  The report gives each round's pair and ratio and the median
ratio.  Every process gets 2 threads and the CPU settings of its own
commit (``minigan.tune_cpu()`` where it exists, otherwise what
``import minigan`` did then).  The first round also compiles the Numba
kernels of each tree and is not counted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import statistics, sys, time
import minigan
getattr(minigan, "tune_cpu", lambda: None)()
try:
    from minigan.cli import bench
except ImportError:  # a commit from before the cli package
    from minigan import bench
model, steps = sys.argv[1], int(sys.argv[2])
s = bench.setup(model, 64)
for _ in range(5):
    s.step()
ts = []
for _ in range(steps):
    t = time.perf_counter()
    s.step()
    ts.append(time.perf_counter() - t)
print(statistics.median(ts))
"""


def export(rev: str, into: str) -> str:
    """The tree of ``rev`` (``"WORKTREE"``: the checkout as it is) as a folder; returns its path."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                         check=True).stdout.strip()
    if rev == "WORKTREE":
        return top
    dest = os.path.join(into, rev.replace("/", "_"))
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", top, "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return dest


def step_time(tree: str, model: str, steps: int) -> float:
    env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2",
               NUMBA_NUM_THREADS="2", MKL_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(steps)], env=env, cwd=tree,
                         capture_output=True, text=True, check=True).stdout
    return float(out.split()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old")
    p.add_argument("new", nargs="?", default="WORKTREE")
    p.add_argument("--models", nargs="+", default=["dcgan", "mlp"], choices=["dcgan", "mlp", "conv"])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=40, help="timed DCGAN steps a process (the MLP x10)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {name: export(rev, tmp) for name, rev in (("old", args.old), ("new", args.new))}
        for model in args.models:
            steps = args.steps * (10 if model == "mlp" else 1)
            for tree in trees.values():
                step_time(tree, model, 2)  # compile and warm each tree's kernels
            print(f"\n{model} train step, batch 64, median ms of {steps} steps a process "
                  f"({args.old} -> {args.new}):\n")
            print("| round | old | new | new / old |\n|---|---|---|---|")
            ratios, olds, news = [], [], []
            for r in range(args.rounds):
                t_old = step_time(trees["old"], model, steps)
                t_new = step_time(trees["new"], model, steps)
                ratios.append(t_new / t_old)
                olds.append(t_old)
                news.append(t_new)
                print(f"| {r + 1} | {1e3 * t_old:.2f} | {1e3 * t_new:.2f} | {t_new / t_old:.3f} |", flush=True)
            print(f"| median | {1e3 * statistics.median(olds):.2f} | {1e3 * statistics.median(news):.2f} "
                  f"| {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

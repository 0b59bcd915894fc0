"""The prepared check of minigan's GPU path on a real GPU: one command, a few result files.

    PYTHONPATH=. python3 benchmarks/gpu_check.py --mnist-dir DIR [--out DIR] [--stages env tests bench epoch]

It installs nothing and needs no network: the machine must have CuPy,
numba-cuda, PyTorch (with CUDA), pytest and hypothesis, and ``--mnist-dir`` names
the same kind of folder as ``minigan train --mnist-dir``: MNIST's four IDX files
(``train-images-idx3-ubyte.gz`` and friends), which the epoch stage reads instead
of downloading (a folder holding minigan's cache, ``mnist.npz`` as in
``~/.cache/minigan``, is taken too).
Each stage runs in its own process with its own time limit, so one that fails
or hangs leaves the others' results; together they are sized to finish
within about 5 minutes on one recent GPU.  Results go to ``--out`` (default
``$OUT``, else ``gpu_check_out``), at most 8 files:

    env.txt        the GPU, driver, CUDA, CuPy, numba-cuda, PyTorch, NumPy versions
    tests.txt      ``pytest -m gpu`` on CuPy: the GPU-parametrised tests on the GPU
    bench.md       train-step times (MLP GAN, DCGAN; batch 64, 256, 1024) on CuPy
                   beside PyTorch on CUDA in float32 with TF32 off (and a TF32 row for
                   information), and per-layer forward / backward times at batch 256
    epoch.txt      one MNIST epoch of the DCGAN on the GPU: time and the log's last row
    epoch_grid.png that epoch's sample grid
    multigpu.txt   only where more than one GPU is visible (and mpi4py with an mpiexec is
                   installed): an NCCL allreduce and broadcast across the GPUs, then one
                   short data-parallel epoch, ``mpiexec -n <GPUs> minigan train
                   --distributed --device gpu``, against the same epoch on one GPU
    stages.txt     each stage's exit status and seconds

Stages can be run apart (``--stages bench``).  The exit status is 0 only when every stage
asked for ran to exit 0 (1 otherwise, naming the stages that did not).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LIMITS = {"env": 20, "tests": 100, "bench": 90, "epoch": 90, "multigpu": 120}  # seconds: 5 minutes in all
# (multigpu runs only with more than one GPU)

NCCL_CODE = """
import numpy as np, cupy
from minigan.distributed import world
comm = world("gpu", timeout=60)
buf = cupy.full(1 << 20, comm.rank + 1.0, dtype=cupy.float32)
comm.allreduce(buf)
want = comm.size * (comm.size + 1) / 2
ok = bool((buf == want).all())
b = cupy.full(8, float(comm.rank), dtype=cupy.float64)
comm.broadcast(b, root=comm.size - 1)
ok = ok and bool((b == comm.size - 1).all())
print(f"rank {comm.rank} of {comm.size} ({comm.name}) on GPU {cupy.cuda.Device().id}: allreduce "
      f"{'ok' if ok else 'WRONG'}", flush=True)
"""


def gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for ln in out.splitlines() if ln.startswith("GPU "))


ENV_CODE = """
import platform, subprocess, numpy
lines = [f"python {platform.python_version()}", f"numpy {numpy.__version__}"]
try:
    lines.append(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                 "--format=csv,noheader"], capture_output=True, text=True).stdout.strip())
except OSError as e:
    lines.append(f"nvidia-smi: {e}")
import cupy
lines.append(f"cupy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
             f"driver API {cupy.cuda.runtime.driverGetVersion()}, "
             f"device {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
import numba, numba.cuda
lines.append(f"numba {numba.__version__}, numba-cuda {getattr(numba.cuda, '__version__', '?')}")
import torch
lines.append(f"torch {torch.__version__}, CUDA {torch.version.cuda}, sees {torch.cuda.get_device_name(0)}")
import minigan
lines.append(f"minigan {minigan.__version__}; devices.gpu_available() = {minigan.runtime.devices.gpu_available()}")
print("\\n".join(lines))
"""

BENCH_CODE = """
import statistics, sys, time
import numpy as np
sys.path.insert(0, {here!r})
import torch
import torch_reference
from minigan.cli import bench

def med(fn, n, sync):
    for _ in range(3):
        fn()
    sync()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); sync(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

rows = []
for model in ("mlp", "dcgan"):
    for batch in (64, 256, 1024):
        s = bench.setup(model, batch, "gpu")
        sync = bench.synchronizer(s.device)
        mg = med(s.step, 30, sync)
        cells = [model, batch, f"{{1e3 * mg:.2f}}"]
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            best = min(med(torch_reference.torch_step_fn(torch, model, batch, joint, "cuda"), 30,
                           torch.cuda.synchronize) for joint in (False, True))
            cells += [f"{{1e3 * best:.2f}}", f"{{mg / best:.2f}}"]
        rows.append(cells)
        print(cells, file=sys.stderr, flush=True)
head = ["model", "batch", "minigan (CuPy)", "PyTorch CUDA fp32", "ratio", "PyTorch CUDA TF32", "ratio (TF32)"]
print("## Train step on the GPU (median ms of 30 steps; PyTorch: the faster of D apart / joint)\\n")
print("| " + " | ".join(head) + " |\\n|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(str(c) for c in r) + " |")
for model in ("mlp", "dcgan"):
    s = bench.setup(model, 256, "gpu")
    sync = bench.synchronizer(s.device)
    t = ([("G " + n, f, b) for n, f, b in bench.layer_times(s.G, s.z, 20, sync)]
         + [("D " + n, f, b) for n, f, b in bench.layer_times(s.D, s.real, 20, sync)])
    print(f"\\n## Per layer, {{model}}, batch 256 (median ms, forward / backward)\\n")
    print("| layer | forward | backward |\\n|---|---|---|")
    for n, f, b in t:
        print(f"| {{n}} | {{1e3 * f:.3f}} | {{1e3 * b:.3f}} |")
"""


def run_stage(name, cmd, out, env, log):
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=LIMITS[name])
        rc, text = proc.returncode, proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
    except subprocess.TimeoutExpired as e:
        rc, text = "timeout", (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
    seconds = time.perf_counter() - t0
    log.write(f"{name}: exit {rc}, {seconds:.1f} s\n")
    log.flush()
    return rc, text, seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist-dir", "--mnist", dest="mnist", required=True,
                   help="a folder holding MNIST's four IDX files, as minigan train --mnist-dir takes "
                        "(or minigan's cache, mnist.npz)")
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out")
    p.add_argument("--stages", nargs="+", default=["env", "tests", "bench", "epoch", "multigpu"],
                   choices=["env", "tests", "bench", "epoch", "multigpu"])
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1", HYPOTHESIS_PROFILE="ci")
    mnist = os.path.abspath(args.mnist)
    if os.path.isfile(os.path.join(mnist, "mnist.npz")):  # minigan's cache folder
        env["MINIGAN_HOME"] = mnist
    elif os.path.isdir(mnist):  # IDX files: read first, cached under --out
        env["MINIGAN_MNIST_DIR"] = mnist
        env["MINIGAN_HOME"] = os.path.abspath(os.path.join(args.out, "minigan_home"))
    else:
        p.error(f"--mnist-dir {args.mnist}: no such folder")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    env.pop("MINIGAN_GPU", None)
    py = sys.executable
    failed = []  # stages asked for that did not run to exit 0 (a timeout included)
    with open(os.path.join(args.out, "stages.txt"), "a") as log:
        for stage in args.stages:
            if stage == "env":
                rc, text, _ = run_stage(stage, [py, "-c", ENV_CODE], args.out, env, log)
                open(os.path.join(args.out, "env.txt"), "w").write(text)
            elif stage == "tests":
                rc, text, _ = run_stage(stage, [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                                                "--durations=10"], args.out, env, log)
                open(os.path.join(args.out, "tests.txt"), "w").write(text)
            elif stage == "bench":
                rc, text, _ = run_stage(stage, [py, "-c", BENCH_CODE.format(here=HERE)], args.out, env, log)
                open(os.path.join(args.out, "bench.md"), "w").write(text)
            elif stage == "multigpu":
                n = gpu_count()
                mpiexec = os.path.join(os.path.dirname(py), "mpiexec")
                mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec")
                if n < 2 or mpiexec is None:
                    log.write(f"multigpu: skipped ({n} GPU(s) visible, mpiexec {mpiexec})\n")
                    continue
                rc, text, _ = run_stage(stage, [mpiexec, "-n", str(n), py, "-c", NCCL_CODE], args.out, env, log)
                report = [f"## NCCL across {n} GPUs (exit {rc})\n{text[-3000:]}"]
                for procs in (1, n):
                    run_dir = os.path.join("/tmp", f"minigan_gpu_dist{procs}")
                    shutil.rmtree(run_dir, ignore_errors=True)
                    rc, text, seconds = run_stage(stage, [mpiexec, "-n", str(procs), py, "-m", "minigan", "train",
                                                          "--distributed", "--device", "gpu", "--epochs", "1",
                                                          "--limit", "12800", "--batch-size", "256",
                                                          "--out", run_dir, "--quiet"], args.out, env, log)
                    report.append(f"## {procs} process(es), one epoch of 12,800 images at batch 256: exit {rc}, "
                                  f"{seconds:.1f} s in all\n{text[-2000:]}")
                open(os.path.join(args.out, "multigpu.txt"), "w").write("\n\n".join(report))
            else:
                run_dir = os.path.join("/tmp", "minigan_gpu_epoch")  # the run's files stay off $OUT
                shutil.rmtree(run_dir, ignore_errors=True)
                rc, text, seconds = run_stage(stage, [py, "-m", "minigan", "train", "--device", "gpu",
                                                      "--epochs", "1", "--out", run_dir, "--quiet"],
                                              args.out, env, log)
                last = ""
                log_csv = os.path.join(run_dir, "log.csv")
                if os.path.exists(log_csv):
                    last = open(log_csv).read().strip().splitlines()[-1]
                open(os.path.join(args.out, "epoch.txt"), "w").write(
                    f"exit {rc}, {seconds:.1f} s in all (start-up, data, compilation, training, pictures)\n"
                    f"log.csv's last row: {last}\n\n{text[-6000:]}")
                grid = os.path.join(run_dir, "samples", "epoch_001.png")
                if os.path.exists(grid):
                    shutil.copy(grid, os.path.join(args.out, "epoch_grid.png"))
            if rc != 0:
                failed.append(f"{stage} (exit {rc})")
    print(open(os.path.join(args.out, "stages.txt")).read())
    if failed:  # a stage that did not run is a failed check, not a quiet gap in the results
        print(f"gpu_check: {len(failed)} of {len(args.stages)} stages failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

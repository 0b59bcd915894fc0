"""Data-parallel scaling on the CPU: images/s and the allreduce's share of a train step.

    PYTHONPATH=. python benchmarks/scaling.py [--models conv] [--procs 1 2] [--steps 20]

(the DCGAN is refused by the trainer with several processes: its Dropout masks are not yet
drawn per global row; docs/distributed.md)

For each model and process count it starts ``mpiexec -n P`` on this script's worker,
which trains on synthetic images with a global batch of 64 (64/P on each process) and
times ``--steps`` steps after 3 warm-up steps.  Rank 0 reports images/s (the global
batch over the step's wall time), the share of the step spent in collectives (the
gradient allreduces and the BatchNorm ones; :class:`minigan.distributed.parallel.Clock`,
which includes the wait for the slower process) and the MB allreduced a step.  The
load average is printed with the table: on a shared machine it moves the figures.

``--project`` prints the paper projection of docs/distributed.md from the measured
gradient MB a step and one-process step times.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def worker(model, steps, batch):
    import numpy as np  # noqa: PLC0415

    import minigan  # noqa: PLC0415
    from minigan.distributed import MPIComm  # noqa: PLC0415
    from minigan.gan.models import image_shape  # noqa: PLC0415
    from minigan.gan.trainer import Trainer, TrainConfig  # noqa: PLC0415

    minigan.tune_cpu()
    comm = MPIComm(timeout=600)
    n = (steps + 3) * batch
    x = np.random.default_rng(0).uniform(-1, 1, (n, *image_shape(model))).astype(np.float32)
    cfg = TrainConfig.for_dataset("mnist", model=model, batch_size=batch, epochs=1, g_ema=0.0,
                                  out=os.path.join("/tmp", f"scaling-{os.getpid()}"), log_every=10**6,
                                  checkpoint_every=10**6, **({"clusters": 10} if model == "conv" else {}))
    tr = Trainer(cfg, data=x, progress=False, comm=comm)
    order = tr.batch_indices(0)

    def step():
        stats = tr.train_step(*tr.step_inputs(order[tr.step_in_epoch]))
        tr.step_in_epoch += 1
        return stats
    for _ in range(3):
        step()
    comm.barrier()
    clock = tr.parallel.clock if tr.parallel else None
    c0 = clock.seconds if clock else 0.0
    n0 = clock.calls if clock else 0
    b0 = tr.parallel.grad_bytes if tr.parallel else 0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    comm.barrier()
    dt = time.perf_counter() - t0
    grad_mb = sum(g.grads.nbytes for m in (tr.G, tr.D) for g in m.flat().groups) / 1e6
    if comm.is_root:
        print(json.dumps({"model": model, "procs": comm.size, "batch": batch, "steps": steps,
                          "step_ms": 1e3 * dt / steps, "images_s": batch * steps / dt,
                          "comm_share": ((clock.seconds - c0) / dt) if clock else 0.0,
                          "grad_mb_step": grad_mb,
                          "collectives_step": ((clock.calls - n0) / steps) if clock else 0.0,
                          "measured_grad_mb_step": ((tr.parallel.grad_bytes - b0) / steps / 1e6)
                          if tr.parallel else 0.0}), flush=True)


# Published figures, for the projection (docs/distributed.md gives the sources)
NCCL_8GPU = {"busbw_GBs": 100.0, "latency_us": 30.0}  # H100 SXM NVLink, 4 MB messages (nccl-tests)
CLUSTERS = {"25 GbE (MPI)": {"bw_GBs": 2.5, "latency_us": 25.0},
            "HDR InfiniBand 200 Gb/s (MPI)": {"bw_GBs": 20.0, "latency_us": 2.0}}


def ring_allreduce_s(mb, n, bw_GBs, latency_us):
    """A ring allreduce of ``mb`` MB over ``n`` processes: 2 (n-1)/n of the data through each
    link, 2 (n-1) hops of latency."""
    return 2 * (n - 1) / n * mb * 1e6 / (bw_GBs * 1e9) + 2 * (n - 1) * latency_us * 1e-6


def small_allreduce_s(n, latency_us):
    """A few hundred bytes (BatchNorm's sums): latency only, a tree of log2(n) hops each way."""
    import math  # noqa: PLC0415

    return 2 * math.ceil(math.log2(n)) * latency_us * 1e-6


def project(rows):
    print("\nProjection (ring allreduce, no overlap with compute; compute per process = the one-"
          "process step time / N at a fixed global batch):")
    bn = {r["model"]: r["collectives_step"] - 2 for r in rows if r["procs"] > 1}
    for r in rows:
        if r["procs"] != 1:
            continue
        r["bn_collectives"] = bn.get(r["model"], 0)
        step_s, mb = r["step_ms"] / 1e3, r["grad_mb_step"]
        print(f"\n{r['model']}: {mb:.2f} MB of gradients a step, one-process step {r['step_ms']:.0f} ms "
              f"(batch {r['batch']}, this CPU)")
        for name, net in CLUSTERS.items():
            for n in (2, 4, 8, 16):
                # the two gradient buffers (G's, D's: the MB split between them), BatchNorm's small ones
                comm = (ring_allreduce_s(mb, n, net["bw_GBs"], net["latency_us"])
                        + 2 * (n - 1) * net["latency_us"] * 1e-6  # the second buffer's latency
                        + r["bn_collectives"] * small_allreduce_s(n, net["latency_us"]))
                comp = step_s / n
                print(f"  {name:42s} N={n:2d}: compute {comp * 1e3:6.1f} ms, allreduce {comm * 1e3:5.2f} ms, "
                      f"speed-up {step_s / (comp + comm):5.1f}x")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["conv"])
    p.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--project", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.steps, args.batch)
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    rows = []
    for model in args.models:
        for n in args.procs:
            load = os.getloadavg()[0]
            r = subprocess.run([mpiexec, "-n", str(n), sys.executable, os.path.abspath(__file__), "--worker",
                                model, "--steps", str(args.steps), "--batch", str(args.batch)],
                               capture_output=True, text=True, env=env)
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
            if r.returncode or not line:
                print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
                continue
            row = json.loads(line[-1])
            row["load"] = (load + os.getloadavg()[0]) / 2
            rows.append(row)
    print(f"| model | processes | global batch | step (ms) | images/s | collectives' share | "
          f"grad MB/step | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['procs']} | {r['batch']} | {r['step_ms']:.0f} | {r['images_s']:.0f} | "
              f"{100 * r['comm_share']:.0f} % | {r['grad_mb_step']:.2f} | {r['load']:.1f} |")
    if args.project:
        project(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

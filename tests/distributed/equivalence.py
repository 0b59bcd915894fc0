"""Data-parallel training against one process: run under ``mpiexec -n 2``.

    mpiexec -n 2 python tests/distributed/equivalence.py --model mlp --steps 20 --out DIR

Rank 0 and rank 1 train together on a global batch of 64 (32 each): run A for ``steps``
steps; run B stopped at half of them (a checkpoint between two steps) and resumed with
the same two processes.  Then rank 0 alone trains the same config with batch 64 in one
process (the reference), and resumes B's half-way checkpoint in one process.  It prints
one JSON line, the largest absolute differences of G's and D's weights::

    parallel_vs_single   A against the reference (float32 round-off)
    resumed_vs_parallel  B against A (the same arithmetic: 0)
    resumed_1proc_vs_single  B's checkpoint resumed in one process against the reference
    reordered_vs_single  the control: one process, each batch's rows in reverse order (the
                         same sums in another order) against the reference: the round-off
                         floor of the model, which Adam's first steps (lr * g / (|g| + eps))
                         blow up wherever a gradient is near zero

and exits 1 when one is above its tolerance (``--tol``, or twice the control when that is
larger; 0 for resumed_vs_parallel).
The data are synthetic images (no download); the noise is the trainer's (seed, step).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np

import minigan
from minigan.distributed import MPIComm
from minigan.gan.models import image_shape
from minigan.gan.trainer import CHECKPOINT, Trainer, TrainConfig, TrainingInterrupted


def synthetic(model, n, seed=0):
    """Blurry blobs in [-1, 1] (as tests/gan/test_trainer.py)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    cy, cx = rng.uniform(8, 20, (2, n, 1, 1))
    img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20.0) * 2 - 1
    return img.reshape(n, *image_shape(model)).astype(np.float32)


def config(model, steps, batch, out):
    # no weight average: it does not touch the live weights compared here, and costs a G pass
    # over 2,500 points at each checkpoint
    return TrainConfig.for_dataset("mnist", model=model, epochs=1, batch_size=batch, seed=5,
                                   log_every=5, checkpoint_every=steps, n_samples=16, out=out, g_ema=0.0,
                                   **({"clusters": 8} if model == "conv" else {}))


ENGINE = None  # --engine: every conv layer on this engine (default: the CPU policy's choice)


def trainer(cfg, data, comm=None):
    tr = Trainer(cfg, data=data, progress=False, comm=comm)
    if ENGINE:
        for m in list(tr.G.modules()) + list(tr.D.modules()):
            if hasattr(m, "engine"):
                m.engine = ENGINE
    return tr


def weights(tr):
    return np.concatenate([np.asarray(g.params, np.float64).ravel()
                           for m in (tr.G, tr.D) for g in m.flat().groups])


def reversed_rows(tr):
    """Feed each step's batch in reverse row order (real, noise and labels alike)."""
    inner = tr.step_inputs

    def step_inputs(idx):
        return tuple(None if a is None else a[::-1].copy() for a in inner(idx))
    tr.step_inputs = step_inputs


def stop_at(tr, step):
    """Ask the trainer to stop (and save) once ``step`` steps are done, on every rank alike."""
    inner = tr.train_step

    def train_step(*a):
        out = inner(*a)
        if tr.global_step + 1 == step:
            tr.request_stop()
        return out
    tr.train_step = train_step


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mlp")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", required=True)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--engine", default=None, help="run every conv layer on this engine (e.g. im2col)")
    args = p.parse_args()
    global ENGINE
    ENGINE = args.engine
    minigan.tune_cpu()
    comm = MPIComm(timeout=300)
    data = synthetic(args.model, args.steps * args.batch)
    root = comm.is_root
    out = lambda name: os.path.join(args.out, f"{args.model}-{name}")  # noqa: E731

    # A: two processes, uninterrupted
    a = trainer(config(args.model, args.steps, args.batch, out("A")), data, comm)
    a.fit(log=lambda s: None)
    wa = weights(a)
    # B: two processes, stopped half-way, resumed by two processes
    half = args.steps // 2
    b = trainer(config(args.model, args.steps, args.batch, out("B")), data, comm)
    stop_at(b, half)
    try:
        b.fit(log=lambda s: None)
        raise SystemExit("run B did not stop")
    except TrainingInterrupted:
        pass
    if root:
        os.makedirs(out("C"), exist_ok=True)
        shutil.copy(os.path.join(out("B"), CHECKPOINT), os.path.join(out("C"), CHECKPOINT))
    comm.barrier()
    b = trainer(config(args.model, args.steps, args.batch, out("B")), data, comm)
    b.restore()
    b.fit(log=lambda s: None)
    wb = weights(b)
    comm.barrier()
    if not root:
        return 0
    # the reference: one process, the whole batch
    s = trainer(config(args.model, args.steps, args.batch, out("S")), data)
    s.fit(log=lambda s: None)
    ws = weights(s)
    # B's half-way checkpoint, resumed by one process
    c = trainer(config(args.model, args.steps, args.batch, out("C")), data)
    c.restore()
    c.fit(log=lambda s: None)
    wc = weights(c)
    # the control: the reference's sums in another order
    r = trainer(config(args.model, args.steps, args.batch, out("R")), data)
    reversed_rows(r)
    r.fit(log=lambda s: None)
    wr = weights(r)
    res = {"model": args.model, "engine": args.engine or "default", "steps": args.steps, "processes": comm.size, "batch": args.batch,
           "params": int(ws.size), "max_abs_weight": float(np.abs(ws).max()),
           "parallel_vs_single": float(np.abs(wa - ws).max()),
           "resumed_vs_parallel": float(np.abs(wb - wa).max()),
           "resumed_1proc_vs_single": float(np.abs(wc - ws).max()),
           "reordered_vs_single": float(np.abs(wr - ws).max())}
    print(json.dumps(res), flush=True)
    tol = max(args.tol, 2 * res["reordered_vs_single"])
    ok = (res["parallel_vs_single"] <= tol and res["resumed_vs_parallel"] == 0
          and res["resumed_1proc_vs_single"] <= tol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Train steps on a loaded machine: minigan's threads against PyTorch's, under 0, 1 and 2 busy processes.

    python benchmarks/loaded.py [--models mlp dcgan conv] [--loads 0 1 2] [--rounds 4] [--json FILE]

For each load (that many ``python -c 'while True: pass'`` processes started beside it)
and each network (the MLP GAN and the DCGAN through :func:`minigan.cli.bench.setup`, the
lean conv pair's recipe through ``profile_step.build_step``, all at batch 64), it times
in alternating blocks:

* minigan with its default threads (:func:`minigan.runtime.tuning.default_threads`,
  sampled once the busy processes run, as a command starting then would);
* minigan forced to 1 and to 2 threads (:func:`minigan.runtime.tuning.set_threads`);
* PyTorch's same step in a child process (``harness.TorchProcess``) with its own
  default on this machine, as many threads as cores.

It prints each contender's median step per load and its loaded time over its time
with no busy process, with the load average (1 min) before and after each load.
The machine may be shared: the "quiet" column is only as quiet as the machine was.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import minigan

TUNING = minigan.tune_cpu()

import harness  # noqa: E402  (beside this file)
from profile_step import build_step  # noqa: E402

from minigan.cli.bench import setup  # noqa: E402
from minigan.gan.models import CODE_SCALE, CODES  # noqa: E402
from minigan.runtime import tuning  # noqa: E402

BATCH = 64
STEPS = {"mlp": 200, "dcgan": 4, "conv": 10}  # timed steps of a contender per block


def busy(n: int) -> list:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop(procs):
    for p in procs:
        p.kill()
        p.wait()


def minigan_block(step, threads):
    """A block timer that runs ``step`` on ``threads`` threads (set before every block)."""
    timed = harness.local_block(step)

    def block(n, warmup):
        tuning.set_threads(threads[0])
        return timed(n, warmup)
    return block


def contenders(model, torch, default):
    if model == "conv":
        trainer, _, step = build_step(BATCH)
        cfg = trainer.config
        code = (cfg.clusters, CODE_SCALE) if cfg.clusters else CODES["conv"]
        req = {"batch": BATCH, "clusters": cfg.clusters, "g_ema": cfg.g_ema, "lr": cfg.lr,
               "betas": [cfg.beta1, cfg.beta2], "code": list(code), "seed": cfg.seed}
        tb = torch.conv_block(req) if torch else None
    else:
        step = setup(model, BATCH).step
        tb = torch.step_block(model, BATCH) if torch else None
    out = {"minigan default": minigan_block(step, default),
           "minigan 1 thread": minigan_block(step, [1]),
           "minigan 2 threads": minigan_block(step, [2])}
    if tb is not None:
        out["PyTorch"] = tb
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["mlp", "dcgan", "conv"], choices=["mlp", "dcgan", "conv"])
    p.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--json", default=None)
    p.add_argument("--torch", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args(argv)

    torch = harness.TorchProcess(os.cpu_count()) if args.torch and harness.torch_available() else None
    default = [1]  # the default count, sampled again under each load
    blocks = {m: contenders(m, torch, default) for m in args.models}
    results = {}
    for load in args.loads:
        procs = busy(load)
        try:
            time.sleep(1.0)
            chosen, why = tuning.default_threads()
            default[0] = chosen or 2
            la0 = os.getloadavg()[0]
            res = results[load] = {"default threads": f"{default[0]} ({why})", "models": {}}
            for model, contest in blocks.items():
                medians = {name: [] for name in contest}
                for r in range(args.rounds):
                    for name, block in contest.items():
                        times = block(STEPS[model], 2 if r == 0 else 1)
                        medians[name].append(statistics.median(times))
                res["models"][model] = {name: 1e3 * statistics.median(v) for name, v in medians.items()}
            res["load average"] = (la0, os.getloadavg()[0])
        finally:
            stop(procs)
        print(f"{load} busy: default threads {res['default threads']}, load average "
              f"{res['load average'][0]:.2f} -> {res['load average'][1]:.2f}: "
              + "; ".join(f"{m} " + ", ".join(f"{k} {v:.1f}" for k, v in d.items())
                          for m, d in res["models"].items()), flush=True)
    if torch is not None:
        torch_threads = torch.info["threads"]
        torch.close()

    quiet = results.get(0)
    print(f"\n# train steps under load, batch {BATCH}, {os.cpu_count()} cores; tune_cpu: {TUNING}")
    if torch is not None:
        print(f"PyTorch with {torch_threads} threads (its default here)")
    loads = list(results)
    print("\n| network | contender | " + " | ".join(f"{n} busy: ms (x quiet)" for n in loads) + " |")
    print("|---|---|" + "---|" * len(loads))
    for model in args.models:
        for name in blocks[model]:
            cells = []
            for n in loads:
                v = results[n]["models"][model][name]
                base = quiet["models"][model][name] if quiet else None
                cells.append(f"{v:.1f}" + (f" ({v / base:.2f})" if base and n != 0 else ""))
            print(f"| {model} | {name} | " + " | ".join(cells) + " |")
    print("\n| busy processes | minigan's default threads | load average (1 min) before, after |")
    print("|---|---|---|")
    for n in loads:
        la = results[n]["load average"]
        print(f"| {n} | {results[n]['default threads']} | {la[0]:.2f}, {la[1]:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({str(k): v for k, v in results.items()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The lean conv pair's train step (MNIST's default recipe), minigan against PyTorch, alternating.

    python benchmarks/conv_step.py [--batch 64] [--rounds 8] [--steps 10] [--threads 2]
                                   [--engines default im2col] [--no-torch]

Each round times ``--steps`` steps of every contender in turn, after a warm-up:
minigan with the conv engines its policy picks (``default``), minigan with every
conv forced onto one engine (``im2col``, ``winograd``, ...), and PyTorch's same
step (``torch_reference.conv_step_fn``, in a child process with its own
environment, as ``bench.py`` runs it).  It prints each contender's median step and,
round by round, the ratio of each minigan contender to PyTorch, with the load
average before and after: the machine is shared, so compare the ratios of one run.
"""
import os
import sys

THREADS = "2"
if "--threads" in sys.argv:
    THREADS = sys.argv[sys.argv.index("--threads") + 1]
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = THREADS

import minigan  # noqa: E402

TUNING = minigan.tune_cpu()

import argparse  # noqa: E402
import statistics  # noqa: E402

import harness  # noqa: E402  (beside this file)
from profile_step import build_step  # noqa: E402

from minigan.gan.models import CODE_SCALE, CODES  # noqa: E402
from minigan.nn.conv import ENGINES  # noqa: E402
from minigan.nn.conv.layers import _ConvBase  # noqa: E402


def minigan_block(batch: int, engine: str):
    """A block timer of minigan's step with the conv engines ``engine`` names (``default``: the
    policy's choice per layer)."""
    trainer, _, step = build_step(batch)
    if engine != "default":
        for m in (*trainer.G.modules(), *trainer.D.modules()):
            if isinstance(m, _ConvBase):
                m.engine = engine
    step()
    engines = sorted({m.last_engine for m in (*trainer.G.modules(), *trainer.D.modules())
                      if isinstance(m, _ConvBase)})
    return harness.local_block(step), trainer.config, engines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="timed steps of each contender a round")
    p.add_argument("--threads", type=int, default=int(THREADS))
    p.add_argument("--engines", nargs="+", default=["default", "im2col"],
                   choices=["default", *sorted(ENGINES)])
    p.add_argument("--torch", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args(argv)

    contenders, cfg = {}, None
    for eng in args.engines:
        block, cfg, used = minigan_block(args.batch, eng)
        contenders[f"minigan {eng} ({'+'.join(used)})"] = block
    torch_name = None
    if args.torch and harness.torch_available():
        proc = harness.TorchProcess(args.threads)
        code = (cfg.clusters, CODE_SCALE) if cfg.clusters else CODES["conv"]
        req = {"batch": args.batch, "clusters": cfg.clusters, "g_ema": cfg.g_ema, "lr": cfg.lr,
               "betas": [cfg.beta1, cfg.beta2], "code": list(code), "seed": cfg.seed}
        torch_name = f"PyTorch {proc.info['version']} ({proc.info['threads']} threads)"
        contenders[torch_name] = proc.conv_block(req)
    load0 = os.getloadavg()
    rounds = {name: [] for name in contenders}
    for r in range(args.rounds):
        for name, block in contenders.items():
            times = block(args.steps, 2 if r == 0 else 1)
            rounds[name].append(1e3 * statistics.median(times))
    load1 = os.getloadavg()

    print(f"# lean conv pair train step, batch {args.batch}, {args.threads} threads, "
          f"{args.rounds} rounds of {args.steps} steps each")
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f}; tune_cpu: {TUNING}\n")
    print("| contender | median ms | rounds' medians |")
    print("|---|---|---|")
    for name, ms in rounds.items():
        print(f"| {name} | {statistics.median(ms):.2f} | {', '.join(f'{v:.1f}' for v in ms)} |")
    if torch_name:
        print("\n| minigan / PyTorch | median of the rounds' ratios | range |")
        print("|---|---|---|")
        for name, ms in rounds.items():
            if name == torch_name:
                continue
            ratios = [a / b for a, b in zip(ms, rounds[torch_name])]
            print(f"| {name} | **{statistics.median(ratios):.2f}** | {min(ratios):.2f}-{max(ratios):.2f} |")
        proc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

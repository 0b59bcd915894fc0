"""``minigan train | sample | eval | bench | gradcheck | summary``.

``minigan gradcheck`` checks every built-in layer and loss against finite
differences; ``minigan gradcheck FILE.py:NAME --shape N,C,H,W`` checks a
layer of one's own (exit 0 when its gradients agree, 1 when one does not).
``minigan summary --model dcgan|mlp [--conditional]`` prints each network's
layers with their output shapes, parameters and multiply-adds.

Every bad option and every OS error (no space, no permission, a file where a folder
should be) is one line on stderr that names the option or the path, with exit status
1 or 2; Ctrl-C exits with 130, and ``minigan train`` first saves its run.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..io import CheckpointError
from ..runtime import devices
from ..runtime.tuning import tune_cpu
from ..testing import gpu_standin
from . import bench, evaluate, gradcheck, sample, summary, train
from .args import Parser, os_error


def main(argv=None):
    parser = Parser(
        prog="minigan", description="A from-scratch GAN engine.",
        epilog="Every command first applies minigan.tune_cpu(): OpenBLAS's idle threads spin ~0.4 ms "
               "instead of 0.1 s, Numba's OpenMP workers sleep when idle, freed memory stays in the "
               "heap.  Your own OPENBLAS_THREAD_TIMEOUT, OMP_WAIT_POLICY or MALLOC_*_THRESHOLD_ wins.")
    sub = parser.add_subparsers(dest="command", required=True)
    train.add_parser(sub)
    sample.add_parser(sub)
    evaluate.add_parser(sub)
    pb = sub.add_parser("bench", help="time layers and train steps", add_help=False)
    pb.add_argument("rest", nargs=argparse.REMAINDER)
    gradcheck.add_parser(sub)
    summary.add_parser(sub)
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "bench":  # the benchmark harness parses its own arguments
        return bench.main(argv[1:])
    args = parser.parse_args(argv)
    if os.environ.get("MINIGAN_GPU") == "standin":  # --device gpu on the stand-in, where CuPy sees no GPU
        devices.standin_installer = gpu_standin.install
    try:
        tune_cpu(threads=getattr(args, "threads", None))
    except ValueError as e:  # a bad $MINIGAN_THREADS
        print(f"minigan {args.command}: {e}", file=sys.stderr)
        return 2
    try:
        handler = {"train": train.run, "sample": sample.run, "eval": evaluate.run,
                   "gradcheck": gradcheck.run, "summary": summary.run}[args.command]
        return handler(args) or 0
    except (CheckpointError, ValueError, RuntimeError) as e:
        print(f"minigan {args.command}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # no space, no permission, a read-only disk, a file for a folder, ...
        print(f"minigan {args.command}: {os_error(e)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"minigan {args.command}: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minigan {args.command}: stopped by Ctrl-C", file=sys.stderr)
        return 130

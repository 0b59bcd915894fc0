"""``minigan train | sample | eval | bench | gradcheck | summary``.

``minigan gradcheck`` checks every built-in layer and loss against finite
differences; ``minigan gradcheck FILE.py:NAME --shape N,C,H,W`` checks a
layer of one's own.  ``minigan summary [--model conv|dcgan|mlp] [--conditional]``
prints each network's layers with their output shapes, parameters and multiply-adds.

Exit status, the same for every command (:data:`EXIT_CODES`): 0 done; 2 bad usage or
input (a bad option, a missing or corrupt checkpoint, a missing --mnist-dir, a
configuration that cannot run), refused before any work; 1 a failure at run time (a
full disk or another OS error, divergence, MNIST that cannot be fetched, --device gpu
where no GPU can be used, a gradient that disagrees); 130 Ctrl-C (``minigan train`` first saves its run).  Every refusal
and failure is one line on stderr that names the option or the path, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from .._version import __version__
from ..data.idx import MnistError
from ..io import CheckpointError
from ..runtime import devices
from ..runtime.tuning import tune_cpu
from ..testing import gpu_standin
from . import bench, evaluate, gradcheck, sample, summary, train
from .args import EXAMPLES, Formatter, Parser, examples, os_error

EXIT_USAGE, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130
EXIT_CODES = {0: "done", EXIT_FAILURE: "a failure at run time (an OS error such as a full disk, "
              "divergence, MNIST that cannot be fetched, no usable GPU, a gradient that disagrees)",
              EXIT_USAGE: "bad usage or input (an option, a missing or corrupt checkpoint, a "
              "missing --mnist-dir, a configuration that cannot run), refused before any work",
              EXIT_INTERRUPTED: "stopped by Ctrl-C"}

def main(argv=None):
    parser = Parser(
        prog="minigan", description="A from-scratch GAN engine.", formatter_class=Formatter,
        epilog="Every command first applies minigan.tune_cpu(): OpenBLAS's idle threads spin ~0.4 ms "
               "instead of 0.1 s, Numba's OpenMP workers sleep when idle, freed memory stays in the "
               "heap, and BLAS and Numba get --threads threads (default: $MINIGAN_THREADS, else the "
               "cores idle at the start).  Your own OPENBLAS_THREAD_TIMEOUT, OMP_WAIT_POLICY, "
               "MALLOC_*_THRESHOLD_ or *_NUM_THREADS wins.  Exit status: 0 done, 2 bad usage or input "
               "(refused before any work), 1 a failure at run time, 130 Ctrl-C.  "
               "'minigan COMMAND --help' has examples.")
    parser.add_argument("--version", action="version", version=f"minigan {__version__}",
                        help="print minigan's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train.add_parser(sub)
    sample.add_parser(sub)
    evaluate.add_parser(sub)
    sub.add_parser("bench", help="time layers and train steps", add_help=False)
    gradcheck.add_parser(sub)
    summary.add_parser(sub)
    for name, p in sub.choices.items():
        p.formatter_class, p.epilog = Formatter, examples(name)
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "bench":  # the benchmark harness parses its own arguments
        return bench.main(argv[1:])
    args = parser.parse_args(argv)
    if os.environ.get("MINIGAN_GPU") == "standin":  # --device gpu on the stand-in, where CuPy sees no GPU
        devices.standin_installer = gpu_standin.install
    handler = {"train": train.run, "sample": sample.run, "eval": evaluate.run,
               "gradcheck": gradcheck.run, "summary": summary.run}[args.command]
    return run_command(f"minigan {args.command}", lambda: handler(args),
                       threads=getattr(args, "threads", None))


def run_command(name: str, work, threads=None) -> int:
    """Run ``work()`` after :func:`tune_cpu`, mapping what it raises to the exit codes of
    :data:`EXIT_CODES` with one line on stderr."""
    def fail(code, msg):
        print(f"{name}: {msg}", file=sys.stderr)
        return code

    try:
        try:
            tune_cpu(threads=threads)
        except ValueError as e:  # a bad $MINIGAN_THREADS
            return fail(EXIT_USAGE, e)
        return work() or 0
    except SystemExit as e:  # a refusal, worded by the command: bad usage or input
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return EXIT_USAGE
        raise
    except devices.DeviceUnavailable as e:  # --device gpu where there is none: the machine, not the
        return fail(EXIT_FAILURE, e)        # command, fails (runtime/gpu_env.py names the cause)
    except MnistError as e:  # no source of MNIST worked, or a folder's files are not MNIST's
        return fail(EXIT_FAILURE, e)
    except (CheckpointError, ValueError) as e:
        return fail(EXIT_USAGE, e)
    except RuntimeError as e:  # divergence, ...
        return fail(EXIT_FAILURE, e)
    except OSError as e:  # no space, no permission, a read-only disk, a file for a folder, ...
        return fail(EXIT_FAILURE, os_error(e))
    except MemoryError:
        return fail(EXIT_FAILURE, "out of memory")
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "stopped by Ctrl-C")

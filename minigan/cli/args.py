"""What the commands share: argument types that refuse in one line, the checkpoint a
``--checkpoint`` names, output files checked before the work, and one line for an OS error."""
from __future__ import annotations

import argparse
import math
import os
import sys

from ..gan.config import ConfigError, check_writable
from ..gan.run_log import CHECKPOINT

MAX_SAMPLES = 100_000  # --n of sample and eval: 100,000 MNIST images are 314 MB of float32
MAX_PICTURE = 2_500  # images in one picture: a 50 x 50 grid, about 4,500 pixels a side


EXAMPLES = {
    "train": ["minigan train                                # the lean conv pair, 3 epochs, into runs/conv",
              "minigan train --model mlp --epochs 20          # the small MLP GAN",
              "minigan train --conditional                    # told the digit: runs/cconv",
              "minigan train --resume --out runs/conv --epochs 5",
              "minigan train --mnist-dir ~/mnist --threads 2  # MNIST from a folder, 2 threads"],
    "sample": ["minigan sample --checkpoint runs/conv --n 64 --out digits.png",
               "minigan sample --checkpoint runs/conv --n 1000 --out digits.npz   # raw images",
               "minigan sample --checkpoint runs/cconv --digit 7 --out sevens.png",
               "minigan sample --checkpoint runs/conv --interpolate --out walk.png"],
    "eval": ["minigan eval --checkpoint runs/conv             # Frechet distance, Inception Score, digits",
             "minigan eval --checkpoint runs/conv --n 2000 --no-csv"],
    "bench": ["minigan bench                                  # the conv pair's step and layers on each device",
              "minigan bench --models mlp dcgan --batch 64 256 --reference",
              "minigan bench --threads 1 --no-layers"],
    "gradcheck": ["minigan gradcheck                              # every built-in layer and loss",
                  "minigan gradcheck my_layers.py:Square --shape 4,3"],
    "summary": ["minigan summary                                # the lean conv pair, as minigan train builds it",
                "minigan summary --model dcgan --conditional"],
}


def examples(command: str) -> str:
    """The ``examples:`` epilog of ``minigan COMMAND --help``."""
    return "examples:\n" + "\n".join("  " + line for line in EXAMPLES[command])


class Formatter(argparse.HelpFormatter):
    """argparse's help, with an epilog that starts with ``examples:`` kept line by line."""

    def _fill_text(self, text, width, indent):
        if text.startswith("examples:"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    """argparse, with a bad option reported in one line (not the whole usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def number(kind, low, high=None, bound=None):
    """An argparse type: ``kind`` (int or float), finite, ``low < v`` (``low <= v`` when
    given as ``(low, True)``) and at most ``high``; ``bound`` words the range."""
    low, inclusive = low if isinstance(low, tuple) else (low, False)
    what = "an integer" if kind is int else "a number"
    bound = bound or ((f">= {low}" if inclusive else f"> {low}")
                      + (f" and <= {high:,}" if high is not None else ""))

    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {s!r}") from None
        if not math.isfinite(v) or v < low or (v == low and not inclusive) or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"must be {what} {bound}, got {s}")
        return v
    return parse


def positive(kind):
    return number(kind, 0)


SEED = number(int, (0, True), 2**63 - 1, bound=">= 0 (and below 2**63)")
THREADS = number(int, (1, True), bound=">= 1")


def add_threads(p):
    """``--threads N``: OpenBLAS's and Numba's threads (minigan.runtime.tuning.set_threads)."""
    p.add_argument("--threads", type=THREADS, default=None, metavar="N",
                   help="threads for BLAS and the Numba kernels (default: $MINIGAN_THREADS, else the "
                        "cores idle when the command starts, at least 1, so a busy machine is not "
                        "oversubscribed)")


def checkpoint_file(path, command):
    """The checkpoint ``--checkpoint`` names: the file, or ``checkpoint.npz`` in a run folder."""
    if os.path.isdir(path):
        inside = os.path.join(path, CHECKPOINT)
        if not os.path.isfile(inside):
            raise SystemExit(f"minigan {command}: --checkpoint {path} is a folder without a {CHECKPOINT}")
        return inside
    if not os.path.exists(path):
        raise SystemExit(f"minigan {command}: no checkpoint at {path}")
    return path


def mnist_folder(path, command, option="--mnist-dir"):
    """Refuse, naming ``option``, a folder of MNIST IDX files that is not there or lacks one."""
    from ..data.idx import idx_names  # noqa: PLC0415

    if not os.path.isdir(path):
        why = "is a file, not a folder" if os.path.exists(path) else "no such folder"
        raise SystemExit(f"minigan {command}: {option} {path}: {why}; give the folder that holds "
                         f"MNIST's four IDX files ({', '.join(idx_names())}, each may end in .gz)")
    missing = [b for b in idx_names()
               if not any(os.path.isfile(os.path.join(path, b + ext)) for ext in (".gz", ""))]
    if missing:
        raise SystemExit(f"minigan {command}: {option} {path} lacks {', '.join(missing)} "
                         f"(each may end in .gz)")
    return path


def output_file(path, option, command):
    """Refuse, naming ``option``, an output ``path`` that is a folder or cannot be written."""
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise SystemExit(f"minigan {command}: {option} {path} is a folder; give a file name")
    if os.path.lexists(path) and not os.access(path, os.W_OK):
        raise SystemExit(f"minigan {command}: {option} {path}: cannot write it")
    try:
        check_writable(os.path.dirname(path) or ".", f"{option} {path}")
    except ConfigError as e:
        raise SystemExit(f"minigan {command}: {e}") from None


def quiet_on_closed_pipe(handler):
    """A reader that stops early (``minigan summary | head``) closes stdout: stop writing,
    without a traceback (Python would also complain once more at exit, on flushing)."""
    def run(args):
        try:
            return handler(args)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    return run


def os_error(e: OSError) -> str:
    """One line: the path and what went wrong (``PATH: No space left on device``)."""
    why = e.strerror or str(e)
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(map(str, paths))}: {why}" if paths else why

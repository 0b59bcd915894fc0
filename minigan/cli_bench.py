"""``minigan bench``: a short run of the benchmark harness (:mod:`minigan.bench`).

Thread counts only take effect if they are set before NumPy loads its BLAS,
and by the time the command line runs NumPy is loaded.  So the command
checks its arguments here (``--help`` answers at once) and runs the harness
in a fresh Python process whose environment fixes the threads (``--threads``,
default 2).  PyTorch is used when installed, never required.
"""
from __future__ import annotations

import os
import subprocess
import sys

from . import bench


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = bench.parse(argv, prog="minigan bench", quick=True)  # exits on --help / bad args
    if bench.threads_ready(args.threads):
        return bench.run(args)
    env = dict(os.environ, **bench.thread_env(args.threads))
    cmd = [sys.executable, "-c", "import sys; from minigan import cli_bench; "
           "sys.exit(cli_bench.main(sys.argv[1:]))"] + argv
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main())

"""``minigan bench``: a short timing of the train steps and layers (:mod:`minigan.bench`).

Thread counts only take effect if they are set before NumPy loads its BLAS,
and by the time the command line runs NumPy is loaded.  So the command
checks its arguments here (``--help`` answers at once) and runs the timing
in a fresh Python process whose environment fixes the threads (``--threads``,
default 2), with :func:`minigan.tune_cpu` applied first.
"""
from __future__ import annotations

import os
import subprocess
import sys

from . import bench


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = bench.parse(argv)  # exits on --help / bad args
    if bench.threads_ready(args.threads):
        from .gpu_env import GpuUnavailable  # noqa: PLC0415
        from .tuning import tune_cpu  # noqa: PLC0415

        tune_cpu()
        try:
            return bench.run(args)
        except GpuUnavailable as e:  # --device gpu on a machine without a usable one: exit 1
            print(f"minigan bench: {e}", file=sys.stderr)
            return 1
    env = dict(os.environ, **bench.thread_env(args.threads))
    cmd = [sys.executable, "-c", "import sys; from minigan import cli_bench; "
           "sys.exit(cli_bench.main(sys.argv[1:]))"] + argv
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main())

"""Compile every kernel of the GPU table ahead, without a GPU: PTX for sm_80 and sm_90.

    python -m minigan.runtime.gpu_compile [--arch 80 90]

Each kernel of :mod:`minigan.runtime.gpu` is compiled by numba-cuda (NVVM and
libdevice, from the ``gpu-cu12`` / ``gpu-cu13`` extra) with every signature
that :data:`minigan.runtime.gpu.SIGNATURES` records for it, for each
architecture, and the PTX is assembled by ``ptxas`` where the toolkit wheel
carries one (the CUDA 12 extra's nvcc wheel does).  A kernel of the table
that has no recorded signature fails the check, as does a recorded name that
is no kernel.  It prints one row per kernel, signature and architecture and
exits 1 on any failure.  Needs numba-cuda's real target (not its simulator),
no GPU and no driver.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time

ARCHS = ((8, 0), (9, 0))


@contextlib.contextmanager
def _target_device(cc):
    """numba-cuda 0.30.4 asks the current device for its compute capability when it compiles a
    device helper (``CUDADispatcher.compile_device`` calls ``get_current_device()``) even when
    ``compile_ptx`` was given a target ``cc``; with no GPU and no driver that raises
    CudaSupportError.  Here alone that question is answered with the target's ``cc``."""
    from numba.cuda import dispatcher  # noqa: PLC0415

    class Target:
        compute_capability = cc

    saved = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: Target
    try:
        yield
    finally:
        dispatcher.get_current_device = saved


def kernels(module) -> dict:
    """The module's kernels: ``{name: dispatcher}`` for every ``@cuda.jit`` that is not a device
    function."""
    from numba.cuda.dispatcher import CUDADispatcher  # noqa: PLC0415

    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, CUDADispatcher) and not obj.targetoptions.get("device")}


def unrecorded(module) -> tuple:
    """``(kernels without a recorded signature, recorded names that are no kernel)``."""
    have, recorded = set(kernels(module)), set(module.kernel_signatures())
    return sorted(have - recorded), sorted(recorded - have)


def _ptxas():
    """The ptxas of the toolkit wheels installed in this environment, or None (one of a system
    toolkit is not taken: it may be of another CUDA version than the extra's NVVM)."""
    try:
        from cuda import pathfinder  # noqa: PLC0415

        path = pathfinder.find_nvidia_binary_utility("ptxas")
    except Exception:
        return None
    return path if path and os.path.realpath(path).startswith(os.path.realpath(sys.prefix)) else None


def compile_all(module, archs=ARCHS, ptxas=None, out=print) -> int:
    """Compile (and assemble, with ``ptxas``) every recorded signature; returns the failures."""
    from numba import cuda  # noqa: PLC0415

    failures = 0
    missing, stray = unrecorded(module)
    for name in missing:
        out(f"FAIL {name}: a kernel of the GPU table without a recorded signature (runtime/gpu.py SIGNATURES)")
    for name in stray:
        out(f"FAIL {name}: a recorded signature names no kernel of the GPU table")
    failures += len(missing) + len(stray)
    table = kernels(module)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, sigs in module.kernel_signatures().items():
            if name not in table:
                continue
            for sig in sigs:
                for cc in archs:
                    arch = f"sm_{cc[0]}{cc[1]}"
                    t0 = time.perf_counter()
                    try:
                        with _target_device(cc):
                            ptx, _ = cuda.compile_ptx(table[name].py_func, sig, cc=cc)
                        status = f"PTX {len(ptx) // 1024} KiB"
                        if ptxas:
                            path = os.path.join(tmp, f"{name}.ptx")
                            with open(path, "w") as f:
                                f.write(ptx)
                            run = subprocess.run([ptxas, f"-arch={arch}", path, "-o", path + ".cubin"],
                                                 capture_output=True, text=True)
                            if run.returncode != 0:
                                raise RuntimeError("ptxas: " + (run.stderr.strip().splitlines() or ["?"])[0])
                            status += ", ptxas ok"
                    except Exception as e:  # a typing error, NVVM's, ptxas's
                        failures += 1
                        status = f"FAIL {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
                    rows.append((name, sig, arch, status, time.perf_counter() - t0))
    wn, ws = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    out(f"{'kernel':<{wn}}  {'signature':<{ws}}  arch   result")
    for name, sig, arch, status, seconds in rows:
        out(f"{name:<{wn}}  {sig:<{ws}}  {arch}  {status} ({seconds:.2f} s)")
    n_ok = sum(1 for r in rows if not r[3].startswith("FAIL"))
    out(f"{n_ok} of {len(rows)} compiled ({len(table)} kernels x their signatures x {len(archs)} "
        f"architectures){'; assembled by ' + ptxas if ptxas else '; no ptxas here: not assembled'}")
    return failures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minigan.runtime.gpu_compile", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", nargs="+", type=int, default=[10 * a + b for a, b in ARCHS],
                   help="compute capabilities as 80, 90 (default: 80 90)")
    args = p.parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        print("gpu_compile: NUMBA_ENABLE_CUDASIM=1 selects the simulator, which compiles nothing; "
              "unset it", file=sys.stderr)
        return 2
    from . import gpu  # noqa: PLC0415

    failures = compile_all(gpu, tuple(divmod(a, 10) for a in args.arch), _ptxas())
    if failures:
        print(f"gpu_compile: {failures} failures", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

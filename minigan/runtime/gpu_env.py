"""Why a GPU run can or cannot start: CuPy, the NVIDIA driver, the CUDA libraries.

``device("gpu")`` asks :func:`diagnose` when it cannot have a GPU, and gets
one line naming the first cause that holds, in this order:

1. CuPy is not installed (or does not import);
2. no NVIDIA driver (``libcuda.so.1`` does not load), or a driver too old for
   the CUDA version CuPy was built for (``cudaErrorInsufficientDriver``),
   or no GPU that the driver sees;
3. a CUDA library that CuPy or numba-cuda loads is missing, with the extra
   (``gpu-cu12`` / ``gpu-cu13``) that installs it.

The libraries are found the way CuPy and numba-cuda find them at run time,
which needs no GPU and no driver (so CI checks an install of the extras on a
machine without either)::

    python -m minigan.runtime.gpu_env        # every library, where it was found; exit 1 if one is missing

CuPy 14 loads cuBLAS (and, through it, cuBLASLt) and NVRTC (which loads its
builtins beside it) through ``cuda.pathfinder``; its CUDA runtime is linked
in.  numba-cuda loads libNVVM and reads libdevice's bitcode from the paths of
``numba.cuda.cuda_paths``.  minigan calls no cuFFT, cuSOLVER, cuSPARSE or
cuRAND (its random numbers are its own kernels), so those are not asked for.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys
from importlib import metadata
from typing import NamedTuple

from .arrays import DeviceUnavailable

EXTRAS = {12: "gpu-cu12", 13: "gpu-cu13"}
INSUFFICIENT_DRIVER = 35  # cudaErrorInsufficientDriver: CUDA runtime newer than the driver, or no driver
NO_DEVICE = 100  # cudaErrorNoDevice


class GpuUnavailable(DeviceUnavailable):
    """``device("gpu")`` cannot be had; the message is one line that names the cause."""


def cupy_cuda_major():
    """The CUDA major version of the installed CuPy wheel (12 or 13), or None."""
    for major in sorted(EXTRAS):
        try:
            metadata.version(f"cupy-cuda{major}x")
            return major
        except metadata.PackageNotFoundError:
            pass
    return None


def install_hint(major=None) -> str:
    major = major if major is not None else cupy_cuda_major()
    if major in EXTRAS:
        return f"install the extra {EXTRAS[major]}: pip install 'minigan[{EXTRAS[major]}]'"
    return ("install the extra of your driver's CUDA major version (nvidia-smi shows it): "
            "pip install 'minigan[gpu-cu12]' or 'minigan[gpu-cu13]'")


def _version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


# -- the libraries ---------------------------------------------------------------------

class Library(NamedTuple):
    owner: str  # "CuPy" or "numba-cuda"
    name: str  # as the user would look for it: "libcublas", "libnvvm", ...
    path: str | None  # where it was found; None when missing
    error: str  # why it is missing ("" when found)


def _pathfinder(name):
    from cuda import pathfinder  # noqa: PLC0415

    return pathfinder.load_nvidia_dynamic_lib(name).abs_path


def _cublas():
    path = _pathfinder("cublas")  # CuPy's own lookup (cupy_backends.cuda.libs.__getattr__) ...
    from cupy_backends.cuda.libs import cublas  # noqa: F401, PLC0415  ... and its extension loads

    return path


def _nvrtc():
    from cupy_backends.cuda.libs import nvrtc  # noqa: PLC0415

    nvrtc.getVersion()  # CuPy's SoftLink loads libnvrtc here
    return _pathfinder("nvrtc")


def _nvrtc_builtins():
    # NVRTC dlopens its builtins from its own folder when it compiles
    found = glob.glob(os.path.join(os.path.dirname(_pathfinder("nvrtc")), "libnvrtc-builtins*.so*"))
    if not found:
        raise FileNotFoundError("no libnvrtc-builtins beside libnvrtc")
    return sorted(found, key=lambda f: (".alt." in f, f))[0]


def _nvvm():
    from numba.cuda.cuda_paths import get_cuda_paths  # noqa: PLC0415
    from numba.cuda.cudadrv.nvvm import NVVM  # noqa: PLC0415

    NVVM()  # loads libNVVM, as numba-cuda does before its first compile
    return get_cuda_paths()["nvvm"].info


def _libdevice():
    from numba.cuda.cuda_paths import get_cuda_paths  # noqa: PLC0415

    path = get_cuda_paths()["libdevice"].info
    if not path or not os.path.isfile(path):
        raise FileNotFoundError("numba-cuda finds no libdevice.10.bc")
    return path


# (owner, name, probe): a probe returns the path or raises
PROBES = [
    ("CuPy", "libcublas", _cublas),
    ("CuPy", "libcublasLt", lambda: _pathfinder("cublasLt")),
    ("CuPy", "libnvrtc", _nvrtc),
    ("CuPy", "libnvrtc-builtins", _nvrtc_builtins),
    ("numba-cuda", "libnvvm", _nvvm),
    ("numba-cuda", "libdevice", _libdevice),
]


def libraries() -> list:
    """Every library the GPU path loads, as :class:`Library` rows (found or not)."""
    out = []
    for owner, name, probe in PROBES:
        try:
            out.append(Library(owner, name, probe(), ""))
        except Exception as e:  # ImportError, OSError, pathfinder's DynamicLibNotFoundError, ...
            out.append(Library(owner, name, None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
    return out


def missing_libraries() -> list:
    return [lib for lib in libraries() if lib.path is None]


# -- the driver ----------------------------------------------------------------------------

def driver_loads() -> bool:
    """Whether the NVIDIA driver's library (``libcuda.so.1``) loads in this process."""
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def _cuda_error(e, cupy) -> str:
    status = getattr(e, "status", None)
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    if status == INSUFFICIENT_DRIVER or "cudaErrorInsufficientDriver" in text:
        try:
            runtime = _version(cupy.cuda.runtime.runtimeGetVersion())
        except Exception:
            runtime = str(cupy_cuda_major() or "?")
        if not driver_loads():
            return (f"no NVIDIA driver: libcuda.so.1 does not load (CuPy is built for CUDA {runtime}; "
                    f"install an NVIDIA driver for it)")
        try:
            driver = cupy.cuda.runtime.driverGetVersion()
        except Exception:
            driver = 0
        has = f"it supports CUDA {_version(driver)}" if driver else "cudaErrorInsufficientDriver"
        return (f"the NVIDIA driver is too old for CUDA {runtime} ({has}): update the driver, or "
                f"install the extra of the CUDA major version it supports")
    if status == NO_DEVICE or "cudaErrorNoDevice" in text:
        return "no NVIDIA GPU: the driver sees none (cudaErrorNoDevice)"
    return f"CUDA does not start: {text}"


def diagnose():
    """The one-line cause why ``device("gpu")`` cannot run here, or None when it can."""
    try:
        import cupy  # noqa: PLC0415
    except ImportError as e:
        if cupy_cuda_major() is None:
            return f"CuPy is not installed ({install_hint()})"
        return f"CuPy does not import ({str(e).splitlines()[0]}; {install_hint()})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError
        return _cuda_error(e, cupy)
    if count < 1:
        return "no NVIDIA GPU: the driver sees none"
    missing = missing_libraries()
    if missing:
        lib = missing[0]
        return f"library {lib.name} missing, which {lib.owner} loads ({install_hint()})"
    return None


def unavailable() -> GpuUnavailable:
    """The error for ``device("gpu")`` on a machine where it cannot run."""
    why = diagnose() or "CuPy sees no usable GPU"
    return GpuUnavailable(f"no GPU to run on: {why}")


def main(argv=None) -> int:
    """Print every library the GPU path loads and where it was found; exit 1 if one is missing."""
    os.environ.pop("NUMBA_ENABLE_CUDASIM", None)  # the real numba-cuda's lookups, not the simulator's
    rows = libraries()
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"{r.owner:<10}  {r.name:<{width}}  {r.path or 'MISSING: ' + r.error}")
    try:
        from cuda import pathfinder  # noqa: PLC0415

        ptxas = pathfinder.find_nvidia_binary_utility("ptxas")
    except Exception:
        ptxas = None
    print(f"{'(optional)':<10}  {'ptxas':<{width}}  {ptxas or 'not installed (PTX is not assembled ahead)'}")
    missing = [r for r in rows if r.path is None]
    if missing:
        print(f"{len(missing)} of {len(rows)} libraries missing ({install_hint()})", file=sys.stderr)
        return 1
    print(f"all {len(rows)} libraries found")
    return 0


if __name__ == "__main__":
    sys.exit(main())

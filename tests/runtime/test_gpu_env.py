"""``--device gpu`` on a machine that cannot run it: one line naming the cause, exit 1.

The causes are made here without a GPU: CuPy absent, a fake ``cupy`` whose
runtime raises ``cudaErrorInsufficientDriver`` (as the real CuPy does on a
machine with no driver or one too old for its CUDA), and a CUDA library that
CuPy or numba-cuda loads but cannot find.
"""
import os
import subprocess
import sys
import textwrap

import pytest

from minigan.runtime import arrays, devices, gpu_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FAKE_CUPY = textwrap.dedent('''
    """A CuPy whose runtime answers as CuPy 14 does where the driver is missing or too old."""
    __version__ = "14.2.0"


    class CUDARuntimeError(RuntimeError):
        def __init__(self, status):
            self.status = status
            super().__init__({{35: "cudaErrorInsufficientDriver: CUDA driver version is insufficient "
                                   "for CUDA runtime version",
                              100: "cudaErrorNoDevice: no CUDA-capable device is detected"}}[status])


    class _Runtime:
        def getDeviceCount(self):
            raise CUDARuntimeError({status})

        def runtimeGetVersion(self):
            return 12090

        def driverGetVersion(self):
            return 12020


    class cuda:
        runtime = _Runtime()
''')


@pytest.fixture
def fake_cupy(tmp_path, monkeypatch):
    """A folder holding a fake ``cupy`` package, put first on sys.path (and on PYTHONPATH for
    child processes); the device cache is emptied, so ``device("gpu")`` asks again."""
    def make(status=gpu_env.INSUFFICIENT_DRIVER, count=None):
        pkg = tmp_path / "fake" / "cupy"
        pkg.mkdir(parents=True, exist_ok=True)
        code = FAKE_CUPY.format(status=status)
        if count is not None:
            code = code.replace(f"raise CUDARuntimeError({status})", f"return {count}")
        (pkg / "__init__.py").write_text(code)
        monkeypatch.syspath_prepend(str(tmp_path / "fake"))
        monkeypatch.delitem(sys.modules, "cupy", raising=False)
        return str(tmp_path / "fake")
    return make


@pytest.fixture(autouse=True)
def no_gpu_cached(monkeypatch):
    monkeypatch.delenv("MINIGAN_GPU", raising=False)
    if "NUMBA_ENABLE_CUDASIM" in os.environ:  # gpu_env.main() drops it; put back for the tests after
        monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", os.environ["NUMBA_ENABLE_CUDASIM"])
    monkeypatch.setattr(devices, "_devices", {})
    monkeypatch.setattr(arrays, "_cupy", None)
    monkeypatch.setattr(arrays, "_cupy_checked", True)


def child_env(*paths):
    env = {k: v for k, v in os.environ.items() if k not in ("MINIGAN_GPU", "NUMBA_ENABLE_CUDASIM")}
    env["PYTHONPATH"] = os.pathsep.join(list(paths) + [ROOT])
    return env


def one_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_cupy_absent(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    monkeypatch.setattr(gpu_env, "cupy_cuda_major", lambda: None)
    assert gpu_env.diagnose().startswith("CuPy is not installed (")
    with pytest.raises(gpu_env.GpuUnavailable, match="no GPU to run on: CuPy is not installed .*gpu-cu12"):
        devices.device("gpu")


def test_cupy_absent_on_the_command_line_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    from minigan.cli import main

    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(gpu_env, "cupy_cuda_major", lambda: None)
    code = main(["train", "--dataset", "ring", "--device", "gpu", "--out", str(tmp_path / "x")])
    line = one_line(capsys.readouterr().err)
    assert code == 1 and line.startswith("minigan train: no GPU to run on: CuPy is not installed"), line


def test_insufficient_driver_without_a_driver_says_no_driver(fake_cupy, monkeypatch):
    fake_cupy()
    monkeypatch.setattr(gpu_env, "driver_loads", lambda: False)
    why = gpu_env.diagnose()
    assert why.startswith("no NVIDIA driver: libcuda.so.1 does not load (CuPy is built for CUDA 12.9"), why


def test_insufficient_driver_with_an_old_driver_says_too_old(fake_cupy, monkeypatch):
    fake_cupy()
    monkeypatch.setattr(gpu_env, "driver_loads", lambda: True)
    why = gpu_env.diagnose()
    assert why.startswith("the NVIDIA driver is too old for CUDA 12.9 (it supports CUDA 12.2)"), why


def test_no_device(fake_cupy):
    fake_cupy(status=gpu_env.NO_DEVICE)
    assert gpu_env.diagnose() == "no NVIDIA GPU: the driver sees none (cudaErrorNoDevice)"


def test_a_missing_library_names_it_and_the_extra(fake_cupy, monkeypatch):
    fake_cupy(count=1)  # CuPy sees a GPU ...

    def missing():
        raise OSError("libcublas.so.12: cannot open shared object file")
    monkeypatch.setattr(gpu_env, "PROBES", [("CuPy", "libcublas", missing),
                                             ("numba-cuda", "libnvvm", lambda: "/x/libnvvm.so")])
    monkeypatch.setattr(gpu_env, "cupy_cuda_major", lambda: 12)
    why = gpu_env.diagnose()  # ... but cuBLAS is not there
    assert why == ("library libcublas missing, which CuPy loads (install the extra gpu-cu12: "
                   "pip install 'minigan[gpu-cu12]')")
    with pytest.raises(gpu_env.GpuUnavailable, match="library libcublas missing"):
        devices.device("gpu")


def test_the_library_check_fails_when_one_is_missing(monkeypatch, capsys):
    def missing():
        raise FileNotFoundError("numba-cuda finds no libdevice.10.bc")
    monkeypatch.setattr(gpu_env, "PROBES", [("CuPy", "libcublas", lambda: "/x/libcublas.so.12"),
                                             ("numba-cuda", "libdevice", missing)])
    assert gpu_env.main() == 1
    out, err = capsys.readouterr()
    assert "MISSING: FileNotFoundError: numba-cuda finds no libdevice.10.bc" in out
    assert "1 of 2 libraries missing" in err
    monkeypatch.setattr(gpu_env, "PROBES", [("CuPy", "libcublas", lambda: "/x/libcublas.so.12")])
    assert gpu_env.main() == 0


@pytest.mark.slow
def test_the_commands_exit_1_with_the_drivers_error(fake_cupy, tmp_path):
    """A fake CuPy raising cudaErrorInsufficientDriver, through ``minigan train`` and ``minigan
    bench`` in child processes (no driver on this machine: it says so)."""
    fake = fake_cupy()
    env = child_env(fake)
    if gpu_env.driver_loads():
        pytest.skip("this machine has an NVIDIA driver")
    for argv, prog in ((["train", "--dataset", "ring", "--device", "gpu", "--out", str(tmp_path / "x")],
                        "train"), (["bench", "--device", "gpu", "--models", "mlp"], "bench")):
        run = subprocess.run([sys.executable, "-m", "minigan", *argv], env=env, capture_output=True,
                             text=True, timeout=300)
        line = one_line(run.stderr)
        assert run.returncode == 1, (argv, run.stderr)
        assert line.startswith(f"minigan {prog}: no GPU to run on: no NVIDIA driver: libcuda.so.1 does "
                               f"not load (CuPy is built for CUDA 12.9"), line


def test_gpu_check_exits_1_when_a_stage_fails(fake_cupy, tmp_path):
    """benchmarks/gpu_check.py: a stage asked for that fails (here env: the fake CuPy has no
    devices to describe) makes the whole check fail."""
    run = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"), "--mnist",
                          str(tmp_path), "--out", str(tmp_path / "out"), "--stages", "env"],
                         env=child_env(fake_cupy()), capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "gpu_check: 1 of 1 stages failed: env (exit 1)" in run.stderr

"""``minigan bench`` runs; its figures are never asserted (timings live in benchmarks/)."""
import subprocess
import sys

import numpy as np

from minigan.cli import bench


def test_the_timed_step_is_the_trainers_and_changes_the_weights():
    s = bench.setup("mlp", 8)
    before = s.G.layers[0].params["W"].copy()
    s.step()
    assert not np.array_equal(before, s.G.layers[0].params["W"])


def test_a_reference_setup_runs_the_reference_code():
    s = bench.setup("mlp", 8, "cpu", "reference")
    assert all(m.device.table == "reference" for m in list(s.G.modules()) + list(s.D.modules()))
    before = s.D.layers[0].params["W"].copy()
    s.step()
    assert not np.array_equal(before, s.D.layers[0].params["W"])


def test_minigan_bench_prints_its_tables():
    out = subprocess.run([sys.executable, "-m", "minigan", "bench", "--models", "mlp", "--batch", "8",
                          "--repeats", "1", "--reference"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "| mlp | 8 |" in out.stdout and "| layer | cpu | cpu reference |" in out.stdout


def test_minigan_bench_refuses_bad_arguments():
    out = subprocess.run([sys.executable, "-m", "minigan", "bench", "--repeats", "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--repeats must be at least 1" in out.stderr
    assert "Traceback" not in out.stderr

"""Each example in examples/ runs clean: on tiny settings (random images, a few steps, no
download), with a RuntimeWarning (e.g. the one about minigan.tune_cpu) made an error."""
import csv
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def example(name, *args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MINIGAN_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-W", "error::RuntimeWarning", str(ROOT / "examples" / name),
                           *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name, args", [
    ("mlp_gan_by_hand.py", ["--tiny", "--epochs", "1", "--steps", "2", "--batch-size", "16"]),
    ("dcgan_by_hand.py", ["--tiny", "--epochs", "1", "--steps", "1", "--batch-size", "8"]),
])
def test_a_training_example_runs_clean_on_tiny_settings(tmp_path, name, args):
    out = example(name, *args, "--out", "s.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr
    assert (tmp_path / "s.png").is_file()


def test_mixture_curves_draws_the_runs_it_is_given(tmp_path):
    run = tmp_path / "ring-s0"
    run.mkdir()
    with open(run / "eval.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["epoch", "high_quality", "modes_covered", "reverse_kl"])
        w.writeheader()
        w.writerows([{"epoch": e, "high_quality": 0.5 + 0.1 * e, "modes_covered": 6 + e,
                      "reverse_kl": 0.5 / e} for e in (1, 2)])
    out = example("mixture_curves.py", run, "--out", "c.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "c.png").is_file()


def test_augment_with_cgan_without_a_checkpoint_says_what_to_do(tmp_path):
    out = example("augment_with_cgan.py", cwd=tmp_path)
    assert out.returncode == 2
    assert "no checkpoint at runs/cconv/checkpoint.npz" in out.stderr
    assert "minigan train --conditional" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("name", ["mixtures_table.py", "mnist_scores_table.py", "augment_with_cgan.py"])
def test_the_longer_examples_answer_help(tmp_path, name):
    # their real work takes minutes (README: examples); here: they import and parse cleanly
    out = example(name, "--help", cwd=tmp_path)
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr

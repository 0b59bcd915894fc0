"""benchmarks/quality.py: minigan run folders to quality rows, the report, and a PyTorch smoke run."""
import csv
import json
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import quality

LOG = ["epoch", "step", "d_loss", "g_loss", "d_real", "d_fake", "seconds"]


def write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def fake_run(folder, seed, seconds, scores):
    """A run folder as minigan writes it: ``seconds`` (per epoch, the elapsed time at each
    log row) in log.csv, ``scores`` ((frechet, IS, classes) per epoch) in eval.csv."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"seed": seed, "g_ema": 0.999}))
    rows, step = [], 0
    for epoch, marks in enumerate(seconds, 1):
        for s in marks:
            step += 50
            rows.append([epoch, step, 1.0, 1.0, 0.5, 0.5, s])
    write(folder / "log.csv", LOG, rows)
    header = ["epoch", "step", "n", "frechet", "inception_score", "inception_score_std", "kl_uniform",
              "n_classes"] + [f"count_{k}" for k in range(10)]
    write(folder / "eval.csv", header,
          [[e, 100 * e, 10000, f, i, 0.1, 0.2, c] + [1000] * 10 for e, (f, i, c) in enumerate(scores, 1)])
    return folder


def test_minigan_rows_add_up_each_epochs_last_seconds(tmp_path):
    run = fake_run(tmp_path / "a", 7, [[10.0, 20.0, 25.5], [9.0, 24.5]], [(300.0, 4.0, 10), (150.0, 6.5, 9)])
    rows = quality.minigan_rows(str(run), "minigan")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["train_seconds"] for r in rows] == [25.5, 50.0]
    assert rows[1] == {"system": "minigan", "seed": 7, "epoch": 2, "train_seconds": 50.0,
                       "frechet": 150.0, "inception_score": 6.5, "classes": 9}


def test_minigan_command_writes_quality_csv(tmp_path):
    a = fake_run(tmp_path / "a", 0, [[30.0], [31.0]], [(200.0, 5.0, 10), (100.0, 7.0, 10)])
    b = fake_run(tmp_path / "b", 1, [[32.0], [33.0]], [(400.0, 3.0, 8), (120.0, 6.0, 10)])
    out = tmp_path / "minigan.csv"
    quality.main(["minigan", str(a), str(b), "--label", "mg", "--out", str(out)])
    rows = quality.read_csv(out)
    assert list(rows[0]) == quality.COLUMNS
    assert [(r["system"], r["seed"], r["epoch"], r["train_seconds"]) for r in rows] == [
        ("mg", "0", "1", "30.0"), ("mg", "0", "2", "61.0"), ("mg", "1", "1", "32.0"), ("mg", "1", "2", "65.0")]


def test_report_averages_over_seeds_and_draws_the_plot(tmp_path, capsys):
    path = tmp_path / "q.csv"
    quality.write_rows(path, [
        {"system": "s", "seed": 0, "epoch": 1, "train_seconds": 60, "frechet": 100, "inception_score": 5,
         "classes": 10},
        {"system": "s", "seed": 1, "epoch": 1, "train_seconds": 180, "frechet": 300, "inception_score": 7,
         "classes": 10},
        {"system": "t", "seed": 0, "epoch": 1, "train_seconds": 30, "frechet": 50, "inception_score": 8,
         "classes": 10},
    ])
    png = tmp_path / "q.png"
    quality.main(["report", str(path), "--plot", str(png)])
    text = capsys.readouterr().out
    assert "| s | 1 | 2 | 2.0 ± 1.0 | 200.00 ± 100.00 | 6.00 ± 1.00 | 5.00 |" in text
    assert "| t | 1 | 1 | 0.5 ± 0.0 | 50.00 ± 0.00 | 8.00 ± 0.00 | 8.00 |" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_torch_side_trains_the_lean_conv_pair_and_scores_it(tmp_path):
    torch = pytest.importorskip("torch")
    from minigan.gan import models

    G, D = quality.torch_conv_pair(torch)
    if "conv" in models.BUILDERS:  # the same networks as minigan's: same parameter counts
        g, d = models.build("conv")
        assert sum(p.numel() for p in G.parameters()) == g.num_params()
        assert sum(p.numel() for p in D.parameters()) == d.num_params()
    quality.main(["torch", "--epochs", "1", "--batch-size", "32", "--limit", "96", "--n-score", "200",
                  "--g-ema", "0.9", "--threads", "1", "--seed", "3", "--out", str(tmp_path)])
    rows = quality.read_csv(tmp_path / "quality.csv")
    assert len(rows) == 1
    r = rows[0]
    assert (r["system"], r["seed"], r["epoch"]) == ("pytorch", "3", "1")
    assert float(r["train_seconds"]) > 0 and float(r["frechet"]) > 0
    assert 1.0 <= float(r["inception_score"]) <= 10.0 and 1 <= int(r["classes"]) <= 10
    assert (tmp_path / "samples.png").exists()


@pytest.mark.slow
def test_torch_side_trains_the_self_conditioned_pair_as_minigan_builds_it(tmp_path):
    torch = pytest.importorskip("torch")
    from minigan.gan import models

    probs = np.random.default_rng(0).dirichlet(np.ones(7))
    G, D = quality.torch_conv_pair(torch, 7, probs)
    g, d = models.build("conv", clusters=7)
    assert sum(p.numel() for p in G.parameters()) == g.num_params()
    assert sum(p.numel() for p in D.parameters()) == d.num_params()
    g.layers[0].set_probs(probs)
    z = np.random.default_rng(1).standard_normal((20_000, 100)).astype(np.float32)
    same = (G[0].codes(torch.from_numpy(z)).numpy() == g.layers[0].codes(z)).mean()
    assert same > 0.9999  # the same draw, up to near-ties of the erfc fit
    quality.main(["torch", "--epochs", "1", "--batch-size", "32", "--limit", "96", "--n-score", "200",
                  "--g-ema", "0.9", "--threads", "1", "--seed", "3", "--clusters", "4", "--out", str(tmp_path)])
    rows = quality.read_csv(tmp_path / "quality.csv")
    assert len(rows) == 1 and float(rows[0]["frechet"]) > 0

"""Plots: every function writes a valid PNG; image_grid tiles and scales exactly."""
import csv

import matplotlib
import matplotlib.image
import numpy as np
import pytest

from minigan import nn, viz
from minigan.data import GRID, RING, sample_mixture

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_h=100, min_w=100):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] >= min_h and img.shape[1] >= min_w
    assert img[..., :3].std() > 0  # not a blank canvas
    return img


# -- image_grid -----------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 28, 28), (5, 1, 28, 28), (5, 784)])
def test_image_grid_accepts_layouts(shape):
    g = viz.image_grid(np.zeros(shape), nrow=3)
    # 3 per row -> 2 rows; 2-px borders around and between tiles.
    assert g.shape == (2 * 30 + 2, 3 * 30 + 2)


def test_image_grid_default_is_square_and_places_tiles():
    x = np.stack([np.full((4, 3), v) for v in np.linspace(-1, 1, 9)])
    g = viz.image_grid(x, padding=1, pad_value=0.25)
    assert g.shape == (3 * 5 + 1, 3 * 4 + 1)
    # Tile i sits at row i // 3, column i % 3; -1..1 maps to 0..1.
    for i in range(9):
        r, c = divmod(i, 3)
        np.testing.assert_allclose(g[1 + r * 5: 1 + r * 5 + 4, 1 + c * 4: 1 + c * 4 + 3], i / 8)
    assert g[0].tolist() == [0.25] * g.shape[1] and (g[:, 4] == 0.25).all()


def test_image_grid_scaling_and_clipping():
    x = np.array([[[-1.0, 0.0], [1.0, 3.0]]])
    np.testing.assert_allclose(viz.image_grid(x, padding=0), [[0, 0.5], [1, 1]])
    np.testing.assert_allclose(viz.image_grid(x, padding=0, value_range=(0, 1)), [[0, 0], [1, 1]])
    np.testing.assert_allclose(viz.image_grid(np.array([[[np.nan]]]), padding=0), [[0.0]])
    # Empty cells of the last row take the padding value.
    g = viz.image_grid(np.ones((3, 2, 2)), nrow=2, padding=0, pad_value=0.5)
    assert g.shape == (4, 4) and (g[2:, 2:] == 0.5).all() and (g[2:, :2] == 1).all()


def test_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="not square"):
        viz.image_grid(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="expected"):
        viz.image_grid(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match="value_range"):
        viz.image_grid(np.zeros((2, 4, 4)), value_range=(1, 1))


# -- files ----------------------------------------------------------------------
def test_save_image_grid(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, size=(20, 1, 28, 28))
    plain = assert_png(viz.save_image_grid(x, tmp_path / "plain.png", nrow=5))
    labelled = assert_png(viz.save_image_grid(x, tmp_path / "sub" / "lab.png", nrow=5, title="epoch 3",
                                              row_labels=[0, 1, 2, 3]))
    assert labelled.shape[0] > plain.shape[0] and labelled.shape[1] > plain.shape[1]
    with pytest.raises(ValueError, match="row labels"):
        viz.save_image_grid(x, tmp_path / "bad.png", nrow=5, row_labels=[0, 1])


def write_log(path, n=40):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "d_loss", "g_loss", "d_real", "d_fake", "seconds"])
        for s in range(n):
            w.writerow([s // 10, s, 1.4 - s / 100, 0.7 + s / 80, 0.6, 0.4 + s / 400, 0.01])


def test_plot_losses_from_csv_dict_and_rows(tmp_path):
    write_log(tmp_path / "log.csv")
    assert_png(viz.plot_losses(tmp_path / "log.csv", tmp_path / "a.png"))
    assert_png(viz.plot_losses(str(tmp_path / "log.csv"), tmp_path / "b.png", x="epoch", title="run 1"))
    cols = {"epoch": [1, 2, 3], "d_loss": [1.0, 0.9, 0.8], "g_loss": [0.7, 0.8, ""]}
    assert_png(viz.plot_losses(cols, tmp_path / "c.png"))  # no D(x) columns: one panel
    rows = [{"step": i, "d_loss": 1.0 / (i + 1), "d_fake": 0.3} for i in range(5)]
    assert_png(viz.plot_losses(rows, tmp_path / "d.png"))
    with pytest.raises(ValueError, match="d_loss"):
        viz.plot_losses({"epoch": [1]}, tmp_path / "e.png")
    with pytest.raises(KeyError, match="wall"):
        viz.plot_losses(tmp_path / "log.csv", tmp_path / "f.png", x="wall")


def test_gradient_norms():
    model = nn.Sequential(nn.Dense(3, 2), nn.BatchNorm(2))
    model[0].grads["W"][...] = [[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]]
    model[1].grads["beta"][...] = [1.0, 1.0]
    norms = viz.gradient_norms(model)
    assert list(norms) == ["0.W", "0.b", "1.gamma", "1.beta"]
    assert norms == pytest.approx({"0.W": 5.0, "0.b": 0.0, "1.gamma": 0.0, "1.beta": 2 ** 0.5})


def test_plot_gradient_flow(tmp_path):
    hist = {"G": {"0.W": [1.0, 0.5, 0.2], "0.b": [0.0, 1e-3, 1e-3], "2.W": [2.0, 2.0, 1.5]},
            "D": {"0.W": [0.1, 0.2, 0.3]}}
    two = assert_png(viz.plot_gradient_flow(hist, tmp_path / "g.png", title="gradient flow"))
    rows = [{"epoch": e, "model": "D", "param": p, "norm": 0.1 * e + i}
            for e in range(1, 4) for i, p in enumerate(["0.W", "0.b"])]
    rows.append({"epoch": "4", "model": "D", "param": "0.W", "norm": None})  # a cut-off last row
    one = assert_png(viz.plot_gradient_flow(rows, tmp_path / "r.png"))
    assert two.shape[1] > one.shape[1]  # one panel per model
    with pytest.raises(ValueError, match="empty"):
        viz.plot_gradient_flow({}, tmp_path / "x.png")


@pytest.mark.parametrize("mixture", [RING, GRID])
def test_plot_points(tmp_path, mixture):
    pts = sample_mixture("ring" if mixture is RING else "grid", 500, np.random.default_rng(0))
    pts[:3] = [1e3, -1e3], [np.nan, 0.0], [0.0, np.inf]  # outliers must not wreck the view
    assert_png(viz.plot_points(pts, mixture.modes, tmp_path / "p.png", std=mixture.std, title="t"))
    assert_png(viz.plot_points(pts[:0], mixture.modes, tmp_path / "empty.png"))


def test_user_backend_untouched(tmp_path):
    before = matplotlib.get_backend()
    viz.save_image_grid(np.zeros((4, 28, 28)), tmp_path / "z.png")
    assert matplotlib.get_backend() == before

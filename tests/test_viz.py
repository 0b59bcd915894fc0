"""Plots: every function writes a valid PNG; image_grid tiles and scales exactly; GIFs;
the gradient-flow legend's layer names."""
import csv

import matplotlib
import matplotlib.image
import numpy as np
import pytest

from minigan import nn, viz
from minigan.data import GRID, RING, sample_mixture
from minigan.gan import models

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


def test_parameter_labels_name_layers_by_kind_and_place():
    G, D = models.build("dcgan", width=0.125)
    assert viz.parameter_labels(G) == {
        "0.W": "dense1.W", "1.gamma": "bn1.gamma", "1.beta": "bn1.beta", "4.W": "deconv1.W",
        "5.gamma": "bn2.gamma", "5.beta": "bn2.beta", "7.W": "deconv2.W", "8.gamma": "bn3.gamma",
        "8.beta": "bn3.beta", "10.W": "deconv3.W"}
    assert viz.parameter_labels(D) == {"0.W": "conv1.W", "0.b": "conv1.b", "3.W": "conv2.W",
                                       "3.b": "conv2.b", "7.W": "dense1.W", "7.b": "dense1.b"}
    # keyed as the gradient norms and the checkpoint are; a conditional model's LabelJoin
    # holds no parameters and takes no number
    cG, _ = models.build("mlp", conditional=True)
    assert list(viz.parameter_labels(cG)) == list(viz.gradient_norms(cG))
    assert list(viz.parameter_labels(cG).values()) == ["dense1.W", "dense1.b", "dense2.W", "dense2.b"]
    assert [k for k in cG.state_dict() if k.startswith("param.")] == [
        "param.1.W", "param.1.b", "param.3.W", "param.3.b"]  # the checkpoint's keys are untouched
    nested = nn.Sequential(nn.Sequential(nn.Dense(2, 3), nn.ReLU()), nn.Dense(3, 1))
    assert viz.parameter_labels(nested) == {"0.0.W": "dense1.W", "0.0.b": "dense1.b",
                                            "1.W": "dense2.W", "1.b": "dense2.b"}


def legend(fig):
    return [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]


def test_gradient_flow_legend_names_the_layers():
    G, D = models.build("dcgan", width=0.125)
    rows = [{"step": s, "model": m, "param": p, "norm": 0.5}
            for s in (1, 2) for m, net in (("G", G), ("D", D)) for p in viz.gradient_norms(net)]
    # a run's gradients.csv (and an old run folder's) holds the checkpoint's names ...
    assert legend(viz.gradient_flow_figure(rows))[1][:3] == ["D.0.W", "D.0.b", "D.3.W"]
    # ... which the legend shows by layer, given the models or the maps
    for labels in ({"G": G, "D": D}, {"G": viz.parameter_labels(G), "D": viz.parameter_labels(D)}):
        g, d = legend(viz.gradient_flow_figure(rows, labels=labels))
        assert g[:4] == ["G.dense1.W", "G.bn1.gamma", "G.bn1.beta", "G.deconv1.W"]
        assert d == ["D.conv1.W", "D.conv1.b", "D.conv2.W", "D.conv2.b", "D.dense1.W", "D.dense1.b"]
    # a parameter the map lacks keeps its own name
    assert legend(viz.gradient_flow_figure(rows, labels={"D": {"0.W": "first.W"}}))[1][:2] == [
        "D.first.W", "D.0.b"]


def test_save_gif_has_a_frame_per_picture_and_loops(tmp_path):
    from PIL import Image, ImageSequence

    frames = []
    for i in range(3):
        x = np.random.default_rng(i).uniform(-1, 1, (4, 28, 28))
        frames.append(viz.save_image_grid(x, tmp_path / f"f{i}.png", title=f"epoch {i + 1}"))
    small = viz.save_image_grid(np.zeros((1, 28, 28)), tmp_path / "small.png")
    out = viz.save_gif(frames + [small], tmp_path / "a.gif", duration=300, last=1500)
    with open(out, "rb") as f:
        assert f.read(6) == b"GIF89a"
    with Image.open(out) as gif:
        assert gif.n_frames == 4 and gif.info["loop"] == 0
        seq = [(f.info["duration"], np.asarray(f.convert("RGB"))) for f in ImageSequence.Iterator(gif)]
    assert [d for d, _ in seq] == [300, 300, 300, 1500]
    for (_, got), path in zip(seq, frames):  # the grayscale grids, exactly
        np.testing.assert_array_equal(got, np.asarray(Image.open(path).convert("RGB")))
    h, w = np.asarray(Image.open(small)).shape[:2]
    assert seq[-1][1].shape[:2] == seq[0][1].shape[:2] and h < seq[0][1].shape[0]
    np.testing.assert_array_equal(seq[-1][1][:h, :w], np.asarray(Image.open(small).convert("RGB")))
    with pytest.raises(ValueError, match="no frames"):
        viz.save_gif([], tmp_path / "b.gif")
    with pytest.raises(ValueError, match=".gif"):
        viz.save_gif(frames, tmp_path / "c.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "f0.png", "f1.png", "f2.png", "small.png"]


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


def test_the_animation_is_redrawn_on_a_schedule_that_keeps_its_cost_linear():
    from minigan.gan.run_log import animation_due

    assert [e for e in range(1, 21) if animation_due(e, 20)] == [1, 2, 4, 8, 16, 20]
    for last in (1, 3, 30, 400):
        redraws = [e for e in range(1, last + 1) if animation_due(e, last)]
        assert redraws[-1] == last and sum(redraws) < 3 * last  # frames encoded over the run

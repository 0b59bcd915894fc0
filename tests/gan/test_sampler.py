"""The sampler's latent interpolation: the noise path, its ends, conditional and averaged
checkpoints, and ``minigan sample --interpolate``."""
import os
import sys

import numpy as np
import pytest
from test_trainer import synthetic

from minigan.cli import main
from minigan.gan.sampler import interpolate_noise, interpolation, sample
from minigan.gan.trainer import CHECKPOINT, TrainConfig, Trainer


# -- the noise path ----------------------------------------------------------------------
def test_the_path_starts_and_ends_at_the_two_vectors():
    z = np.random.default_rng(0).standard_normal((6, 100))
    for method in ("slerp", "lerp"):
        path = interpolate_noise(z[:3], z[3:], 7, method)
        assert path.shape == (3, 7, 100)
        np.testing.assert_array_equal(path[:, 0], z[:3])
        np.testing.assert_array_equal(path[:, -1], z[3:])
    line = interpolate_noise(z[:3], z[3:], 5, "lerp")
    np.testing.assert_allclose(line[:, 2], (z[:3] + z[3:]) / 2)


def test_slerp_turns_along_the_arc():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 4, 50))
    b *= (np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))[:, None]  # equal norms
    path = interpolate_noise(a, b, 9, "slerp")
    # on the circle through a and b: the norm stays, the angle grows in equal steps
    np.testing.assert_allclose(np.linalg.norm(path, axis=2), np.linalg.norm(a, axis=1)[:, None] * np.ones(9))
    cos = np.sum(path * a[:, None], axis=2) / np.linalg.norm(a, axis=1)[:, None] ** 2
    angles = np.arccos(np.clip(cos, -1, 1))
    np.testing.assert_allclose(np.diff(angles, axis=1), angles[:, -1:] / 8 * np.ones((1, 8)), atol=1e-7)
    # parallel vectors (no plane to turn in) fall back to the line, without NaN
    same = interpolate_noise(a[:1], 2 * a[:1], 3, "slerp")
    np.testing.assert_allclose(same[0, 1], 1.5 * a[0])


def test_bad_paths_are_refused():
    z = np.zeros((1, 3))
    with pytest.raises(ValueError, match="at least 2 steps"):
        interpolate_noise(z, z, 1)
    with pytest.raises(ValueError, match="slerp, lerp"):
        interpolate_noise(z, z, 3, "cubic")


# -- from checkpoints --------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """An MLP trained with a weight average, and a conditional DCGAN: one tiny epoch each."""
    root = tmp_path_factory.mktemp("interp")
    Trainer(TrainConfig(model="mlp", epochs=1, batch_size=16, width=0.25, g_ema=0.5, seed=2,
                        n_samples=16, out=str(root / "mlp")),
            data=synthetic("mlp", 32), progress=False).fit(log=lambda s: None)
    Trainer(TrainConfig(model="dcgan", conditional=True, epochs=1, batch_size=16, width=0.125, seed=2,
                        out=str(root / "cdcgan")),
            data=synthetic("dcgan", 32), labels=np.arange(32) % 10, progress=False).fit(log=lambda s: None)
    return str(root / "mlp" / CHECKPOINT), str(root / "cdcgan" / CHECKPOINT)


def rows_of(images, steps):
    return images.reshape(-1, steps, 28, 28)


@pytest.mark.parametrize("averaged", [True, False])
@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_the_ends_of_each_row_are_the_samples_of_the_end_noise(checkpoints, averaged, method):
    ck = checkpoints[0]
    images, digits = interpolation(ck, rows=3, steps=6, seed=7, averaged=averaged, method=method)
    assert images.shape == (18, 28, 28) and images.dtype == np.float32 and digits is None
    ends = sample(ck, 6, seed=7, averaged=averaged)
    r = rows_of(images, 6)
    np.testing.assert_allclose(r[:, 0], ends[0::2], atol=1e-6)
    np.testing.assert_allclose(r[:, -1], ends[1::2], atol=1e-6)
    assert not np.allclose(r[:, 1], r[:, 0], atol=1e-4)  # the middle moves


def test_the_average_is_interpolated_unless_live(checkpoints):
    ck = checkpoints[0]
    assert not np.array_equal(interpolation(ck, 2, 3)[0], interpolation(ck, 2, 3, averaged=False)[0])


def test_a_conditional_row_keeps_its_digit(checkpoints):
    ck = checkpoints[1]
    images, digits = interpolation(ck, rows=12, steps=3, seed=1)
    assert digits == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    r = rows_of(images, 3)
    for d in (0, 4):  # the ends of row r are samples 2r, 2r+1 drawn as digit r % 10
        ends = sample(ck, 24, seed=1, digit=d)
        np.testing.assert_allclose(r[d, 0], ends[2 * d], atol=1e-5)
        np.testing.assert_allclose(r[d, -1], ends[2 * d + 1], atol=1e-5)
    sevens, digits = interpolation(ck, rows=2, steps=4, seed=1, digit=7)
    assert digits == [7, 7]
    ends = sample(ck, 4, seed=1, digit=7)
    np.testing.assert_allclose(rows_of(sevens, 4)[:, [0, -1]].reshape(4, 28, 28), ends, atol=1e-5)


def test_interpolation_errors(checkpoints):
    mlp, cond = checkpoints
    with pytest.raises(ValueError, match="needs a conditional model"):
        interpolation(mlp, 2, 3, digit=3)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        interpolation(cond, 2, 3, digit=10)
    with pytest.raises(ValueError, match="at least 1 row"):
        interpolation(mlp, 0, 3)
    with pytest.raises(ValueError, match="at least 2 steps"):
        interpolation(mlp, 2, 1)


# -- the command -------------------------------------------------------------------------
def one_line(capsys, code, *said):
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for s in said:
        assert s in err, (s, err)


def call(argv):
    try:
        return main([str(a) for a in argv])
    except SystemExit as e:
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
            return 1
        return e.code


def test_sample_interpolate_writes_a_grid(checkpoints, tmp_path, capsys):
    from PIL import Image

    mlp, cond = checkpoints
    assert call(["sample", "--checkpoint", mlp, "--interpolate", "--n", "3", "--steps", "5",
                 "--out", tmp_path / "a.png"]) == 0
    assert "3 rows of 5 images (spherical interpolation" in capsys.readouterr().out
    plain = Image.open(tmp_path / "a.png").size
    assert call(["sample", "--checkpoint", cond, "--interpolate", "lerp", "--out", tmp_path / "b.png"]) == 0
    assert "10 rows (digits 0-9 in turn) of 10 images (linear" in capsys.readouterr().out
    labelled = Image.open(tmp_path / "b.png").size
    assert labelled[0] > plain[0] and labelled[1] > plain[1]  # 10 x 10, with the digit labels
    assert call(["sample", "--checkpoint", cond, "--interpolate", "--digit", "3", "--n", "2", "--steps", "4",
                 "--out", tmp_path / "c.npz"]) == 0
    got = np.load(tmp_path / "c.npz")["images"]
    np.testing.assert_array_equal(got, interpolation(cond, 2, 4, digit=3)[0])


@pytest.mark.parametrize("extra, said", [
    (["--interpolate", "--steps", "1"], "--steps: must be an integer >= 2"),
    (["--interpolate", "--steps", "x"], "--steps: must be an integer"),
    (["--steps", "4"], "--steps is the length of an interpolation's rows: it needs --interpolate"),
    (["--interpolate", "--n", "0"], "--n: must be an integer > 0"),
    (["--interpolate", "--n", "300"], "at most 2,500 images fit in one picture"),
    (["--interpolate", "--per-row", "4"], "--per-row is not for --interpolate"),
    (["--interpolate", "cubic"], "invalid choice: 'cubic'"),
    (["--interpolate", "--digit", "3"], "--digit needs a conditional checkpoint"),
])
def test_sample_interpolate_errors_are_one_line(checkpoints, tmp_path, capsys, extra, said):
    code = call(["sample", "--checkpoint", checkpoints[0], "--out", tmp_path / "x.png", *extra])
    one_line(capsys, code, said)
    assert not os.listdir(tmp_path)


def test_a_mixture_generator_is_refused(tmp_path, capsys):
    out = tmp_path / "ring"
    Trainer(TrainConfig.for_dataset("ring", epochs=1, limit=200, batch_size=20, eval_every=0, out=str(out)),
            progress=False).fit(log=lambda s: None)
    with pytest.raises(ValueError, match="2-D points"):
        interpolation(str(out / CHECKPOINT), 2, 3)
    one_line(capsys, call(["sample", "--checkpoint", out, "--interpolate", "--out", tmp_path / "x.png"]),
             "--interpolate draws images", "2-D mixture")
    assert not (tmp_path / "x.png").exists()

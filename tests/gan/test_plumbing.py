"""The trainer's plumbing on tiny data where every value is known.

Each training image (or 2-D point) carries its own index in its first value and, for a
conditional run, its label in its second, so a batch can say which images it holds.  A
recorder stands in for the trainer's ``gan_step`` and watches what reaches the networks
(G's and D's inputs, the labels set on their label layers, the rows PacGAN's Pack puts
side by side); the tests compare all of it with what is computed here on their own from
the epoch's permutation ``default_rng([seed, epoch])`` and the keys ``(seed, what, step)``
of :mod:`minigan.runtime.randomness`:

* a step's real batch is the epoch permutation's slice for that step, and every training
  image is used once per epoch;
* its labels (conditional) or cluster ids (self-conditioned: k-means of the data) are the
  ones of the images in it, and D is shown each real image with its own label;
* its noise is the NOISE key of (seed, step), the fake labels the LABELS key (conditional)
  or the code G draws from the noise (self-conditioned); G and D see those fake labels;
* D's joint batch is the real rows then the fake rows; a packed D's row is m consecutive
  samples of one kind;
* a resumed run draws the same batches, labels and noise as an uninterrupted one;
* pictures, scores, checkpoints and the sampler use the generator the config names
  (the weight average with ``g_ema``, else the live G).

Everything runs on the CPU and on the GPU (CuPy, or the strict stand-in where there is
none).
"""
import numpy as np
import pytest
from helpers import fit_until_interrupted

from minigan import io, nn
from minigan.runtime import randomness
from minigan.data.clusters import kmeans
from minigan.gan import models
from minigan.gan import scoring
from minigan.gan import trainer as trainer_module
from minigan.gan.sampler import generate, load_generator, sample
from minigan.gan.trainer import CHECKPOINT, KMEANS_STREAM, Trainer, TrainConfig

SEED = 7
SCALE = 128.0  # value = index / SCALE - OFFSET: exact in float32 for the sizes used here
OFFSET = 0.99


def host(a):
    """A NumPy copy of ``a`` from any device (the one place the tests touch the backend)."""
    from minigan import runtime  # noqa: PLC0415

    return None if a is None else np.array(runtime.to_numpy(a))


# -- data that says what it is ------------------------------------------------------------

def encoded_images(model, n, labels=None, seed=0):
    """Images in [-1, 1] whose first pixel is ``index / SCALE - OFFSET`` and second pixel
    ``label / 16 - 0.5``; the rest blurry blobs, so that k-means has something to group."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    cy, cx = rng.uniform(8, 20, (2, n, 1, 1))
    img = (np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20.0) * 2 - 1).reshape(n, 784)
    img[:, 0] = np.arange(n) / SCALE - OFFSET
    img[:, 1] = -0.5 if labels is None else np.asarray(labels) / 16.0 - 0.5
    return img.reshape(n, *models.image_shape(model)).astype(np.float32)


def encoded_points(n, seed=0):
    """2-D points: x is ``index / SCALE - OFFSET``, y a value of a few well-separated groups."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n) * 0.5 - 0.75 + rng.normal(0, 0.01, n)
    return np.stack([np.arange(n) / SCALE - OFFSET, y], axis=1).astype(np.float32)


def index_of(rows):
    """The index each image or point of ``rows`` (on the host) carries."""
    flat = np.asarray(rows).reshape(len(rows), -1)
    return np.rint((flat[:, 0].astype(np.float64) + OFFSET) * SCALE).astype(np.int64)


def label_of(rows):
    flat = np.asarray(rows).reshape(len(rows), -1)
    return np.rint((flat[:, 1].astype(np.float64) + 0.5) * 16).astype(np.int64)


# -- what a step should draw, computed here ------------------------------------------------

def permutation(n, epoch):
    return np.random.default_rng([SEED, epoch]).permutation(n)


def expected_indices(n, per_step, step):
    """The images of global ``step``: the slice of its epoch's permutation."""
    spe = n // per_step
    epoch, s = divmod(step, spe)
    return permutation(n, epoch)[s * per_step:(s + 1) * per_step]


def expected_noise(step, shape):
    return randomness.keyed_normal(np.empty(shape, np.float32), randomness.key(SEED, randomness.NOISE, step))


def expected_fake_labels(step, n):
    out = np.empty(n, np.int64)
    return randomness.keyed_integers(out, randomness.key(SEED, randomness.LABELS, step), models.NUM_CLASSES)


def _label_layer(model, kind):
    found = [m for m in model.modules() if isinstance(m, kind)]
    return found[0] if found else None


class Recorder:
    """Records every step of ``trainer``: the arrays handed to ``gan_step``, then inside it
    each G and D forward (input, output, the labels set on the label layer) and, for a
    packed D, the Pack layer's output."""

    def __init__(self, trainer, monkeypatch):
        self.t, self.steps, self.now = trainer, [], None
        real_step = trainer_module.gan_step  # or another trainer's recorder

        def step(G, D, opt_G, opt_D, loss, real, z, y_real=None, y_fake=None, **kw):
            if G is not trainer.G:
                return real_step(G, D, opt_G, opt_D, loss, real, z, y_real, y_fake, **kw)
            self.now = {"real": host(real), "z": host(z), "y_real": host(y_real), "y_fake": host(y_fake),
                        "G": [], "D": [], "pack": []}
            self.steps.append(self.now)
            try:
                return real_step(G, D, opt_G, opt_D, loss, real, z, y_real, y_fake, **kw)
            finally:
                self.now = None

        monkeypatch.setattr(trainer_module, "gan_step", step)
        g_labels = _label_layer(trainer.G, nn.LabelJoin)
        d_labels = _label_layer(trainer.D, (nn.LabelJoin, nn.LabelProjection))
        self._watch(trainer.G, "G", g_labels)
        self._watch(trainer.D, "D", d_labels)
        first = trainer.D.layers[0]
        if type(first).__name__ == "Pack":
            self._watch(first, "pack", None)

    def _watch(self, layer, name, label_layer):
        forward = layer.forward

        def watched(x):
            out = forward(x)
            if self.now is not None:
                labels = None if label_layer is None else host(label_layer.labels)
                self.now[name].append({"x": host(x), "out": host(out), "labels": labels})
            return out

        layer.forward = watched


def tiny(tmp_path, name, device, dataset="mnist", **kw):
    base = dict(model="mlp", epochs=2, batch_size=8, lr=1e-3, seed=SEED, log_every=2, checkpoint_every=3,
                n_samples=8, width=1 / 16, out=str(tmp_path / name), device=device, eval_every=0,
                clusters=0, g_ema=0.0)
    base.update(kw)
    return TrainConfig.for_dataset(dataset, **base)


FAMILIES = {
    "plain": dict(model="mlp"),
    "conditional": dict(model="mlp", conditional=True),
    "self-conditioned": dict(model="mlp", clusters=4),
    "packed": dict(dataset="ring", model="mlp2d", pack=2, batch_size=4, clusters=4),
    "packed-plain": dict(dataset="ring", model="mlp2d", pack=4, batch_size=2, clusters=0),
}
FAMILY_NAMES = list(FAMILIES)


def build(tmp_path, name, device, family, n=32, draw=False, **kw):
    """A tiny trainer of ``family`` on ``n`` encoded samples; returns (trainer, data, labels).
    Without ``draw`` it skips the epoch pictures (thousands of points through G on a mixture)."""
    cfg = tiny(tmp_path, name, device, **{**FAMILIES[family], **kw})
    if cfg.is_mixture:
        data, labels = encoded_points(n), None
    else:
        labels = np.random.default_rng(11).integers(0, 10, n) if cfg.conditional else None
        data = encoded_images(cfg.model, n, labels)
    t = Trainer(cfg, data=data, labels=labels, progress=False)
    if not draw:
        t.pictures = lambda: "(not drawn)"
    return t, data, labels


def quiet(s):
    pass


def check_step(rec, step, cfg, data, labels, clusters, code_layer):
    """Every value of one recorded step against what it should be."""
    n, m = len(data), cfg.pack
    P = cfg.batch_size * m
    idx = expected_indices(n, P, step)
    real = rec["real"]
    # the real batch: the permutation's slice, each image whole
    np.testing.assert_array_equal(index_of(real), idx, err_msg=f"step {step}: real batch")
    np.testing.assert_array_equal(real, data[idx], err_msg=f"step {step}: real images")
    # the noise: the NOISE key of (seed, step)
    np.testing.assert_allclose(rec["z"], expected_noise(step, rec["z"].shape), rtol=1e-6, atol=1e-6,
                               err_msg=f"step {step}: noise")
    (g,) = rec["G"]  # one generator forward per step
    np.testing.assert_array_equal(g["x"], rec["z"])
    fake = g["out"]
    if cfg.conditional:
        y_real, y_fake = labels[idx], expected_fake_labels(step, P)
        np.testing.assert_array_equal(label_of(real), y_real, err_msg=f"step {step}: labels in the images")
        np.testing.assert_array_equal(g["labels"], y_fake, err_msg=f"step {step}: G's labels")
    elif clusters is not None:
        y_real = clusters[idx]
        y_fake = host(code_layer.codes(code_layer.device.asarray(expected_noise(step, rec["z"].shape))))
    else:
        y_real = y_fake = None
    if y_real is not None:
        np.testing.assert_array_equal(rec["y_real"], y_real, err_msg=f"step {step}: real labels")
        np.testing.assert_array_equal(rec["y_fake"], y_fake, err_msg=f"step {step}: fake labels")
    # D: the joint batch (real rows, then fake rows), then the fakes again for G's step
    d_step, g_step = rec["D"]
    np.testing.assert_array_equal(d_step["x"][:P], real, err_msg=f"step {step}: D's real rows")
    np.testing.assert_array_equal(d_step["x"][P:], fake, err_msg=f"step {step}: D's fake rows")
    np.testing.assert_array_equal(g_step["x"], fake, err_msg=f"step {step}: D's input in G's step")
    if y_real is not None:
        # each real row beside its own label: the label the image itself carries
        d_real_labels = d_step["labels"][:P]
        np.testing.assert_array_equal(d_real_labels, y_real, err_msg=f"step {step}: D's real labels")
        if cfg.conditional:
            np.testing.assert_array_equal(d_real_labels, label_of(d_step["x"][:P]))
        else:
            np.testing.assert_array_equal(d_real_labels, clusters[index_of(d_step["x"][:P])])
        np.testing.assert_array_equal(d_step["labels"][P:], y_fake, err_msg=f"step {step}: D's fake labels")
        np.testing.assert_array_equal(g_step["labels"], y_fake, err_msg=f"step {step}: D's labels in G's step")
    if m > 1:
        # PacGAN: row k of D's packed input is samples k*m .. k*m+m-1, all real or all fake
        packed = rec["pack"][0]["out"]
        x = d_step["x"]
        np.testing.assert_array_equal(packed, x.reshape(len(x) // m, m * x.shape[1]))
        rows = index_of(packed[:cfg.batch_size].reshape(-1, x.shape[1]))
        np.testing.assert_array_equal(rows, idx, err_msg=f"step {step}: packs")


def clusters_of(trainer, data):
    """The cluster id of each training sample, from the data layer's k-means with the run's seed."""
    k = trainer.config.clusters
    return kmeans(data, k, np.random.default_rng([SEED, KMEANS_STREAM]))[1] if k else None


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_step_draws_what_the_permutation_and_the_keys_say(tmp_path, monkeypatch, device, family):
    t, data, labels = build(tmp_path, "run", device, family)
    rec = Recorder(t, monkeypatch)
    clusters = clusters_of(t, data)
    t.fit(log=quiet)
    cfg, P = t.config, t.config.batch_size * t.config.pack
    spe = len(data) // P
    assert len(rec.steps) == cfg.epochs * spe
    code_layer = t.G.layers[0] if cfg.clusters else None
    for step, r in enumerate(rec.steps):
        check_step(r, step, cfg, data, labels, clusters, code_layer)
    # every training image once per epoch, in an order of its own each epoch
    for e in range(cfg.epochs):
        used = np.concatenate([index_of(r["real"]) for r in rec.steps[e * spe:(e + 1) * spe]])
        np.testing.assert_array_equal(np.sort(used), np.arange(len(data)), err_msg=f"epoch {e}")
    assert not np.array_equal(rec.steps[0]["real"], rec.steps[spe]["real"])
    # no key is shared: steps differ, and the fake labels are not read from the noise's key
    assert not np.allclose(rec.steps[0]["z"], rec.steps[1]["z"])


@pytest.mark.parametrize("family", ["conditional", "packed"])
def test_a_batch_that_does_not_fill_the_epoch_leaves_the_rest_out(tmp_path, monkeypatch, family):
    """36 samples in batches of 8: 4 steps an epoch, each sample at most once, 32 of them."""
    t, data, labels = build(tmp_path, "run", "cpu", family, n=36, epochs=2)
    rec = Recorder(t, monkeypatch)
    t.fit(log=quiet)
    assert len(rec.steps) == 8
    for step, r in enumerate(rec.steps):
        check_step(r, step, t.config, data, labels, clusters_of(t, data), t.G.layers[0])
    for e in range(2):
        used = np.concatenate([index_of(r["real"]) for r in rec.steps[4 * e:4 * e + 4]])
        assert len(set(used)) == 32
        np.testing.assert_array_equal(used, permutation(36, e)[:32])


def test_the_cluster_ids_are_the_k_means_of_the_training_images(tmp_path):
    t, data, _ = build(tmp_path, "run", "cpu", "self-conditioned")
    centres, want = kmeans(data, 4, np.random.default_rng([SEED, KMEANS_STREAM]))
    np.testing.assert_array_equal(t.labels, want)
    # each sample's id is its own nearest centre (the ids belong to these images, in this order)
    flat = data.reshape(len(data), -1).astype(np.float64)
    d2 = ((flat[:, None, :] - centres[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(d2.argmin(axis=1), want)
    assert len(set(want)) > 1


@pytest.mark.parametrize("family,cut", [("plain", 7), ("conditional", 3), ("self-conditioned", 7),
                                        ("packed", 3)])
def test_a_resumed_run_draws_what_an_uninterrupted_one_draws(tmp_path, monkeypatch, device, family, cut):
    """Stopped after ``cut`` steps (4 steps an epoch, a checkpoint every 3 and at each epoch's
    end: step 3 resumes mid-epoch 1, step 7 mid-epoch 2): the resumed run draws the steps from
    its checkpoint on exactly as the whole run."""
    ref, data, labels = build(tmp_path, "ref", device, family, epochs=2)
    whole = Recorder(ref, monkeypatch)
    ref.fit(log=quiet)
    broken, _, _ = build(tmp_path, "cut", device, family, epochs=2)
    fit_until_interrupted(broken, cut)
    done = io.read_checkpoint_meta(tmp_path / "cut" / CHECKPOINT)["global_step"]
    assert 0 < done <= cut
    resumed, _, _ = build(tmp_path, "cut", device, family, epochs=2)
    resumed.restore()
    again = Recorder(resumed, monkeypatch)
    resumed.fit(log=quiet)
    assert len(again.steps) == len(whole.steps) - done
    for i, (a, b) in enumerate(zip(whole.steps[done:], again.steps)):
        for k in ("real", "z", "y_real", "y_fake"):
            if a[k] is None:
                assert b[k] is None
            else:
                np.testing.assert_array_equal(b[k], a[k], err_msg=f"step {done + i}: {k}")
        np.testing.assert_array_equal(b["D"][0]["labels"], a["D"][0]["labels"])
    clusters = clusters_of(resumed, data)
    for i, r in enumerate(again.steps):
        check_step(r, done + i, resumed.config, data, labels, clusters,
                   resumed.G.layers[0] if resumed.config.clusters else None)


# -- which generator draws, scores and samples ------------------------------------------------

def eval_forward(G, z, labels=None):
    """G's output for ``z`` in eval mode, put back in its mode."""
    was = G.training
    G.eval()
    try:
        if labels is not None:
            nn.set_labels(G, G.device.asarray(labels))
        return host(G.forward(G.device.asarray(np.asarray(z, np.float32))))
    finally:
        G.train(was)


@pytest.mark.parametrize("conditional,g_ema", [(False, 0.9), (True, 0.9), (False, 0.0)],
                         ids=["average", "conditional-average", "live"])
def test_pictures_and_checkpoints_come_from_the_generator_the_config_names(tmp_path, monkeypatch, device,
                                                                            conditional, g_ema):
    family = "conditional" if conditional else "plain"
    t, _, _ = build(tmp_path, "run", device, family, epochs=2, g_ema=g_ema, n_samples=8, draw=True)
    drawn = []
    pictures = t.run_log.pictures

    def record(epoch, samples, labels=None):
        drawn.append(host(samples))
        return pictures(epoch, samples, labels=labels)

    monkeypatch.setattr(t.run_log, "pictures", record)
    t.fit(log=quiet)
    assert len(drawn) == 2
    ck = tmp_path / "run" / CHECKPOINT
    # the grid's noise and labels, drawn here: one row per digit when conditional
    y = np.repeat(np.arange(10), 8) if conditional else None
    z = np.random.default_rng([SEED, 1]).standard_normal((80 if conditional else 8, 100)).astype(np.float32)
    G_avg, meta = load_generator(ck, device=device)
    G_live, _ = load_generator(ck, device=device, averaged=False)
    assert meta["generator"] == ("averaged" if g_ema else "live")
    want, live = eval_forward(G_avg, z, y), eval_forward(G_live, z, y)
    np.testing.assert_allclose(drawn[-1], want, rtol=1e-5, atol=1e-6)  # the last epoch's picture
    if g_ema:
        assert np.abs(want - live).max() > 1e-3  # the average is not the live G
        # the checkpoint's average is the trainer's
        for k, a in t.drawing_generator().state_dict().items():
            np.testing.assert_array_equal(host(G_avg.state_dict()[k]), host(a), err_msg=k)
    for k, a in t.G.state_dict().items():
        np.testing.assert_array_equal(host(G_live.state_dict()[k]), host(a), err_msg=k)


def test_scores_come_from_the_average_and_the_live_generator_beside_it(tmp_path, monkeypatch):
    t, _, _ = build(tmp_path, "run", "cpu", "packed", epochs=2, g_ema=0.9, eval_every=1)
    scored = []
    real_score = scoring.score_generator

    def record(G, *a, **kw):
        scored.append({k: host(v) for k, v in G.state_dict().items()})
        return real_score(G, *a, **kw)

    monkeypatch.setattr(trainer_module, "score_generator", record)
    t.fit(log=quiet)
    assert len(scored) == 4  # each epoch: the average, then the live G
    ck = tmp_path / "run" / CHECKPOINT
    G_avg, _ = load_generator(ck)
    G_live, _ = load_generator(ck, averaged=False)
    for k, a in G_avg.state_dict().items():
        np.testing.assert_array_equal(scored[2][k], host(a), err_msg=k)
    for k, a in G_live.state_dict().items():
        np.testing.assert_array_equal(scored[3][k], host(a), err_msg=k)
    assert any(not np.array_equal(scored[2][k], scored[3][k]) for k in scored[2])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny finished runs with a weight average: unconditional and conditional."""
    out = {}
    for family in ("plain", "conditional"):
        tmp = tmp_path_factory.mktemp(family)
        t, _, _ = build(tmp, "run", "cpu", family, epochs=1, g_ema=0.9, draw=True)
        t.fit(log=quiet)
        out[family] = (t, tmp / "run" / CHECKPOINT)
    return out


@pytest.mark.parametrize("family", ["plain", "conditional"])
def test_the_sampler_draws_from_the_average_unless_told_live(trained, family):
    t, ck = trained[family]
    z = np.random.default_rng(5).standard_normal((30, 100))
    y = np.arange(30) % 10 if family == "conditional" else None
    for averaged, G in ((True, t.drawing_generator()), (False, t.G)):
        want = (eval_forward(G, z, y).reshape(30, 28, 28) + 1) / 2
        got = sample(ck, 30, seed=5, averaged=averaged)
        np.testing.assert_allclose(got, want.clip(0, 1), rtol=1e-5, atol=1e-6, err_msg=f"averaged={averaged}")
    if family == "conditional":
        want = (eval_forward(t.drawing_generator(), z[:12], np.full(12, 3)).reshape(12, 28, 28) + 1) / 2
        np.testing.assert_allclose(sample(ck, 12, seed=5, digit=3), want.clip(0, 1), rtol=1e-5, atol=1e-6)


def test_the_sampler_gives_each_sample_its_own_label_across_batches(trained):
    t, ck = trained["conditional"]
    G, _ = load_generator(ck)
    y = np.random.default_rng(2).integers(0, 10, 23)
    z = np.random.default_rng(4).standard_normal((23, 100))
    want = ((eval_forward(G, z, y).reshape(23, 28, 28) + 1) / 2).clip(0, 1)
    np.testing.assert_allclose(generate(G, "mlp", 23, seed=4, batch_size=5, labels=y), want,
                               rtol=1e-5, atol=1e-6)


# -- the data layer ------------------------------------------------------------------------------

def test_mnist_images_keep_each_label_with_its_image(tmp_path, monkeypatch, device):
    """The trainer's MNIST path (``limit``, labels) on a stand-in MNIST whose pixels say which image."""
    n = 100
    y = np.random.default_rng(3).integers(0, 10, n).astype(np.uint8)
    x = np.zeros((n, 28, 28), np.uint8)
    x[:, 0, 0], x[:, 0, 1] = np.arange(n), y
    monkeypatch.setattr(trainer_module, "load_mnist", lambda split="train", **kw: (x, y))
    imgs, labels = trainer_module.mnist_images("mlp", limit=40, labels=True)
    np.testing.assert_array_equal(np.rint((imgs[:, 0] + 1) * 127.5), np.arange(40))
    np.testing.assert_array_equal(labels, y[:40])
    t = Trainer(tiny(tmp_path, "run", device, conditional=True, limit=40, epochs=1), progress=False)
    rec = Recorder(t, monkeypatch)
    t.fit(log=quiet)
    assert len(rec.steps) == 5
    for step, r in enumerate(rec.steps):
        shown = np.rint((r["real"][:, 0] + 1) * 127.5).astype(np.int64)
        np.testing.assert_array_equal(shown, expected_indices(40, 8, step))
        np.testing.assert_array_equal(r["y_real"], y[shown])
        np.testing.assert_array_equal(r["D"][0]["labels"][:8], y[shown])


def test_a_mixture_run_trains_on_the_points_of_its_seed(tmp_path):
    from minigan.data import sample_mixture

    t = Trainer(tiny(tmp_path, "run", "cpu", dataset="ring", model="mlp2d", pack=2, batch_size=4, limit=64), progress=False)
    want = sample_mixture("ring", trainer_module.MIXTURE_POINTS, np.random.default_rng([SEED, 2]))[:64]
    np.testing.assert_array_equal(t.data, want)

"""The MNIST classifier behind the sample scores, built from minigan's own layers.

Network (about 0.47 M parameters), input (N, 1, 28, 28) in [-1, 1]::

    Conv2D(1, 32, 5, stride 2, "same")   -> (N, 32, 14, 14), LeakyReLU(0.2)
    Conv2D(32, 64, 5, stride 2, "same")  -> (N, 64, 7, 7),   LeakyReLU(0.2)
    Flatten                              -> (N, 3136)
    Dense(3136, 128), ReLU               -> (N, 128)   the *features* (penultimate layer)
    Dropout(0.5)
    Dense(128, 10)                       -> (N, 10)    logits

It is trained with Adam on softmax cross-entropy by
``python -m minigan.metrics.train_classifier``, which writes the float32
weights to ``minigan/metrics/mnist_classifier.npz`` (shipped with the
package).  :func:`load_classifier` verifies that file against
:data:`WEIGHTS_SHA256` before use.  If the file is missing it falls back to
a copy cached in ``~/.cache/minigan`` (verified against the hash written
beside it), and if that is missing too it trains one (about ten minutes on
two CPU cores) and caches it.

Public images for the scores are float arrays in [0, 1], shaped (N, 28, 28),
(N, 784) or (N, 1, 28, 28) (what :func:`minigan.gan.sampler.sample` returns),
or uint8 in 0..255 (what :func:`minigan.data.load_mnist` returns).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from .. import losses, nn, optim
from ..data import load_mnist, mnist_home
from ..runtime import devices

WEIGHTS_FILE = Path(__file__).with_name("mnist_classifier.npz")
# SHA-256 of the shipped weight file; train_classifier prints the new value when it rewrites it.
WEIGHTS_SHA256 = "87a51a4d54b45ddde7734d60006c1f6b1f2ed9bb7d8b8e1a080f8fb5a621a169"
CACHE_FILE = "mnist_classifier.npz"
FEATURE_LAYER = 5  # index in the Sequential whose output is the 128-d feature vector (after ReLU)
FEATURE_DIM = 128


class ClassifierError(RuntimeError):
    """The classifier's weight file is missing, corrupt or does not match its hash."""


def build_classifier(dropout: float = 0.5) -> nn.Sequential:
    """A freshly initialised classifier (weights from :func:`minigan.runtime.devices.global_rng`)."""
    net = nn.Sequential(
        nn.Conv2D(1, 32, 5, 2, "same"), nn.LeakyReLU(0.2),
        nn.Conv2D(32, 64, 5, 2, "same"), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Dense(7 * 7 * 64, FEATURE_DIM), nn.ReLU(),
        nn.Dropout(dropout), nn.Dense(FEATURE_DIM, 10),
    )
    return nn.init.apply(net, "he")


def prepare_images(images) -> np.ndarray:
    """Images as the classifier wants them: float32 (N, 1, 28, 28) in [-1, 1].

    uint8 input is read as 0..255; float input as [0, 1] (values outside are
    clipped, so a generator's small overshoots do not matter).
    """
    x = np.asarray(devices.to_numpy(images))
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"expected MNIST-shaped images (N, 28, 28), (N, 784) or (N, 1, 28, 28); "
                         f"got {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255.0)
    elif not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"images must be uint8 or floating point, got {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    x = np.clip(x.astype(np.float32, copy=False), 0.0, 1.0)
    return (x * 2.0 - 1.0).reshape(-1, 1, 28, 28).astype(np.float32)


def _batches(n, batch_size):
    for i in range(0, n, batch_size):
        yield slice(i, min(i + batch_size, n))


def forward_features(model, images, batch_size: int = 500, device=None):
    """``(features (N, 128) float64, logits (N, 10) float64)`` in eval mode, computed on
    ``device`` (the classifier is moved there, and each batch of images with it; default:
    where the classifier is)."""
    x = prepare_images(images)
    dev = model.device if device is None else devices.device(device)
    if model.device is not dev:
        model.to(dev)
    model.eval()
    feats, logits = [], []
    for s in _batches(len(x), batch_size):
        h = dev.asarray(x[s])
        for i, layer in enumerate(model.layers):
            h = layer.forward(h)
            if i == FEATURE_LAYER:
                feats.append(devices.to_numpy(h).astype(np.float64))
        logits.append(devices.to_numpy(h).astype(np.float64))
    if not feats:
        return np.zeros((0, FEATURE_DIM)), np.zeros((0, 10))
    return np.concatenate(feats), np.concatenate(logits)


def predict(model, images, batch_size: int = 500) -> np.ndarray:
    """Predicted digit (N,) int64."""
    return forward_features(model, images, batch_size)[1].argmax(axis=1)


def accuracy(model, images, labels, batch_size: int = 500) -> float:
    return float((predict(model, images, batch_size) == np.asarray(labels)).mean())


# -- weights on disk ------------------------------------------------------------
def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(model, path, info: dict | None = None) -> str:
    """Write the float32 weights (and a JSON ``info`` entry) to ``path``; return its SHA-256."""
    arrays = {k: v.astype(np.float32) for k, v in model.state_dict().items()}
    arrays["info"] = np.array(json.dumps(info or {}))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return sha256_file(path)


def read_weights(path, sha256: str | None = None):
    """``(state dict, info dict)`` from a weight file, after checking its SHA-256 if given."""
    path = Path(path)
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise ClassifierError(
                f"{path}: SHA-256 {got} does not match the expected {sha256}; the file is corrupt "
                f"or was rewritten. Rerun `python -m minigan.metrics.train_classifier` (it prints the "
                f"hash to record) or delete the file to train a fresh one on first use.")
    with np.load(path, allow_pickle=False) as z:
        state = {k: z[k] for k in z.files if k != "info"}
        info = json.loads(str(z["info"])) if "info" in z.files else {}
    return state, info


def _cache_path() -> Path:
    return mnist_home() / CACHE_FILE


_LOADED: dict = {}


def load_classifier(path=None, train_if_missing: bool = True, progress: bool = True):
    """The trained MNIST classifier, in eval mode, on the CPU.

    ``path`` given: that file (verified against ``path + ".sha256"`` if that
    exists).  Otherwise the shipped weights (verified against
    :data:`WEIGHTS_SHA256`), else the user cache, else (with
    ``train_if_missing``) a freshly trained network that is then cached.
    The result is memoised per path.
    """
    key = str(path)
    if key in _LOADED:
        return _LOADED[key]
    # Building (and, as a fallback, training) draws from minigan's global generator; put it
    # back afterwards so that scoring in the middle of a GAN run leaves the run unchanged.
    state = devices.rng_state()
    try:
        model = _load(path, train_if_missing, progress)
    finally:
        devices.set_rng_state(state)
    _LOADED[key] = model
    return model


def _load(path, train_if_missing, progress):
    if path is not None:
        side = Path(str(path) + ".sha256")
        sha = side.read_text().split()[0] if side.exists() else None
        state, info = read_weights(path, sha)
    elif WEIGHTS_FILE.exists():
        state, info = read_weights(WEIGHTS_FILE, WEIGHTS_SHA256)
    else:
        cache = _cache_path()
        side = Path(str(cache) + ".sha256")
        if cache.exists() and side.exists():
            state, info = read_weights(cache, side.read_text().split()[0])
        elif train_if_missing:
            if progress:
                print(f"minigan: no classifier weights at {WEIGHTS_FILE}; training one "
                      f"(a few minutes) and caching it in {cache}", flush=True)
            model, info = train(progress=progress)
            sha = save_weights(model, cache, info)
            side.write_text(f"{sha}  {cache.name}\n")
            state = model.state_dict()
        else:
            raise ClassifierError(f"no classifier weights at {WEIGHTS_FILE} or {cache}")
    model = build_classifier()
    model.load_state_dict(state)
    model.eval()
    model.info = info
    return model


# -- training ---------------------------------------------------------------------
def random_shift(x, rng, max_shift: int = 2):
    """Each image of ``x`` (N, 1, 28, 28) in [-1, 1] moved by up to ``max_shift`` pixels each way.

    Pixels shifted in are background (-1).  Data augmentation for training only.
    """
    n, s = len(x), max_shift
    padded = np.full((n, 1, 28 + 2 * s, 28 + 2 * s), -1.0, dtype=x.dtype)
    padded[:, :, s:s + 28, s:s + 28] = x
    dy, dx = rng.integers(0, 2 * s + 1, size=(2, n))
    rows = dy[:, None] + np.arange(28)[None, :]  # (n, 28)
    cols = dx[:, None] + np.arange(28)[None, :]
    return padded[np.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]][:, None]


def train_step(model, opt, xb, yb, rng, shift: int = 2) -> float:
    """One Adam step of softmax cross-entropy on ``(xb, yb)``, each image first shifted
    by up to ``shift`` pixels (drawn from ``rng``); returns the batch's loss."""
    model.zero_grad()
    if shift:
        xb = random_shift(xb, rng, shift)
    value, grad = losses.softmax_cross_entropy(model.forward(xb), yb)
    model.backward_weights(grad)  # the images need no gradient
    opt.step()
    return value


def train(epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
          progress: bool = True, log=None, shift: int = 2, decay_after: int = 3, decay: float = 0.6):
    """Train the classifier on the MNIST training set; ``(model, info)``.

    Adam (``lr``) on softmax cross-entropy, each image randomly shifted by up to
    ``shift`` pixels; after ``decay_after`` epochs the learning rate is multiplied by
    ``decay`` every epoch.  The info dict holds the test accuracy and the settings.
    """
    log = log or (lambda msg: print(msg, flush=True))
    devices.manual_seed(seed)
    x_train, y_train = load_mnist("train", progress=progress)
    x_test, y_test = load_mnist("test", progress=progress)
    x = prepare_images(x_train)
    y = y_train.astype(np.int64)
    model = build_classifier()
    opt = optim.Adam(model, lr=lr)
    rng = np.random.default_rng([seed, 7])
    t0 = time.perf_counter()
    history = []
    for epoch in range(epochs):
        opt.lr = lr * (decay ** max(0, epoch + 1 - decay_after))
        model.train()
        order = rng.permutation(len(x))
        total, n = 0.0, 0
        for i in range(0, len(x) - batch_size + 1, batch_size):
            idx = order[i:i + batch_size]
            total += train_step(model, opt, x[idx], y[idx], rng, shift)
            n += 1
        acc = accuracy(model, x_test, y_test)
        history.append({"epoch": epoch + 1, "loss": total / n, "test_accuracy": acc, "lr": opt.lr})
        if progress:
            log(f"epoch {epoch + 1}/{epochs}: loss {total / n:.4f}, test accuracy {acc:.4f}, "
                f"{time.perf_counter() - t0:.0f} s")
    model.eval()
    info = {"test_accuracy": history[-1]["test_accuracy"], "epochs": epochs, "batch_size": batch_size,
            "lr": lr, "seed": seed, "shift": shift, "decay_after": decay_after, "decay": decay, "history": history, "seconds": round(time.perf_counter() - t0, 1)}
    return model, info

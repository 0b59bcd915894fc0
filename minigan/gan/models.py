"""Builders for the seed networks, made only of minigan's layers.

Discriminators end on a logit: the sigmoid of the original networks is folded
into the loss (:func:`minigan.losses.bce_with_logits`), which is the same
function computed without overflow.

* MLP GAN: G = Dense 100->128, LeakyReLU, Dense 128->784, Tanh;
  D = Dense 784->128, LeakyReLU, Dense 128->1 (logit).
* DCGAN (the TensorFlow tutorial network): G = Dense 100->7*7*256 (no bias),
  BatchNorm, LeakyReLU, Reshape(256, 7, 7), Conv2DTranspose 128 k5 s1,
  BatchNorm, LeakyReLU, Conv2DTranspose 64 k5 s2, BatchNorm, LeakyReLU,
  Conv2DTranspose 1 k5 s2, Tanh (all "same", no bias); D = Conv2D 64 k5 s2,
  LeakyReLU, Dropout 0.3, Conv2D 128 k5 s2, LeakyReLU, Dropout 0.3, Flatten,
  Dense 6272->1 (logit).  Initialised as in the DCGAN paper: N(0, 0.02).

* The lean conv pair (``"conv"``, the MNIST default, which trains it self-conditioned on
  50 clusters, below; chosen for quality per minute on a CPU, docs/metrics.md):
  G = DiscreteCode(20, 4) (:class:`minigan.nn.DiscreteCode`: the first 20 noise
  coordinates become a one-hot code of their argmax, times 4; conditional G leaves it
  out), Dense 100->7*7*128 (no bias), BatchNorm, LeakyReLU,
  Reshape(128, 7, 7), Conv2DTranspose 64 k4 s2, BatchNorm, LeakyReLU,
  Conv2DTranspose 1 k4 s2, Tanh (all "same", no bias); D = Conv2D 64 k4 s2,
  LeakyReLU, Conv2D 128 k4 s2, LeakyReLU, Flatten, Dense 6272->1 (logit); slopes 0.2,
  no dropout.  About a quarter of the DCGAN's multiply-adds.

Images are (N, 1, 28, 28) in [-1, 1] for the conv nets and (N, 784) for the MLP.

Self-conditioned versions (``build(model, clusters=K)``, Liu et al. 2020, "Diverse image
generation via self-conditioned GANs"; the MNIST default with K = 50): no labels are
used; the trainer clusters the training data (:func:`minigan.data.clusters.kmeans`) and
each sample's cluster plays the part of a label.  G starts with ``DiscreteCode(K, 4,
probs)``, which draws cluster k with the share of the data in it, and D's last Dense
becomes ``LabelProjection(F, K, group=pack)``, told the cluster of each real sample and
the code of each fake.  So D judges every sample against the real samples of its own
cluster.  On MNIST the code takes K of the 100 noise values; the mixtures' G takes
K + 2 (``noise_dim``).

Conditional versions (``build(model, conditional=True)``, Mirza & Osindero 2014, as in
the Keras conditional-GAN example on MNIST) put :class:`minigan.nn.LabelJoin` first in
both networks: G sees ``[z, onehot(y)]`` (N, 100 + 10) in its first Dense; the MLP D
sees ``[x, onehot(y)]`` (N, 784 + 10); the conv D sees the image with 10 constant label
planes, (N, 1 + 10, 28, 28).  Labels are given with ``nn.set_labels(model, y)`` before
each forward.
"""
from __future__ import annotations

from .. import nn
from .mixture_models import MIXTURE_MODEL, MIXTURE_NOISE_DIM, build_mixture

NOISE_DIM = 100
NUM_CLASSES = 10  # MNIST digits, the labels a conditional model takes


def mlp_generator(noise_dim=NOISE_DIM, hidden=128, out_dim=784, slope=0.2, width=1.0):
    hidden = _channels(hidden, width)
    return nn.Sequential(nn.Dense(noise_dim, hidden), nn.LeakyReLU(slope),
                         nn.Dense(hidden, out_dim), nn.Tanh())


def mlp_discriminator(in_dim=784, hidden=128, slope=0.2, width=1.0):
    hidden = _channels(hidden, width)
    return nn.Sequential(nn.Dense(in_dim, hidden), nn.LeakyReLU(slope), nn.Dense(hidden, 1))


def _channels(n, width):
    return max(1, round(n * width))


def dcgan_generator(noise_dim=NOISE_DIM, slope=0.3, init="dcgan", width=1.0):
    """``width`` scales every channel count (1: the tutorial's network; small values make
    the tiny networks the GPU tests run under a simulator)."""
    a, b, c = (_channels(n, width) for n in (256, 128, 64))
    g = nn.Sequential(
        nn.Dense(noise_dim, 7 * 7 * a, bias=False), nn.BatchNorm(7 * 7 * a), nn.LeakyReLU(slope),
        nn.Reshape((a, 7, 7)),
        nn.Conv2DTranspose(a, b, 5, 1, "same", bias=False), nn.BatchNorm(b), nn.LeakyReLU(slope),
        nn.Conv2DTranspose(b, c, 5, 2, "same", bias=False), nn.BatchNorm(c), nn.LeakyReLU(slope),
        nn.Conv2DTranspose(c, 1, 5, 2, "same", bias=False), nn.Tanh(),
    )
    return nn.init.apply(g, init)


def dcgan_discriminator(slope=0.3, dropout=0.3, init="dcgan", in_channels=1, width=1.0):
    a, b = (_channels(n, width) for n in (64, 128))
    d = nn.Sequential(
        nn.Conv2D(in_channels, a, 5, 2, "same"), nn.LeakyReLU(slope), nn.Dropout(dropout),
        nn.Conv2D(a, b, 5, 2, "same"), nn.LeakyReLU(slope), nn.Dropout(dropout),
        nn.Flatten(), nn.Dense(7 * 7 * b, 1),
    )
    return nn.init.apply(d, init)


def conv_generator(noise_dim=NOISE_DIM, slope=0.2, init="dcgan", width=1.0):
    """The lean convolutional generator: two stride-2 transposed convs from 7x7 to 28x28."""
    a, b = (_channels(n, width) for n in (128, 64))
    g = nn.Sequential(
        nn.Dense(noise_dim, 7 * 7 * a, bias=False), nn.BatchNorm(7 * 7 * a), nn.LeakyReLU(slope),
        nn.Reshape((a, 7, 7)),
        nn.Conv2DTranspose(a, b, 4, 2, "same", bias=False), nn.BatchNorm(b), nn.LeakyReLU(slope),
        nn.Conv2DTranspose(b, 1, 4, 2, "same", bias=False), nn.Tanh(),
    )
    return nn.init.apply(g, init)


def conv_discriminator(slope=0.2, init="dcgan", in_channels=1, width=1.0):
    """The lean convolutional discriminator: two stride-2 convs, no dropout."""
    a, b = (_channels(n, width) for n in (64, 128))
    d = nn.Sequential(
        nn.Conv2D(in_channels, a, 4, 2, "same"), nn.LeakyReLU(slope),
        nn.Conv2D(a, b, 4, 2, "same"), nn.LeakyReLU(slope),
        nn.Flatten(), nn.Dense(7 * 7 * b, 1),
    )
    return nn.init.apply(d, init)


BUILDERS = {
    "mlp": (mlp_generator, mlp_discriminator),
    "dcgan": (dcgan_generator, dcgan_discriminator),
    "conv": (conv_generator, conv_discriminator),
}


MNIST_MODEL = "conv"  # the default on MNIST
# Unconditional models whose generator starts with a discrete code carved out of its
# noise, (number of code values, scale of the one-hot): nn.DiscreteCode.  A conditional
# generator gets its discreteness from the digit it is asked for instead.
CODES = {"conv": (20, 4.0)}
MODELS = sorted(BUILDERS) + [MIXTURE_MODEL]  # every model name a checkpoint may hold


CODE_SCALE = 4.0  # of a self-conditioned generator's one-hot cluster code, as of CODES


def build(model: str, pack: int = 1, conditional: bool = False, width: float = 1.0, clusters: int = 0):
    """``(generator, discriminator)`` for ``"conv"``, ``"mlp"``, ``"dcgan"`` or ``"mlp2d"``
    (the 2-D mixtures).

    ``pack`` is PacGAN's packing degree of the discriminator; only ``"mlp2d"`` takes one.
    ``conditional``: class-conditional G and D (MNIST models only), each starting with
    ``nn.LabelJoin(10)``; set their labels with ``nn.set_labels`` before each forward.
    ``clusters``: K > 1 makes the self-conditioned pair (above): G's code draws the
    clusters with equal shares until ``G.layers[0].set_probs`` says otherwise, and D's
    labels are cluster numbers.  ``width`` scales the hidden sizes and channel counts
    (1: the networks above).
    """
    if clusters:
        if conditional:
            raise ValueError("clusters (a self-conditioned GAN) are for unconditional models: the "
                             "conditional ones take the digit instead")
        if clusters < 2:
            raise ValueError(f"clusters must be 0 (none) or at least 2, got {clusters}")
        if model == MIXTURE_MODEL:
            G, D = build_mixture(pack, width, noise_dim=noise_dim(model, clusters))
        else:
            if pack != 1:
                raise ValueError(f"packing (pack={pack}) is implemented for the 2-D mixture model only")
            if clusters > NOISE_DIM:
                raise ValueError(f"clusters: at most {NOISE_DIM} (the code takes that many of the "
                                 f"{NOISE_DIM} noise values), got {clusters}")
            g, d = _builders(model)
            G, D = g(width=width), d(width=width)
        G = nn.Sequential(nn.DiscreteCode(clusters, CODE_SCALE, probs=[1 / clusters] * clusters), *G.layers)
        dense = D.layers[-1]
        head = nn.LabelProjection(dense.in_features, clusters, group=pack)
        head.params["W"][...], head.params["b"][...] = dense.params["W"], dense.params["b"]
        return G, nn.Sequential(*D.layers[:-1], head)
    if model == MIXTURE_MODEL:
        if conditional:
            raise ValueError("conditional models are implemented for MNIST ('mlp', 'dcgan') only")
        return build_mixture(pack, width)
    if pack != 1:
        raise ValueError(f"packing (pack={pack}) is implemented for the 2-D mixture model only")
    g, d = _builders(model)
    if not conditional:
        G = g(width=width)
        if model in CODES:
            G = nn.Sequential(nn.DiscreteCode(*CODES[model]), *G.layers)
        return G, d(width=width)
    G = nn.Sequential(nn.LabelJoin(NUM_CLASSES), *g(noise_dim=NOISE_DIM + NUM_CLASSES, width=width).layers)
    if model == "mlp":
        D = nn.Sequential(nn.LabelJoin(NUM_CLASSES), *d(in_dim=784 + NUM_CLASSES, width=width).layers)
    else:
        D = nn.Sequential(nn.LabelJoin(NUM_CLASSES), *d(in_channels=1 + NUM_CLASSES, width=width).layers)
    return G, D


def _builders(model):
    try:
        return BUILDERS[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; choose from {MODELS}") from None


def image_shape(model: str) -> tuple:
    """One MNIST image as ``model`` takes it: ``(784,)`` for the MLP, ``(1, 28, 28)`` for the conv nets."""
    return (784,) if model == "mlp" else (1, 28, 28)


def noise_dim(model: str, clusters: int = 0) -> int:
    """Length of the generator's noise vector: on MNIST the code of a self-conditioned G
    takes ``clusters`` of its 100 values; the 2-D mixtures' G takes ``clusters`` more."""
    return MIXTURE_NOISE_DIM + clusters if model == MIXTURE_MODEL else NOISE_DIM


def input_width(G) -> int:
    """The noise width ``G`` takes: its first Dense's inputs, less the labels a LabelJoin joins."""
    joined = 0
    for m in G.modules():
        if isinstance(m, nn.LabelJoin):
            joined += m.num_classes
        elif isinstance(m, nn.Dense):
            return m.in_features - joined
    raise ValueError(f"{G!r} has no Dense layer to take noise")

"""``minigan summary``: a model's layers with their output shapes, parameters and
multiply-adds."""
from __future__ import annotations

from ..gan.config import TrainConfig
from ..gan.models import MNIST_MODEL, build, image_shape, noise_dim
from .args import number, quiet_on_closed_pipe

def add_parser(sub):
    p = sub.add_parser("summary", help="the layers of a model: shapes, parameters, multiply-adds",
                       description="Print the generator's and the discriminator's layers: output shape, "
                                   "trainable parameters and multiply-adds per sample (in the GEMMs of "
                                   "Dense and convolution layers), with the totals.")
    p.add_argument("--model", choices=["conv", "dcgan", "mlp"], default=MNIST_MODEL,
                   help=f"network (default {MNIST_MODEL}, the lean conv pair, as minigan train)")
    p.add_argument("--conditional", action="store_true",
                   help="the class-conditional networks (a LabelJoin first in G and D)")
    p.add_argument("--clusters", type=number(int, (0, True)), default=None, metavar="K",
                   help="the self-conditioned networks on K clusters (default: as minigan train "
                        "builds the model, 50 for the unconditional conv pair)")


@quiet_on_closed_pipe
def run(args):
    clusters = args.clusters
    if clusters is None:  # as minigan train builds the model
        clusters = TrainConfig.for_dataset("mnist", model=args.model, conditional=args.conditional).clusters
    try:
        G, D = build(args.model, conditional=args.conditional, clusters=clusters)
    except ValueError as e:
        raise SystemExit(f"minigan summary: {e}") from None
    image = image_shape(args.model)
    # a conditional model takes the same noise and images: its LabelJoin adds the labels
    print(G.summary((noise_dim(args.model),), name="G"))
    print()
    print(D.summary(image, name="D"))

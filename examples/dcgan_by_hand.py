"""The DCGAN of the TensorFlow tutorial, built layer by layer and trained with minigan's GAN step.

    python examples/dcgan_by_hand.py --epochs 1

Every layer is a minigan layer.  Each step is :func:`minigan.gan.step.gan_step`: a D
step on the real and the fake batch, then a G step through the frozen D;
``examples/mlp_gan_by_hand.py`` writes such a step out call by call.
"""
import argparse
import time

import numpy as np

import minigan
from minigan import losses, nn, optim, viz
from minigan.data import load_mnist
from minigan.gan.step import gan_step

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--steps", type=int, default=0, help="stop each epoch after this many steps (0: all)")
p.add_argument("--tiny", action="store_true",
               help="a smoke run on 256 random images instead of MNIST (no download)")
p.add_argument("--out", default="dcgan_by_hand.png")
args = p.parse_args()
minigan.tune_cpu()  # as the minigan command does: BLAS and Numba threads, heap; before any kernel runs

minigan.manual_seed(0)
rng = np.random.default_rng(0)

G = nn.Sequential(
    nn.Dense(100, 7 * 7 * 256, bias=False), nn.BatchNorm(7 * 7 * 256), nn.LeakyReLU(0.3),
    nn.Reshape((256, 7, 7)),
    nn.Conv2DTranspose(256, 128, 5, stride=1, padding="same", bias=False), nn.BatchNorm(128), nn.LeakyReLU(0.3),
    nn.Conv2DTranspose(128, 64, 5, stride=2, padding="same", bias=False), nn.BatchNorm(64), nn.LeakyReLU(0.3),
    nn.Conv2DTranspose(64, 1, 5, stride=2, padding="same", bias=False), nn.Tanh(),
)                                                        # (B, 100) -> (B, 1, 28, 28)
D = nn.Sequential(
    nn.Conv2D(1, 64, 5, stride=2, padding="same"), nn.LeakyReLU(0.3), nn.Dropout(0.3),
    nn.Conv2D(64, 128, 5, stride=2, padding="same"), nn.LeakyReLU(0.3), nn.Dropout(0.3),
    nn.Flatten(), nn.Dense(7 * 7 * 128, 1),
)                                                        # (B, 1, 28, 28) -> (B, 1) logits
nn.init.apply(G, "dcgan")                                # N(0, 0.02), as in the DCGAN paper
nn.init.apply(D, "dcgan")
opt_G = optim.Adam(G, lr=2e-4, betas=(0.5, 0.999))
opt_D = optim.Adam(D, lr=2e-4, betas=(0.5, 0.999))
loss = losses.GANLoss("bce")                             # D: real -> 1, fake -> 0; G: non-saturating

images = (np.random.default_rng(0).integers(0, 256, (256, 28, 28), dtype=np.uint8) if args.tiny
          else load_mnist("train")[0])
X = (images.astype(np.float32) / 127.5 - 1.0).reshape(-1, 1, 28, 28)
B = args.batch_size
steps = len(X) // B if not args.steps else min(args.steps, len(X) // B)

for epoch in range(1, args.epochs + 1):
    t0 = time.perf_counter()
    order = rng.permutation(len(X))
    for i in range(steps):
        real = X[order[i * B:(i + 1) * B]]
        z = rng.standard_normal((B, 100)).astype(np.float32)
        stats = gan_step(G, D, opt_G, opt_D, loss, real, z)   # one D step, then one G step
        if i % 100 == 0:
            print(f"epoch {epoch} step {i}/{steps}: D {stats['d_loss']:.3f}  G {stats['g_loss']:.3f}")
    print(f"epoch {epoch}: {time.perf_counter() - t0:.1f} s")

G.eval()                                                 # BatchNorm uses its running statistics
samples = G.forward(np.random.default_rng(1).standard_normal((64, 100)).astype(np.float32))
viz.save_image_grid(samples, args.out, title=f"DCGAN by hand, {args.epochs} epoch(s)")
print("samples in", args.out)

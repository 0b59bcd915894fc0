"""The MLP GAN training loop written out by hand, every forward and backward call in view.

    python examples/mlp_gan_by_hand.py --epochs 5

G: Dense 100->128, LeakyReLU, Dense 128->784, Tanh.  D: Dense 784->128,
LeakyReLU, Dense 128->1 (a logit; the sigmoid lives in the loss).

The loop stays written out on purpose, one call at a time.  The trainer's step,
:func:`minigan.gan.step.gan_step`, packages the same D step and G step, with two
refinements: real and fake share one pass through a D without BatchNorm, and D's
weight gradients come without dL/dx for the images (``backward_weights``).
"""
import argparse
import time

import numpy as np

import minigan
from minigan import losses, nn, optim, viz
from minigan.data import load_mnist

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--steps", type=int, default=0, help="stop each epoch after this many steps (0: all)")
p.add_argument("--tiny", action="store_true",
               help="a smoke run on 256 random images instead of MNIST (no download)")
p.add_argument("--out", default="mlp_by_hand.png")
args = p.parse_args()
minigan.tune_cpu()  # as the minigan command does: BLAS and Numba threads, heap; before any kernel runs

minigan.manual_seed(0)
rng = np.random.default_rng(0)
G = nn.Sequential(nn.Dense(100, 128), nn.LeakyReLU(0.2), nn.Dense(128, 784), nn.Tanh())
D = nn.Sequential(nn.Dense(784, 128), nn.LeakyReLU(0.2), nn.Dense(128, 1))
opt_G = optim.Adam(G, lr=2e-4, betas=(0.5, 0.999))
opt_D = optim.Adam(D, lr=2e-4, betas=(0.5, 0.999))

images = (np.random.default_rng(0).integers(0, 256, (256, 28, 28), dtype=np.uint8) if args.tiny
          else load_mnist("train")[0])
X = (images.reshape(-1, 784).astype(np.float32) / 127.5 - 1.0)  # pixels in [-1, 1], like tanh
B = args.batch_size

for epoch in range(1, args.epochs + 1):
    t0 = time.perf_counter()
    order = rng.permutation(len(X))
    for i in range(len(X) // B if not args.steps else min(args.steps, len(X) // B)):
        real = X[order[i * B:(i + 1) * B]]
        z = rng.standard_normal((B, 100)).astype(np.float32)
        fake = G.forward(z)                               # (B, 784)

        # Discriminator: push D(real) to 1 and D(fake) to 0.  Gradients add up
        # across the two backward calls until the optimizer step.
        D.zero_grad()
        loss_real, d_out = losses.bce_with_logits(D.forward(real), 1.0)
        D.backward(d_out)
        loss_fake, d_out = losses.bce_with_logits(D.forward(fake), 0.0)
        D.backward(d_out)
        opt_D.step()

        # Generator: push D(fake) to 1 (non-saturating loss).  D is frozen: it
        # passes dL/dfake back but keeps no weight gradients of its own.
        G.zero_grad()
        D.trainable = False
        loss_g, d_out = losses.generator_nonsaturating(D.forward(fake))
        d_fake = D.backward(d_out)                        # dL/dfake, (B, 784)
        G.backward(d_fake)
        D.trainable = True
        opt_G.step()
    print(f"epoch {epoch}: D loss {loss_real + loss_fake:.3f}, G loss {loss_g:.3f}, "
          f"{time.perf_counter() - t0:.1f} s")

samples = G.forward(np.random.default_rng(1).standard_normal((64, 100)).astype(np.float32))
viz.save_image_grid(samples, args.out, title=f"MLP GAN by hand, {args.epochs} epochs")
print("samples in", args.out)

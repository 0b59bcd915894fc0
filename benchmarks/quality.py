"""Sample quality per minute of training: minigan against the same recipe in PyTorch.

Every row of a ``quality.csv`` is one scored epoch of one run::

    system, seed, epoch, train_seconds, frechet, inception_score, classes

``train_seconds`` is the cumulative training time up to the end of that epoch (the
steps only: no scoring, no pictures), and the scores are minigan's own
(:func:`minigan.metrics.scores.mnist_scores`: the project's MNIST classifier, 10,000
samples against the MNIST test set; the numbers ``minigan eval`` prints).

Three subcommands::

    # PyTorch (float32, CPU): the lean conv pair that `minigan train --model conv` trains
    # (--clusters 50: self-conditioned, as minigan's default)
    python benchmarks/quality.py torch --epochs 3 --batch-size 64 --lr 1.5e-3 \\
        --g-ema 0.995 --clusters 50 --seed 0 --threads 2 --out runs/quality/torch-s0

    # minigan runs trained with --eval-every 1, converted to the same rows
    minigan train --model conv --epochs 10 --lr 2e-4 --g-ema 0.999 --eval-every 1 \\
        --seed 0 --out runs/quality/minigan-s0
    python benchmarks/quality.py minigan runs/quality/minigan-s* --label minigan \\
        --out runs/quality/minigan.csv

    # the table (markdown, to stdout) and the figure of docs/metrics.md
    python benchmarks/quality.py report runs/quality/minigan.csv \\
        runs/quality/torch-s*/quality.csv --plot docs/images/quality_per_minute.png

The PyTorch side mirrors minigan's recipe step for step: the same networks and
initialisation (weights N(0, 0.02), BatchNorm gamma N(1, 0.02), biases and beta 0),
BCE on logits with the non-saturating generator loss, real and fake through D as one
batch (D has no BatchNorm), Adam for both, the epoch's batches cut from the same
seeded permutation (``default_rng([seed, epoch])``, full batches only), and optionally
the generator's weight average with BatchNorm statistics re-estimated for it
(:mod:`minigan.gan.averaging`).  Step noise comes from PyTorch's own generator.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import sys
import time
from collections import defaultdict

import numpy as np

COLUMNS = ["system", "seed", "epoch", "train_seconds", "frechet", "inception_score", "classes"]
NOISE_DIM = 100
BN_POINTS, BN_BATCH = 2_500, 500  # as minigan.gan.averaging


# -- PyTorch ---------------------------------------------------------------------------
def torch_discrete_code(torch, k, scale, probs=None):
    """minigan.nn.DiscreteCode as a PyTorch module: the first ``k`` noise coordinates become
    ``scale`` times the one-hot code of their argmax, or, with ``probs``, of the Gumbel-max
    draw ``argmax(log p - log(-log Phi(z)))`` on them (code i with probability p_i)."""

    class DiscreteCode(torch.nn.Module):
        def codes(self, z):
            if probs is None:
                return z[:, :k].argmax(1)
            upper = torch.special.ndtr(-z[:, :k].double())  # 1 - Phi(z), exact in the upper tail
            gumbel = -torch.log(-torch.log1p(-upper))
            return (torch.log(torch.as_tensor(probs, dtype=torch.float64)) + gumbel).argmax(1)

        def forward(self, z):
            code = torch.nn.functional.one_hot(self.codes(z), k).to(z.dtype) * scale
            return torch.cat([code, z[:, k:]], 1)

    return DiscreteCode()


def torch_projection(torch, features, k):
    """minigan.nn.LabelProjection: ``x . w + b + x . E[y]``, E starting at zero; labels in ``.labels``."""

    class Projection(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(features, 1)
            self.embed = torch.nn.Embedding(k, features)
            torch.nn.init.zeros_(self.embed.weight)
            self.labels = None

        def forward(self, x):
            return self.linear(x) + (self.embed(self.labels) * x).sum(1, keepdim=True)

    return Projection()


def torch_conv_pair(torch, clusters=0, probs=None, code=None):
    """The lean conv pair (minigan.gan.models.build("conv", clusters=...): the discrete code,
    then conv_generator; conv_discriminator, ending on the projection head with clusters),
    DCGAN init.  ``code``: G's discrete code as (values, scale); by default minigan's
    (read from minigan.gan.models; a caller that must not import minigan passes it)."""
    if code is None:
        from minigan.gan.models import CODE_SCALE, CODES

        code = (clusters, CODE_SCALE) if clusters else CODES["conv"]
    nn = torch.nn
    code = torch_discrete_code(torch, *code, probs if clusters else None)
    G = nn.Sequential(
        code,
        nn.Linear(NOISE_DIM, 7 * 7 * 128, bias=False), nn.BatchNorm1d(7 * 7 * 128), nn.LeakyReLU(0.2),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, 4, 2, padding=1, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(64, 1, 4, 2, padding=1, bias=False), nn.Tanh())
    head = torch_projection(torch, 7 * 7 * 128, clusters) if clusters else nn.Linear(7 * 7 * 128, 1)
    D = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, padding=1), nn.LeakyReLU(0.2),
        nn.Flatten(), head)
    with torch.no_grad():
        for m in (*G.modules(), *D.modules()):
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.normal_(0.0, 0.02)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.normal_(1.0, 0.02)
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
    return G, D


def recompute_batchnorm(torch, G, z):
    """BatchNorm running statistics of ``G`` as the plain mean over batches of ``z`` (momentum 1/(k+1))."""
    bns = [m for m in G.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    G.train()
    with torch.no_grad():
        for k, i in enumerate(range(0, len(z), BN_BATCH)):
            for bn in bns:
                bn.momentum = 1.0 / (k + 1)
            G(z[i:i + BN_BATCH])
    for bn in bns:
        bn.momentum = 0.1
    G.eval()


def torch_images(torch, G, noise, batch=1000):
    """``G``'s images (N, 1, 28, 28) in [-1, 1] for ``noise`` (N, 100) float32, in eval mode."""
    G.eval()
    with torch.no_grad():
        return np.concatenate([G(torch.from_numpy(noise[i:i + batch])).numpy()
                               for i in range(0, len(noise), batch)])


def score_images(images, classifier):
    """minigan's scores of images in [-1, 1], mapped to [0, 1] as minigan.gan.sampler.generate does."""
    from minigan.metrics.scores import mnist_scores

    x = ((images.reshape(len(images), 28, 28) + 1.0) / 2.0).clip(0.0, 1.0).astype(np.float32)
    return mnist_scores(x, classifier)


def run_torch(args):
    import torch  # before minigan, as a user's script would

    from minigan.data.mnist import load_mnist
    from minigan.metrics.classifier import load_classifier
    from minigan.viz import save_image_grid

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, _ = load_mnist("train", progress=False)
    x = x[:args.limit] if args.limit else x
    data = torch.from_numpy((x.astype(np.float32) / 127.5 - 1.0).reshape(len(x), 1, 28, 28))
    B = args.batch_size
    steps = len(data) // B
    if args.epochs < 1 or steps < 1:
        sys.exit(f"need --epochs >= 1 and one batch of {B} (there are {len(data)} images)")
    labels = probs = None
    if args.clusters:  # minigan's own clusters of the same images: the same labels
        from minigan.data.clusters import kmeans
        from minigan.gan.trainer import KMEANS_STREAM

        t0 = time.perf_counter()
        labels = kmeans(data.numpy(), args.clusters, np.random.default_rng([args.seed, KMEANS_STREAM]))[1]
        probs = np.bincount(labels, minlength=args.clusters) / len(labels)
        labels = torch.from_numpy(labels)
        print(f"{args.clusters} clusters in {time.perf_counter() - t0:.1f} s", flush=True)
    G, D = torch_conv_pair(torch, args.clusters, probs)
    code, head = G[0], D[-1]
    betas = (args.beta1, args.beta2)
    opt_G = torch.optim.Adam(G.parameters(), args.lr, betas, eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), args.lr_d or args.lr, betas, eps=1e-8)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    ones, zeros = torch.ones(B, 1), torch.zeros(B, 1)
    noise_gen = torch.Generator().manual_seed(args.seed)
    ema, G_avg = None, None
    if args.g_ema:
        G_avg = copy.deepcopy(G)
        ema = [p.detach().double().clone() for p in G.parameters()]  # float64, as minigan keeps it
        bn_noise = torch.from_numpy(np.random.default_rng([args.seed, 3])
                                    .standard_normal((BN_POINTS, NOISE_DIM)).astype(np.float32))
    classifier = load_classifier(progress=False)
    score_noise = np.random.default_rng(args.seed).standard_normal((args.n_score, NOISE_DIM)).astype(np.float32)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "quality.csv")
    write_rows(path, [])
    total = 0.0
    for epoch in range(args.epochs):
        perm = np.random.default_rng([args.seed, epoch]).permutation(len(data))
        order = torch.from_numpy(perm[:steps * B].reshape(steps, B))
        G.train()
        t0 = time.perf_counter()
        for s in range(steps):
            real = data[order[s]]
            z = torch.randn(B, NOISE_DIM, generator=noise_gen)
            fake = G(z)
            if labels is not None:  # real images by their cluster, fakes by their code
                y_real, y_fake = labels[order[s]], code.codes(z)
                head.labels = torch.cat([y_real, y_fake])
            out = D(torch.cat([real, fake.detach()]))  # one pass: D has no BatchNorm
            d_loss = bce(out[:B], ones) + bce(out[B:], zeros)
            opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_D.step()
            D.requires_grad_(False)  # G step through the frozen D
            if labels is not None:
                head.labels = y_fake
            g_loss = bce(D(fake), ones)  # non-saturating
            opt_G.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_G.step()
            D.requires_grad_(True)
            if ema is not None:
                with torch.no_grad():
                    for a, p in zip(ema, G.parameters()):
                        a.lerp_(p.double(), 1.0 - args.g_ema)
        total += time.perf_counter() - t0
        if not (math.isfinite(d_loss.item()) and math.isfinite(g_loss.item())):
            sys.exit(f"the losses are not finite after epoch {epoch + 1}")
        drawn = G
        if ema is not None:  # the average's weights with G's buffers, then its own BN statistics
            G_avg.load_state_dict(G.state_dict())
            with torch.no_grad():
                for a, p in zip(ema, G_avg.parameters()):
                    p.copy_(a)
            recompute_batchnorm(torch, G_avg, bn_noise)
            drawn = G_avg
        sc = score_images(torch_images(torch, drawn, score_noise), classifier)
        row = {"system": args.label, "seed": args.seed, "epoch": epoch + 1, "train_seconds": round(total, 3),
               "frechet": sc["frechet"], "inception_score": sc["inception_score"], "classes": sc["n_classes"]}
        write_rows(path, [row], append=True)
        print(f"epoch {epoch + 1}/{args.epochs}: {total:.1f} s training, d_loss {d_loss.item():.3f}, "
              f"g_loss {g_loss.item():.3f}, Fréchet {sc['frechet']:.2f}, IS {sc['inception_score']:.2f}, "
              f"{sc['n_classes']} classes", flush=True)
    grid_noise = np.random.default_rng([args.seed, 1]).standard_normal((64, NOISE_DIM)).astype(np.float32)
    print("samples in", save_image_grid(torch_images(torch, drawn, grid_noise), os.path.join(args.out, "samples.png"),
                                        nrow=8))
    print("rows in", path)


# -- minigan runs ----------------------------------------------------------------------
def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path, rows, append=False):
    new = not append or not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a" if append else "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        if new:
            w.writeheader()
        w.writerows(rows)


def minigan_rows(run_dir, label):
    """quality.csv rows of one minigan run folder (trained with ``--eval-every 1``).

    log.csv's ``seconds`` counts from the start of its epoch (the steps, the log rows and
    any mid-epoch checkpoints; not the scores, pictures or the epoch's own checkpoint), so
    an epoch's training time is the value on its last row.  An epoch resumed from a
    mid-epoch checkpoint counts only its time after the resume.  eval.csv holds the scores
    of the drawn generator: the weight average with ``--g-ema``, else the live one.
    """
    if not os.path.exists(os.path.join(run_dir, "eval.csv")):
        raise SystemExit(f"{run_dir} holds no eval.csv: train it with --eval-every 1")
    with open(os.path.join(run_dir, "config.json")) as f:
        seed = json.load(f).get("seed", 0)
    per_epoch = {}
    for r in read_csv(os.path.join(run_dir, "log.csv")):
        per_epoch[int(r["epoch"])] = float(r["seconds"])  # rows are in order: the last one stays
    cumulative, total = {}, 0.0
    for epoch in sorted(per_epoch):
        total += per_epoch[epoch]
        cumulative[epoch] = total
    rows = []
    for r in read_csv(os.path.join(run_dir, "eval.csv")):
        epoch = int(r["epoch"])
        if epoch not in cumulative:
            raise ValueError(f"{run_dir}: eval.csv scores epoch {epoch}, which log.csv does not hold")
        rows.append({"system": label, "seed": seed, "epoch": epoch, "train_seconds": round(cumulative[epoch], 3),
                     "frechet": float(r["frechet"]), "inception_score": float(r["inception_score"]),
                     "classes": int(r["n_classes"])})
    return rows


def run_minigan(args):
    rows = [row for d in args.runs for row in minigan_rows(d, args.label)]
    if args.out:
        write_rows(args.out, rows)
        print(f"{len(rows)} rows in {args.out}")
    else:
        w = csv.DictWriter(sys.stdout, COLUMNS)
        w.writeheader()
        w.writerows(rows)


# -- the table and the figure -----------------------------------------------------------
def summarise(rows):
    """``{system: [(epoch, n_seeds, stats), ...]}``; stats maps minutes, frechet and
    inception_score to (mean, std over seeds), and min_is to the lowest IS."""
    groups = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[r["system"]][int(r["epoch"])].append(r)
    out = {}
    for system, epochs in groups.items():
        out[system] = []
        for epoch in sorted(epochs):
            rs = epochs[epoch]
            col = {k: np.array([float(r[k]) for r in rs]) for k in ("train_seconds", "frechet", "inception_score")}
            stats = {"minutes": col["train_seconds"] / 60, "frechet": col["frechet"],
                     "inception_score": col["inception_score"]}
            stats = {k: (float(v.mean()), float(v.std())) for k, v in stats.items()}
            stats["min_is"] = float(col["inception_score"].min())
            out[system].append((epoch, len(rs), stats))
    return out


def markdown_table(summary):
    lines = ["| system | epoch | seeds | minutes | Fréchet distance | Inception Score | min IS |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for system, epochs in summary.items():
        for epoch, n, s in epochs:
            pm = " ± ".join
            lines.append(f"| {system} | {epoch} | {n} | {pm(f'{v:.1f}' for v in s['minutes'])} | "
                         f"{pm(f'{v:.2f}' for v in s['frechet'])} | "
                         f"{pm(f'{v:.2f}' for v in s['inception_score'])} | {s['min_is']:.2f} |")
    return "\n".join(lines)


def plot(rows, summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for i, (system, epochs) in enumerate(summary.items()):
        color = f"C{i}"
        mine = [r for r in rows if r["system"] == system]
        for ax, key in zip(axes, ("frechet", "inception_score")):
            ax.plot([s["minutes"][0] for _, _, s in epochs], [s[key][0] for _, _, s in epochs],
                    "-o", color=color, ms=3, label=system)
            ax.scatter([float(r["train_seconds"]) / 60 for r in mine], [float(r[key]) for r in mine],
                       s=12, color=color, alpha=0.4, linewidths=0)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("Fréchet distance (lower is better)")
    axes[1].set_ylabel("Inception Score (higher is better)")
    for ax in axes:
        ax.set_xlabel("training minutes")
        ax.grid(alpha=0.3, which="both")
    # below the panels: inside, the legend hid the curves it names
    fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize="small",
               frameon=False)
    fig.suptitle("MNIST sample quality per minute of training (line: mean over seeds; dots: seeds)")
    fig.tight_layout(rect=(0, 0.04 + 0.045 * math.ceil(len(summary) / 2), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_report(args):
    rows = [r for p in args.csvs for r in read_csv(p)]
    summary = summarise(rows)
    print(markdown_table(summary))
    if args.plot:
        print("plot in", plot(rows, summary, args.plot))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("torch", help="train the lean conv pair in PyTorch and score every epoch")
    t.add_argument("--epochs", type=int, required=True)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--lr-d", type=float, default=0.0, help="D's learning rate (0: --lr)")
    t.add_argument("--beta1", type=float, default=0.5)
    t.add_argument("--beta2", type=float, default=0.999)
    t.add_argument("--g-ema", type=float, default=0.0, help="decay of G's weight average (0: none)")
    t.add_argument("--clusters", type=int, default=0,
                   help="self-conditioned on K k-means clusters, as minigan's default (50); 0: the code alone")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    t.add_argument("--n-score", type=int, default=10_000, help="samples scored after each epoch")
    t.add_argument("--label", default="pytorch")
    t.add_argument("--out", required=True, help="folder for quality.csv and samples.png")
    m = sub.add_parser("minigan", help="quality.csv rows of minigan run folders (--eval-every 1)")
    m.add_argument("runs", nargs="+")
    m.add_argument("--label", default="minigan")
    m.add_argument("--out", help="CSV to write (default: stdout)")
    r = sub.add_parser("report", help="markdown table and plot of quality.csv files")
    r.add_argument("csvs", nargs="+")
    r.add_argument("--plot", help="PNG to draw")
    args = p.parse_args(argv)
    {"torch": run_torch, "minigan": run_minigan, "report": run_report}[args.command](args)


if __name__ == "__main__":
    main()

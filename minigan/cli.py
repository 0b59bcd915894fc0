"""``minigan train | sample | bench | gradcheck``."""
from __future__ import annotations

import argparse
import os
import sys


def _positive(kind):
    def parse(s):
        v = kind(s)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {s}")
        return v
    return parse


def _add_train(sub):
    p = sub.add_parser("train", help="train a GAN on MNIST",
                       description="Train a GAN on MNIST.  With no arguments: the DCGAN, on the CPU, "
                                   "for 2 epochs; pictures go to runs/<model>/.")
    p.add_argument("--model", choices=["dcgan", "mlp"], default=None, help="network (default dcgan)")
    p.add_argument("--loss", choices=["bce", "lsgan", "hinge"], default=None, help="GAN loss (default bce)")
    p.add_argument("--epochs", type=_positive(int), default=None, help="epochs (default 2)")
    p.add_argument("--batch-size", type=_positive(int), default=None, help="batch size (default 64)")
    p.add_argument("--lr", type=_positive(float), default=None, help="Adam learning rate (default 2e-4)")
    p.add_argument("--beta1", type=float, default=None, help="Adam beta1 (default 0.5)")
    p.add_argument("--beta2", type=float, default=None, help="Adam beta2 (default 0.999)")
    p.add_argument("--device", choices=["cpu", "gpu"], default=None, help="where to compute (default cpu)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output directory (default runs/<model>)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    p.add_argument("--checkpoint-every", type=_positive(int), default=None,
                   help="steps between mid-epoch checkpoints (default 200)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--mnist-dir", default=None, help="a directory holding the four MNIST IDX files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _train(args):
    from .gan.trainer import CHECKPOINT, Trainer, TrainConfig  # noqa: PLC0415
    from .io import read_checkpoint_meta  # noqa: PLC0415

    if args.mnist_dir:
        os.environ["MINIGAN_MNIST_DIR"] = args.mnist_dir
    given = {k: v for k, v in {
        "model": args.model, "loss": args.loss, "epochs": args.epochs, "batch_size": args.batch_size,
        "lr": args.lr, "beta1": args.beta1, "beta2": args.beta2, "device": args.device,
        "seed": args.seed, "out": args.out, "limit": args.limit,
        "checkpoint_every": args.checkpoint_every}.items() if v is not None}
    out = given.get("out") or os.path.join("runs", given.get("model", "dcgan"))
    given["out"] = out
    ck = os.path.join(out, CHECKPOINT)
    if args.resume:
        if not os.path.exists(ck):
            raise SystemExit(f"minigan train: --resume, but there is no checkpoint at {ck}")
        saved = read_checkpoint_meta(ck).get("config", {})
        for key in ("model", "loss", "batch_size", "limit", "seed"):
            if key in given and key in saved and given[key] != saved[key]:
                raise SystemExit(f"minigan train: the checkpoint in {out} was trained with "
                                 f"{key}={saved[key]!r}, not {given[key]!r}")
        cfg = TrainConfig.from_dict({**saved, **given})
    else:
        cfg = TrainConfig.from_dict(given)
        for name in ("log.csv", "gradients.csv"):  # a new run starts new logs
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    trainer = Trainer(cfg, progress=not args.quiet)
    if args.resume:
        trainer.restore(ck)
        print(f"resuming {cfg.model} from epoch {trainer.epoch + 1}, step {trainer.step_in_epoch} "
              f"of {trainer.steps_per_epoch}")
    else:
        print(f"training the {cfg.model} GAN ({cfg.loss} loss) on {len(trainer.data)} images for "
              f"{cfg.epochs} epoch(s) of {trainer.steps_per_epoch} steps on the {cfg.device}")
    trainer.fit()
    print(f"done. Pictures: {os.path.join(out, 'samples')}/ (a grid per epoch), "
          f"{os.path.join(out, 'losses.png')}, {os.path.join(out, 'gradient_flow.png')}; "
          f"log: {os.path.join(out, 'log.csv')}; checkpoint: {ck}")


def _add_sample(sub):
    p = sub.add_parser("sample", help="draw samples from a trained generator",
                       description="Write a PNG grid of generated digits, or with an .npz OUT the raw "
                                   "images (key 'images', float32 in [0, 1], shape (N, 28, 28)).")
    p.add_argument("--checkpoint", required=True, help="a checkpoint.npz written by minigan train")
    p.add_argument("--n", type=_positive(int), default=64, help="how many samples (default 64)")
    p.add_argument("--out", default="samples.png", help="output .png or .npz (default samples.png)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")


def _sample(args):
    from .gan.sampler import sample, write_samples  # noqa: PLC0415

    if not os.path.exists(args.checkpoint):
        raise SystemExit(f"minigan sample: no checkpoint at {args.checkpoint}")
    images = sample(args.checkpoint, args.n, args.seed, args.device)
    write_samples(images, args.out)
    print(f"wrote {args.n} samples to {args.out}")


def _gradcheck(args):
    from .gradcheck import run_standard  # noqa: PLC0415

    return 0 if run_standard(tol=args.tol) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="minigan", description="A from-scratch GAN engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_sample(sub)
    pb = sub.add_parser("bench", help="time layers and train steps", add_help=False)
    pb.add_argument("rest", nargs=argparse.REMAINDER)
    pg = sub.add_parser("gradcheck", help="check every layer and loss against finite differences")
    pg.add_argument("--tol", type=float, default=1e-6, help="relative error allowed (default 1e-6)")
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "bench":  # the benchmark harness parses its own arguments
        from .cli_bench import main as bench_main  # noqa: PLC0415

        return bench_main(argv[1:])
    args = parser.parse_args(argv)
    from .io import CheckpointError  # noqa: PLC0415

    try:
        handler = {"train": _train, "sample": _sample, "gradcheck": _gradcheck}[args.command]
        return handler(args) or 0
    except (CheckpointError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"minigan {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

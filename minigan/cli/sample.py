"""``minigan sample``: pictures or arrays drawn from a trained generator, and latent
interpolations."""
from __future__ import annotations

import os

from ..gan.models import MIXTURE_MODEL
from ..gan.sampler import OUTPUT_KINDS, interpolation, sample, sample_rows, write_samples
from ..io import read_checkpoint_meta
from .args import MAX_PICTURE, MAX_SAMPLES, SEED, add_threads, checkpoint_file, number, output_file

def add_parser(sub):
    p = sub.add_parser("sample", help="draw samples from a trained generator",
                       description="Write a PNG grid of generated digits, or with an .npz OUT the raw "
                                   "images (key 'images', float32 in [0, 1], shape (N, 28, 28)).  For a "
                                   "2-D mixture model: a scatter plot over the true modes, or with an "
                                   ".npz OUT the points (key 'points', float32, shape (N, 2)).  From a "
                                   "conditional checkpoint: --digit D gives N images of digit D; "
                                   "without --digit, a grid with one row per digit (10 rows of "
                                   "--per-row images).  With --interpolate: a latent interpolation, "
                                   "--n rows of --steps images, each row walking from one noise "
                                   "vector to another.")
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint.npz written by minigan train, or the run folder holding it")
    p.add_argument("--n", type=number(int, 0, MAX_SAMPLES), default=None,
                   help=f"how many samples (default 64; at most {MAX_PICTURE:,} in a picture, "
                        f"{MAX_SAMPLES:,} in an .npz); from a conditional checkpoint without --digit, "
                        f"a multiple of 10 (N/10 per digit row); with --interpolate, the rows")
    p.add_argument("--out", default="samples.png",
                   help="output picture (.png, .jpg) or array (.npz) (default samples.png)")
    p.add_argument("--seed", type=SEED, default=0, help="noise seed (default 0)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="where to draw (default cpu); gpu needs CuPy seeing a GPU (README: On a GPU); "
                        "a checkpoint written on either device loads on both")
    p.add_argument("--digit", type=int, default=None,
                   help="the digit 0-9 to draw (conditional checkpoints only)")
    p.add_argument("--per-row", type=number(int, 0, MAX_PICTURE // 10), default=None,
                   help="conditional checkpoint without --digit: images per digit row (default 8, "
                        "or --n / 10)")
    p.add_argument("--live", action="store_true",
                   help="from a run trained with --g-ema: draw from the live generator, not the "
                        "weight average")
    p.add_argument("--interpolate", nargs="?", const="slerp", choices=["slerp", "lerp"], default=None,
                   help="a latent interpolation: --n rows (default 8; 10, one per digit, from a "
                        "conditional checkpoint without --digit) of --steps images, row r going from "
                        "noise vector 2r to 2r+1 of --seed (its ends are the samples 2r and 2r+1 "
                        "that 'minigan sample --n 2N' draws with that seed, and --digit).  Spherical "
                        "interpolation (slerp, "
                        "along the arc between the two vectors, keeping the norm of Gaussian noise) "
                        "by default; '--interpolate lerp' goes along the straight line.  A conditional "
                        "checkpoint keeps one digit per row: --digit, or 0-9 in turn")
    p.add_argument("--steps", type=number(int, (2, True), MAX_PICTURE), default=None,
                   help="with --interpolate: images per row, both ends included (default 10)")
    add_threads(p)


def run(args):
    def refuse(msg):
        raise SystemExit(f"minigan sample: {msg}")

    output_file(args.out, "--out", "sample")
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in OUTPUT_KINDS:
        refuse(f"--out {args.out}: write a picture (.png, .jpg, .jpeg) or an array (.npz), "
               f"not {ext or 'a name without an extension'!r}")
    ck = checkpoint_file(args.checkpoint, "sample")
    meta = read_checkpoint_meta(ck)
    conditional = bool(meta.get("conditional", False))
    if args.digit is not None and not conditional:
        refuse(f"--digit needs a conditional checkpoint (minigan train --conditional); {ck} holds an "
               f"unconditional {meta.get('model')!r} generator")
    if args.digit is not None and not 0 <= args.digit <= 9:
        refuse(f"--digit must be one of 0-9, got {args.digit}")
    if args.interpolate is not None:
        return _interpolate(args, ck, meta, ext)
    if args.steps is not None:
        refuse("--steps is the length of an interpolation's rows: it needs --interpolate")
    rows = conditional and args.digit is None
    if args.per_row is not None and not rows:
        refuse("--per-row is for a conditional checkpoint without --digit (one row per digit)")
    if rows:
        if args.n is not None and args.n % 10:
            refuse(f"--n {args.n}: a conditional checkpoint without --digit draws one row per digit, "
                   f"so --n must be a multiple of 10 (or give --per-row, or --digit)")
        if args.n is not None and args.per_row is not None and args.n != 10 * args.per_row:
            refuse(f"--n {args.n} and --per-row {args.per_row} disagree: 10 rows of {args.per_row} "
                   f"are {10 * args.per_row} images")
        per_row = args.per_row or (args.n // 10 if args.n is not None else 8)
        n = 10 * per_row
    else:
        n = 64 if args.n is None else args.n
    if ext != ".npz" and n > MAX_PICTURE:
        refuse(f"--n {n}: at most {MAX_PICTURE:,} images fit in one picture; write an .npz for more")
    if rows:
        images = sample_rows(ck, per_row, args.seed, args.device, not args.live)
        write_samples(images, args.out, row_labels=list(range(10)), nrow=per_row)
        print(f"wrote {len(images)} samples, one row of {per_row} per digit, to {args.out}")
        return
    images = sample(ck, n, args.seed, args.device, digit=args.digit, averaged=not args.live)
    write_samples(images, args.out, dataset=meta.get("dataset"))
    what = f"samples of digit {args.digit}" if args.digit is not None else "samples"
    print(f"wrote {n} {what} to {args.out}")


def _interpolate(args, ck, meta, ext):
    """``minigan sample --interpolate``: rows of images between pairs of noise vectors."""
    def refuse(msg):
        raise SystemExit(f"minigan sample: {msg}")

    if meta.get("model") == MIXTURE_MODEL:
        refuse(f"--interpolate draws images; {ck} holds a 2-D mixture generator ({MIXTURE_MODEL!r}), "
               f"whose samples are points")
    if args.per_row is not None:
        refuse("--per-row is not for --interpolate: give the images per row with --steps")
    conditional = bool(meta.get("conditional", False))
    rows = args.n if args.n is not None else (10 if conditional and args.digit is None else 8)
    steps = 10 if args.steps is None else args.steps
    if ext != ".npz" and rows * steps > MAX_PICTURE:
        refuse(f"--n {rows} rows of --steps {steps}: at most {MAX_PICTURE:,} images fit in one "
               f"picture; write an .npz for more")
    if rows * steps > MAX_SAMPLES:
        refuse(f"--n {rows} rows of --steps {steps}: at most {MAX_SAMPLES:,} images")
    images, digits = interpolation(ck, rows, steps, args.seed, args.device, digit=args.digit,
                                   averaged=not args.live, method=args.interpolate)
    write_samples(images, args.out, row_labels=digits, nrow=steps)
    how = {"slerp": "spherical", "lerp": "linear"}[args.interpolate]
    of = f" of digit {args.digit}" if args.digit is not None else " (digits 0-9 in turn)" if digits else ""
    print(f"wrote {rows} rows{of} of {steps} images ({how} interpolation between noise vectors) "
          f"to {args.out}")

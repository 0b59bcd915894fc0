"""PacGAN's Table 1 on minigan: ring and grid, plain GAN (pack 1) and PacGAN2 (pack 2), over seeds.

    python examples/mixtures_table.py [--seeds 0 1 2 3 4] [--epochs 20] [--out runs/mixtures]

Trains one run per (dataset, pack, seed) with ``minigan train``'s defaults for the mixtures
(100,000 training points, batch 100, Adam 2e-4 falling linearly, self-conditioned on 32
clusters; ``--clusters 0`` for PacGAN's own setting; the MLP pair of
:mod:`minigan.gan.mixture_models`), scores the final generator on 2,500 points, and
prints a Markdown table of mean ± std over the seeds beside the published numbers.
Per-run scores go to ``OUT/results.json`` (runs already there are not redone, so an
interrupted sweep continues where it stopped).  Run it niced on a shared machine::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 19 python examples/mixtures_table.py
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import minigan
from minigan.gan.trainer import Trainer, TrainConfig

# Lin et al. 2018, PacGAN, Table 1 (mean over 10 trials): modes, % high quality, reverse KL.
PUBLISHED = {
    ("ring", 1): (6.3, 98.2, 0.45), ("ring", 2): (7.9, 95.6, 0.07),
    ("grid", 1): (17.3, 94.8, 0.70), ("grid", 2): (23.8, 91.3, 0.13),
}


def run_one(dataset, pack, seed, epochs, out, extra):
    cfg = TrainConfig.for_dataset(dataset, pack=pack, seed=seed, epochs=epochs, out=out, **extra)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, progress=False)
    trainer.fit(log=lambda s: None)
    scores = trainer.evaluate(log=lambda s: None) if not trainer.wants_eval() else None
    if scores is None:  # fit() scored the last epoch already: read it back from eval.csv
        import csv  # noqa: PLC0415

        row = list(csv.DictReader(open(os.path.join(out, "eval.csv"))))[-1]
        scores = {"modes_covered": int(row["modes_covered"]), "high_quality": float(row["high_quality"]),
                  "reverse_kl": float(row["reverse_kl"]), "counts": [int(c) for c in row["counts"].split()]}
    return {"dataset": dataset, "pack": pack, "seed": seed, "epochs": epochs, "clusters": cfg.clusters,
            "seconds": round(time.perf_counter() - t0, 1),
            **{k: scores[k] for k in ("modes_covered", "high_quality", "reverse_kl", "counts")}}


def table(results, seeds):
    lines = ["| data | method | modes (max) | % high quality | reverse KL | runs | published modes | "
             "published % HQ | published KL |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dataset, k in (("ring", 8), ("grid", 25)):
        for pack in (1, 2):
            rs = [r for r in results if r["dataset"] == dataset and r["pack"] == pack and r["seed"] in seeds]
            if not rs:
                continue
            m = np.array([r["modes_covered"] for r in rs], float)
            hq = 100 * np.array([r["high_quality"] for r in rs])
            kl = np.array([r["reverse_kl"] for r in rs])
            pub = PUBLISHED[(dataset, pack)]
            name = "GAN" if pack == 1 else f"PacGAN{pack}"
            lines.append(f"| {dataset} | {name} | {m.mean():.1f} ± {m.std():.1f} ({k}) | "
                         f"{hq.mean():.1f} ± {hq.std():.1f} | {kl.mean():.3f} ± {kl.std():.3f} | {len(rs)} | "
                         f"{pub[0]} | {pub[1]} | {pub[2]} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--datasets", nargs="+", default=["ring", "grid"])
    p.add_argument("--packs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: minigan train's)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--clusters", type=int, default=None,
                   help="self-conditioning's k-means clusters (default: minigan train's, 32; 0 is PacGAN's "
                        "own setting)")
    p.add_argument("--out", default="runs/mixtures")
    args = p.parse_args(argv)
    minigan.tune_cpu()  # as every minigan command does: idle BLAS and Numba threads sleep
    epochs = args.epochs or TrainConfig.for_dataset("ring").epochs
    extra = {"lr": args.lr} if args.lr else {}
    clusters = TrainConfig.for_dataset("ring").clusters if args.clusters is None else args.clusters
    extra["clusters"] = clusters
    os.makedirs(args.out, exist_ok=True)
    res_path = os.path.join(args.out, "results.json")
    results = json.load(open(res_path)) if os.path.exists(res_path) else []
    done = {(r["dataset"], r["pack"], r["seed"], r["epochs"], r.get("clusters", 0)) for r in results}
    for dataset in args.datasets:
        for pack in args.packs:
            for seed in args.seeds:
                if (dataset, pack, seed, epochs, clusters) in done:
                    continue
                out = os.path.join(args.out, f"{dataset}-pack{pack}-k{clusters}-seed{seed}")
                r = run_one(dataset, pack, seed, epochs, out, extra)
                results.append(r)
                with open(res_path, "w") as f:
                    json.dump(results, f, indent=1)
                print(f"{dataset} pack {pack} seed {seed}: {r['modes_covered']} modes, "
                      f"{100 * r['high_quality']:.1f}% HQ, KL {r['reverse_kl']:.3f} ({r['seconds']} s)",
                      flush=True)
    print(table([r for r in results if r["epochs"] == epochs and r.get("clusters", 0) == clusters],
                set(args.seeds)))


if __name__ == "__main__":
    main()

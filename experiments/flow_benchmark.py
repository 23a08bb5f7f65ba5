"""Image-flow benchmark on the embedded digits: the likelihood family's AUROC per OOD set over seeds, wall times
and scoring throughput, through the same CLI a user runs.

    python experiments/flow_benchmark.py [--seeds 0 1 2] [--jobs 1] [--config configs/flow/digits.yaml]
        [--background configs/flow/digits_background.yaml] [--output_root checkpoints/flow_benchmark]
        [--out FILE.json] [--extra --trainer.max_epochs=50 ...]

For every seed S: ``python -m genood.train --config <background> --seed_everything=S --data.init_args.seed=S``
(Ren et al.'s background flow), then the main flow with ``--evaluation.background_ckpt <background>/last.ckpt``,
so one results table holds ``nll``, ``bpd``, ``typicality``, ``complexity`` and ``likelihood_ratio``. Prints
AUROC mean ± std over seeds per (scorer, OOD set), the ID test bits/dim, training and scoring wall times and the
samples/s the evaluator records in results.json's metadata. ``--jobs N`` runs N seeds at once (each run is
its own ``python -m genood.train`` process; wall times then include the contention between them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCORERS = ["nll", "bpd", "typicality", "complexity", "likelihood_ratio"]


def run(config: Path, seed: int, output_root: Path, extra: list[str], *more: str) -> tuple[Path, float]:
    """One ``python -m genood.train`` process; returns its run folder and wall seconds."""
    root = output_root / f"seed{seed}"
    cmd = [sys.executable, "-m", "genood.train", "--config", str(config), f"--output_root={root}",
           f"--seed_everything={seed}", f"--data.init_args.seed={seed}", "--trainer.enable_progress_bar=false",
           "--trainer.enable_model_summary=false", "--evaluation.print_table=false", "--evaluation.plots=false",
           *extra, *more]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    runs = sorted((p.parent for p in root.rglob("results.json")), key=lambda p: p.stat().st_mtime)
    return runs[-1], wall


def one_seed(args, seed: int) -> dict:
    """Background run, then the main run scored with the background's likelihood ratio."""
    from genood.evaluation.report import read_results

    bg_dir, bg_wall = run(args.background, seed, args.output_root / "background", args.extra)
    main_dir, main_wall = run(args.config, seed, args.output_root / "main", args.extra,
                              f"--evaluation.background_ckpt={bg_dir / 'last.ckpt'}")
    res = read_results(main_dir)
    print(f"seed {seed}: background {bg_wall:.0f} s, main {main_wall:.0f} s -> {main_dir}", flush=True)
    return {"seed": seed, "rows": res["rows"], "meta": res["metadata"], "bg_wall": bg_wall, "main_wall": main_wall,
            "id_bpd": id_bits_per_dim(main_dir)}


def id_bits_per_dim(run_dir: Path) -> float:
    """Mean bits/dim of the ID test split from scores.npz (the ``bpd`` scorer is −log P / (D ln 2))."""
    scores = np.load(run_dir / "scores.npz")
    id_key = [k for k in scores.files if k.startswith("score/bpd/") and not scores[f"is_ood/{k.split('/')[2]}"].any()]
    return float(scores[id_key[0]].mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs/flow/digits.yaml")
    p.add_argument("--background", type=Path, default=ROOT / "configs/flow/digits_background.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1, help="seeds run at once")
    p.add_argument("--output_root", type=Path, default=ROOT / "checkpoints/flow_benchmark")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more CLI overrides for both runs")
    p.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    args = p.parse_args()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda s: one_seed(args, s), args.seeds))
    auroc = defaultdict(list)
    info = defaultdict(list)
    for r in results:
        for row in r["rows"]:
            if not row["ood_set"].startswith("mean_"):
                auroc[(row["scorer"], row["ood_set"])].append(row["auroc"])
        meta = r["meta"]
        info["background_wall_s"].append(r["bg_wall"])
        info["main_wall_s"].append(r["main_wall"])
        info["main_train_s"].append(meta["train_seconds"])
        info["main_scoring_s"].append(meta["scoring_seconds"])
        info["samples_per_s"].append(meta["samples_per_second"])
        info["id_test_bpd"].append(r["id_bpd"])

    sets = sorted({s for _, s in auroc}, key=lambda s: [k[1] for k in auroc].index(s))
    scorers = [s for s in SCORERS if any(k[0] == s for k in auroc)]
    print(f"\nAUROC (OOD positive), mean ± std over seeds {args.seeds}")
    print("| OOD set | " + " | ".join(scorers) + " |")
    print("|---" * (len(scorers) + 1) + "|")
    for s in sets:
        cells = []
        for sc in scorers:
            v = np.array(auroc[(sc, s)])
            cells.append(f"{v.mean():.3f} ± {v.std():.3f}")
        print(f"| {s} | " + " | ".join(cells) + " |")
    print()
    for k, v in info.items():
        v = np.array(v, dtype=float)
        print(f"{k}: {v.mean():.2f} ± {v.std():.2f}  ({', '.join(f'{x:.2f}' for x in v)})")
    if args.out:
        args.out.write_text(json.dumps({"seeds": args.seeds,
                                        "auroc": {f"{a}/{b}": v for (a, b), v in auroc.items()},
                                        "info": dict(info)}, indent=1))


if __name__ == "__main__":
    main()

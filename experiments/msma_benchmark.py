"""MSMA on the embedded digits, several seeds: AUROC per OOD set of ``msma_gmm``, ``msma_flow``, ``msma_knn``
(and the single-level norms) as mean ± std, the wall time of each ``python -m genood.train`` run, and two
references on the same splits: kNN on raw pixels (distance to the 5th nearest ID training image, the
strong simple baseline) and, optionally, the HVAE default job.

Each seed is one ``python -m genood.train --config configs/msma/digits.yaml --seed_everything=S`` in a
subprocess (the datamodule's split seed stays 0, so every seed sees the same data; the seed changes the
network initialisation, the training noise and the detectors' seeds stay as configured).

    python experiments/msma_benchmark.py                          # seeds 0 1 2, the digits config
    python experiments/msma_benchmark.py --seeds 0 1 2 --hvae     # + the HVAE default job per seed
    python experiments/msma_benchmark.py --extra --trainer.max_epochs=30 --out msma.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DETECTORS = ["msma_gmm", "msma_flow", "msma_knn"]


def run_cli(config: str, seed: int, root: Path, extra: list[str]) -> tuple[list[dict], float]:
    """One ``genood.train`` run; returns its rows and wall seconds."""
    from genood.evaluation.report import read_rows

    cmd = [sys.executable, "-m", "genood.train", "--config", str(REPO / config), f"--seed_everything={seed}",
           f"--output_root={root}", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
           "--evaluation.print_table=false", "--evaluation.plots=false", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GENOOD_RUN_DIR", None)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    (results,) = sorted(root.rglob("results.json"), key=os.path.getmtime)[-1:]
    return read_rows(results.parent), seconds


def knn_on_pixels(k: int = 5) -> dict[str, float]:
    """AUROC per OOD set of the 5th-neighbour distance on raw pixels (bank = the ID training split)."""
    import torch
    from sklearn.metrics import roc_auc_score

    from genood.data.digits import DigitsDataModule
    from genood.scoring.knn import KNNScorer

    dm = DigitsDataModule(held_out_classes=[8, 9])
    dm.setup()
    stack = lambda ds: torch.stack([ds[i]["x"] for i in range(len(ds))]).flatten(1)  # noqa: E731
    knn = KNNScorer(k=k)
    knn.fit({"features": stack(dm.fit_set)})
    sets = dm.test_sets()
    s_id = knn.score({"features": stack(sets[0].dataset)}).numpy()
    out = {}
    for s in sets[1:]:
        s_ood = knn.score({"features": stack(s.dataset)}).numpy()
        out[s.name] = float(roc_auc_score(np.r_[np.zeros(len(s_id)), np.ones(len(s_ood))], np.r_[s_id, s_ood]))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/msma/digits.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--hvae", action="store_true", help="also run the HVAE default job (configs/default.yaml) per seed")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further CLI overrides for the MSMA runs")
    p.add_argument("--out", default=None, help="write the markdown table here")
    args = p.parse_args(argv)

    per_seed, seconds, hvae_rows, hvae_seconds = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rows, sec = run_cli(args.config, seed, Path(tmp) / f"msma{seed}", args.extra)
            per_seed.append({(r["scorer"], r["ood_set"]): r["auroc"] for r in rows})
            seconds.append(sec)
            print(f"seed {seed}: {sec:.0f} s", file=sys.stderr, flush=True)
            if args.hvae:
                rows, sec = run_cli("configs/default.yaml", seed, Path(tmp) / f"hvae{seed}", [])
                hvae_rows.append({(r["scorer"], r["ood_set"]): r["auroc"] for r in rows})
                hvae_seconds.append(sec)
    pixels = knn_on_pixels()
    sets = [s for (sc, s) in per_seed[0] if sc == DETECTORS[0] and not s.startswith("mean_")]
    def order(name: str) -> tuple:
        return (0, DETECTORS.index(name)) if name in DETECTORS else (1, int(name.split("_l")[-1]))

    scorers = sorted({sc for sc, _ in per_seed[0]}, key=order)
    stat = lambda runs, key: (np.mean([r[key] for r in runs]), np.std([r[key] for r in runs]))  # noqa: E731
    head = ["OOD set", *scorers, "kNN on pixels"] + (["HVAE llr_gt1", "HVAE neg_elbo"] if args.hvae else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in [*sets, *(m for m in ("mean_near", "mean_far") if (DETECTORS[0], m) in per_seed[0])]:
        cells = []
        for sc in scorers:
            m, sd = stat(per_seed, (sc, s))
            cells.append(f"{m:.3f} ± {sd:.3f}")
        if s.startswith("mean_"):
            px = float(np.mean([pixels[t] for t in sets if _group(t) == s[len("mean_"):]]))
        else:
            px = pixels.get(s)
        cells.append(f"{px:.3f}" if px is not None else "–")
        if args.hvae:
            for sc in ("llr_gt1", "neg_elbo"):
                m, sd = stat(hvae_rows, (sc, s))
                cells.append(f"{m:.3f} ± {sd:.3f}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    timing = (f"MSMA wall time per run (train + evaluate): {np.mean(seconds):.0f} ± {np.std(seconds):.0f} s over seeds "
              f"{args.seeds}")
    if args.hvae:
        timing += f"; HVAE: {np.mean(hvae_seconds):.0f} ± {np.std(hvae_seconds):.0f} s"
    print(table)
    print(timing)
    if args.out:
        Path(args.out).write_text(table + "\n\n" + timing + "\n")
    return {"per_seed": [{f"{k[0]}/{k[1]}": v for k, v in r.items()} for r in per_seed], "seconds": seconds,
            "knn_pixels": pixels}


def _group(name: str) -> str:
    from genood.data.digits import DIGITS_OOD_SETS

    return DIGITS_OOD_SETS.get(name, "")


if __name__ == "__main__":
    result = main()
    print(json.dumps(result)[:2000], file=sys.stderr)

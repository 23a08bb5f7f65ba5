"""DTE training time, genood against the official code, on one ADBench file with the released split.

    python experiments/dte_speed.py --official /path/to/DTE --root /path/to/adbench [--dataset 45_wine]

``--official`` is a checkout of the official repository (https://github.com/vicliv/DTE; it is not vendored
here): its ``diffusion/dte.py`` classes ``DTECategorical`` and ``DTEInverseGamma`` are trained with their
defaults (400 epochs, batch 64, Adam 1e-4) on the same training split genood uses
(``TabularDataModule(split="released")``, the released ``DataGenerator``'s split). genood trains through
``python -m genood.train --config configs/dte/adbench.yaml`` with ``--evaluation.scorers`` selecting the heads
(DTE-C alone, DTE-IG alone, both). Every measurement runs in its own process with ``--threads`` CPU threads
(``OMP_NUM_THREADS`` and ``torch.set_num_threads``), one at a time, the two sides alternating; the table gives
the fit's wall seconds (official: around ``fit``; genood: ``train_seconds`` of ``results.json``, the
Lightning ``fit`` call) and the process's CPU seconds over the same span, best of ``--repeats``. CPU seconds
move less than wall seconds when other processes share the machine.
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

REPO = Path(__file__).resolve().parents[1]
GENOOD_HEADS = {"DTE-C": ["dte_c"], "DTE-IG": ["dte_ig"], "DTE-IG + DTE-C": ["dte_ig", "dte_c"]}
OFFICIAL = {"DTE-C": ["DTECategorical"], "DTE-IG": ["DTEInverseGamma"], "DTE-IG + DTE-C": ["DTEInverseGamma", "DTECategorical"]}


def official_worker(a) -> dict:
    """Fit the official classes on the released split; seconds per class."""
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    sys.path.insert(0, str(Path(a.official).resolve()))
    from diffusion import dte  # the official module

    from genood.data.tabular import TabularDataModule

    dm = TabularDataModule(dataset=a.dataset, root=a.root, split="released", seed=a.seed)
    dm.setup()
    out = {}
    for name in a.classes.split(","):
        np.random.seed(a.seed), torch.manual_seed(a.seed)
        model = getattr(dte, name)(seed=a.seed, epochs=a.epochs)
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(dm.X_train.astype(np.float64))
        out[name] = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    return out


def genood_run(a, scorers: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "genood.train", "--config", str(REPO / "configs/dte/adbench.yaml"),
               f"--data.init_args.root={a.root}", f"--data.init_args.dataset={a.dataset}",
               "--data.init_args.split=released", f"--seed_everything={a.seed}", f"--data.init_args.seed={a.seed}",
               f"--trainer.max_epochs={a.epochs}", f"--evaluation.scorers=[{','.join(scorers)}]",
               f"--output_root={tmp}", "--trainer.enable_progress_bar=false", "--evaluation.print_table=false",
               "--evaluation.plots=false", "--trainer.enable_model_summary=false"]
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO, env=_env(a.threads))
        meta = json.loads(next(Path(tmp).glob("*/version_0/results.json")).read_text())["metadata"]
        return {"wall": meta["train_seconds"], "cpu": meta.get("train_cpu_seconds")}


def official_run(a, classes: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--official", a.official, "--root", a.root, "--dataset", a.dataset,
           "--seed", str(a.seed), "--epochs", str(a.epochs), "--threads", str(a.threads), "--classes", ",".join(classes)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO,
                                    env=_env(a.threads)).stdout.strip().splitlines()[-1])
    return {"wall": sum(v["wall"] for v in out.values()), "cpu": sum(v["cpu"] for v in out.values())}


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "WANDB_MODE": "disabled",
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--official", default=None, help="checkout of github.com/vicliv/DTE (omit: genood only)")
    p.add_argument("--root", required=True, help="folder holding ADBench's .npz files")
    p.add_argument("--dataset", default="45_wine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--only", choices=list(GENOOD_HEADS), action="append", help="measure only these (repeatable)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--classes", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(official_worker(a)))
        return
    rows = []
    for what in a.only or list(GENOOD_HEADS):
        best = {"genood": None, "official": None}
        for _ in range(a.repeats):
            for side in ("official", "genood"):
                if side == "official" and not a.official:
                    continue
                r = official_run(a, OFFICIAL[what]) if side == "official" else genood_run(a, GENOOD_HEADS[what])
                if best[side] is None or r["wall"] < best[side]["wall"]:
                    best[side] = r
                print(f"  {what:15s} {side:8s} wall {r['wall']:7.2f} s  cpu {r['cpu']:7.2f} s", flush=True)
        rows.append((what, best))
    print(f"\n{a.dataset}, seed {a.seed}, {a.epochs} epochs, {a.threads} thread(s), best of {a.repeats}; "
          f"load average at the end: {os.getloadavg()[0]:.2f}\n")
    print("| heads | official wall s | official CPU s | genood wall s | genood CPU s |")
    print("|---|---:|---:|---:|---:|")
    fmt = lambda r, k: "–" if r is None else f"{r[k]:.1f}"  # noqa: E731
    for what, b in rows:
        print(f"| {what} | {fmt(b['official'], 'wall')} | {fmt(b['official'], 'cpu')} | {fmt(b['genood'], 'wall')} | "
              f"{fmt(b['genood'], 'cpu')} |")


if __name__ == "__main__":
    main()

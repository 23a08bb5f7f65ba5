"""Scoring speed of single methods, outside any grid (the tables come from ``python -m genood.benchmark``).

    python experiments/scoring_speed.py [--threads 1] [--repeats 3]

1. HVAE (``configs/hvae/digits.yaml``): samples/s of ``score_outputs`` (IW-ELBO with S = 1 and S = 64
   importance samples plus L^{>k} for every configured k, one batched call per batch) on the ID test split.
2. DTE vs its DDPM baseline (``configs/dte/*.yaml`` on wdbc, wine, digits): milliseconds per sample to score
   the whole test split in one batch: DTE-NP / kNN (distance scan to the training bank), DTE-IG / DTE-C (one
   MLP pass), DDPM reconstruction (250 reverse steps); and the DDPM / DTE ratio (the paper's "orders of
   magnitude faster inference").

Scoring cost does not depend on the trained weights, so the models are scored untrained; the benchmark's
``cells.json`` holds the trained runs' end-to-end scoring seconds and samples/s.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def build(config: Path, **data_overrides):
    """The datamodule and model of a genood config (class_path / init_args)."""
    cfg = yaml.safe_load(config.read_text())

    def instantiate(section, **extra):
        module, name = section["class_path"].rsplit(".", 1)
        return getattr(importlib.import_module(module), name)(**{**section.get("init_args", {}), **extra})

    dm = instantiate(cfg["data"], **data_overrides)
    dm.setup()
    return dm, instantiate(cfg["model"], input_shape=dm.input_shape).eval()


def stack(dataset) -> torch.Tensor:
    return torch.stack([dataset[i]["x"] for i in range(len(dataset))])


def best_seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


@torch.inference_mode()
def hvae_throughput(repeats: int, batch: int = 256) -> dict[str, float]:
    dm, model = build(ROOT / "configs/hvae/digits.yaml")
    x = stack(dm.test_sets()[0].dataset)

    def run():
        for i in range(0, len(x), batch):
            model.score_outputs(x[i:i + batch], index=torch.arange(i, min(i + batch, len(x))))

    out = {}
    for s in (1, 64):
        model.score_samples = s
        out[f"S={s}"] = len(x) / best_seconds(run, repeats)
    return out


@torch.inference_mode()
def dte_vs_ddpm(dataset: str, repeats: int) -> dict[str, float]:
    """Milliseconds per test sample of each DTE scorer and of the DDPM reconstruction."""
    dm, dte = build(ROOT / f"configs/dte/{dataset}.yaml")
    _, ddpm = build(ROOT / "configs/dte/ddpm_wdbc.yaml", dataset=dataset)
    x_fit = stack(dm.fit_set)
    x = torch.cat([stack(s.dataset) for s in dm.test_sets()])
    scorers = {s.name: s for s in dte.scorers()}
    fit_out = dte.score_outputs(x_fit)
    for s in scorers.values():
        if s.needs_fit:
            s.fit(fit_out)
    ms = lambda seconds: 1e3 * seconds / len(x)  # noqa: E731
    out = {name: ms(best_seconds(lambda: scorers[name].score({"features": x}), repeats))
           for name in ("dte_np", "knn")}
    out["dte_ig"] = ms(best_seconds(lambda: dte.ig_outputs(x), repeats))
    out["dte_c"] = ms(best_seconds(lambda: dte.c_outputs(x), repeats))
    out["ddpm_recon"] = ms(best_seconds(lambda: ddpm.score_outputs(x, index=torch.arange(len(x))), 1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rates = hvae_throughput(a.repeats)
    print(f"HVAE digits scoring ({a.threads} thread(s)): " + ", ".join(f"{k}: {v:.0f} samples/s" for k, v in rates.items()))
    print("\nScoring time per sample (ms), whole test split in one batch:\n")
    print("| dataset | dte_np | knn | dte_ig | dte_c | ddpm_recon | ddpm / dte_c |\n|---|---|---|---|---|---|---|")
    for d in ("wdbc", "wine", "digits"):
        t = dte_vs_ddpm(d, a.repeats)
        print(f"| {d} | " + " | ".join(f"{t[k]:.4f}" for k in ("dte_np", "knn", "dte_ig", "dte_c", "ddpm_recon"))
              + f" | {t['ddpm_recon'] / t['dte_c']:.0f}x |")


if __name__ == "__main__":
    main()

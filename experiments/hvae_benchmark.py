"""HVAE benchmark on the embedded digits config: training time, scoring throughput, bits/dim and AUROCs.

    python experiments/hvae_benchmark.py [--config configs/hvae/digits.yaml] [--epochs N] [--out FILE.json]

1. trains the model of ``configs/hvae/digits.yaml`` (its trainer epochs, CPU) and reports the wall time;
2. measures scoring throughput (samples/s) of ``score_outputs`` — the IW-ELBO with S = 1 and S = 64 samples
   plus L^{>k} for every configured k, all in one batched network call per batch — on the ID test split;
3. prints the test ELBO in nats and bits/dim and the AUROC of ``neg_elbo``, ``llr_gt1``, ``llr_gt2`` on every
   OOD set of the datamodule plus two constructed sets: ``black`` (all-zero images) and ``half_masked`` (test
   digits with the right half blacked out), where the plain likelihood fails.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]


def build(config: Path):
    """The datamodule and HVAE of a genood config (class_path / init_args), and its trainer epochs."""
    cfg = yaml.safe_load(config.read_text())

    def instantiate(section, **extra):
        module, name = section["class_path"].rsplit(".", 1)
        return getattr(importlib.import_module(module), name)(**extra, **section.get("init_args", {}))

    dm = instantiate(cfg["data"])
    model = instantiate(cfg["model"], input_shape=dm.input_shape)
    return dm, model, cfg["trainer"]["max_epochs"], cfg.get("seed_everything", 0)


def throughput(model, x: torch.Tensor, samples: int, batch: int = 256, repeats: int = 3) -> float:
    """Best-of-``repeats`` samples/s of ``score_outputs`` with ``samples`` importance samples."""
    model.score_samples = samples
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            t = time.perf_counter()
            for i in range(0, len(x), batch):
                model.score_outputs(x[i:i + batch], index=torch.arange(i, min(i + batch, len(x))))
            best = min(best, time.perf_counter() - t)
    return len(x) / best


def main() -> None:
    import lightning as L

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "hvae" / "digits.yaml")
    p.add_argument("--epochs", type=int, default=None, help="override the config's max_epochs")
    p.add_argument("--out", type=Path, default=None, help="also write the numbers to this JSON file")
    args = p.parse_args()

    dm, model, epochs, seed = build(args.config)
    epochs = args.epochs or epochs
    L.seed_everything(seed, verbose=False)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    t = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    train_s = time.perf_counter() - t
    model.eval()

    sets = {s.name: torch.stack([s.dataset[i]["x"] for i in range(len(s.dataset))]) for s in dm.test_sets()}
    id_name = dm.test_sets()[0].name
    x_id = sets[id_name]
    sets["black"] = torch.zeros_like(x_id)
    mask = torch.ones_like(x_id)
    mask[..., x_id.shape[-1] // 2:] = 0
    sets["half_masked"] = x_id * mask

    s_default = model.score_samples
    rates = {f"S={s}": throughput(model, x_id, s) for s in (1, 64)}
    model.score_samples = s_default
    with torch.inference_mode():
        outs = {n: model.score_outputs(x, index=torch.arange(len(x))) for n, x in sets.items()}
    scorers = {s.name: s for s in model.scorers()}
    elbo = outs[id_name]["elbo"].mean().item()
    table = {}
    for name in sets:
        if name == id_name:
            continue
        row = {}
        for sname in ("neg_elbo", "llr_gt1", "llr_gt2"):
            if sname not in scorers:
                continue
            a, b = scorers[sname].score(outs[id_name]).numpy(), scorers[sname].score(outs[name]).numpy()
            row[sname] = float(roc_auc_score(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b]))
        row["mean_elbo"] = outs[name]["elbo"].mean().item()
        table[name] = row

    result = {
        "config": str(args.config), "epochs": epochs, "train_seconds": round(train_s, 1),
        "torch_threads": torch.get_num_threads(), "test_elbo_nats": round(elbo, 2),
        "test_bits_per_dim": round(-elbo / (model.num_dims * math.log(2)), 4),
        "scoring_samples_per_second": {k: round(v, 1) for k, v in rates.items()}, "auroc": table,
    }
    print(f"training: {epochs} epochs in {train_s:.1f} s; test ELBO {elbo:.2f} nats = "
          f"{result['test_bits_per_dim']:.3f} bits/dim")
    print("scoring throughput (IW-ELBO + L^{>k} in one call):",
          ", ".join(f"{k}: {v:.0f} samples/s" for k, v in rates.items()))
    print(f"{'OOD set':16s} {'neg_elbo':>9s} {'llr_gt1':>9s} {'llr_gt2':>9s} {'ELBO':>9s}")
    for name, row in table.items():
        print(f"{name:16s} " + " ".join(f"{row.get(s, float('nan')):9.3f}" for s in ("neg_elbo", "llr_gt1", "llr_gt2"))
              + f" {row['mean_elbo']:9.1f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

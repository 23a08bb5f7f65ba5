"""FlowCon benchmark on the embedded digits: the seed table and the scoring throughput.

``table``: for each seed, ``python -m genood.train --config configs/flowcon/digits.yaml --seed_everything=S`` (in
process, the same code path), then AUROC per OOD set for every scorer of the run (flowcon, flowcon_class,
flowcon_full and the backbone's msp, energy, mahalanobis, knn_feature: one run, one table), mean ± std over
seeds, the backbone's and FlowCon's class-conditional ID test accuracy, and the wall times (training, the
evaluator's scoring pass, total).

``throughput``: on a trained run's ``last.ckpt``, samples/s of (a) feature extraction (the backbone's forward
pass), (b) the flow on the features, (c) each scorer on gathered outputs (fit excluded), (d) the whole
``score_outputs`` + every scorer, at a fixed batch size, each the best of ``--repeats`` timings.

    python experiments/flowcon_benchmark.py table --seeds 0 1 2 --out flowcon_digits.md
    python experiments/flowcon_benchmark.py table --seeds 0 1 2 --set model.init_args.lr=1e-5   # the paper's LR
    python experiments/flowcon_benchmark.py throughput --ckpt checkpoints/flowcon_digits/version_0/last.ckpt
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCORERS = ["flowcon", "flowcon_class", "flowcon_full", "msp", "energy", "mahalanobis", "knn_feature"]


def _outputs(model, dataset, batch_size: int = 500):
    import torch

    xs = torch.stack([dataset[i]["x"] for i in range(len(dataset))])
    ys = torch.tensor([dataset[i]["y"] for i in range(len(dataset))])
    with torch.inference_mode():
        parts = [model.score_outputs(xs[i:i + batch_size]) for i in range(0, len(xs), batch_size)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, ys


def accuracies(ckpt: Path, data_seed: int = 0) -> dict:
    """Backbone accuracy and FlowCon's class-conditional accuracy (argmax_k log N(z; μ_k, σ_k)) on the ID test split."""
    from genood.data.digits import DigitsDataModule
    from genood.models.flowcon import FlowCon, FlowConClassScorer
    from genood.scoring.base import LABELS_KEY

    model = FlowCon.load_from_checkpoint(ckpt, map_location="cpu").eval()
    dm = DigitsDataModule(seed=data_seed)
    dm.setup()
    fit, fit_y = _outputs(model, dm.fit_set)
    test, test_y = _outputs(model, dm.eval_sets[0].dataset)
    s = FlowConClassScorer()
    s.fit({**fit, LABELS_KEY: fit_y})
    return {"acc_backbone": float((test["logits"].argmax(1) == test_y).float().mean()),
            "acc_flowcon_class": float((s.predict(test) == test_y).float().mean())}


def table(args) -> None:
    import torch

    from genood.evaluation.report import read_results
    from genood.train import main

    torch.set_num_threads(args.threads)
    root = Path(args.root or tempfile.mkdtemp(prefix="flowcon_bench_"))
    runs = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        main(["--config", str(REPO / args.config), f"--seed_everything={seed}", f"--output_root={root}",
              f"--experiment=seed{seed}", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
              "--evaluation.print_table=false", "--evaluation.plots=false", "--trainer.accelerator=cpu",
              *[f"--{kv}" for kv in args.set]])
        wall = time.perf_counter() - t0
        run = sorted((root / f"seed{seed}").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))[-1]
        res = read_results(run)
        meta = res["metadata"]
        runs.append({"seed": seed, "run": str(run), "rows": res["rows"], "wall": wall, **accuracies(run / "last.ckpt"),
                     "train_seconds": meta.get("train_seconds"), "scoring_seconds": meta.get("scoring_seconds"),
                     "samples_per_second": meta.get("samples_per_second")})
        print(f"seed {seed}: {wall:.0f} s, {run}", file=sys.stderr)
    text = render(runs, args)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(runs, indent=1))


def _ms(values) -> str:
    v = np.asarray(values, dtype=float) * 100
    return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}"


def render(runs: list, args) -> str:
    sets = [r["ood_set"] for r in runs[0]["rows"] if r["scorer"] == runs[0]["rows"][0]["scorer"]]
    scorers = [s for s in SCORERS if any(r["scorer"] == s for r in runs[0]["rows"])]
    auroc = {(r["scorer"], r["ood_set"]): [] for run in runs for r in run["rows"]}
    for run in runs:
        for r in run["rows"]:
            auroc[(r["scorer"], r["ood_set"])].append(r["auroc"])
    lines = [f"AUROC % (mean ± std over seeds {args.seeds}), `{args.config}` {' '.join(args.set)}", "",
             "| scorer | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for s in scorers:
        lines.append(f"| `{s}` | " + " | ".join(_ms(auroc[(s, o)]) for o in sets) + " |")
    acc_b = [r["acc_backbone"] for r in runs]
    acc_f = [r["acc_flowcon_class"] for r in runs]
    lines += ["", f"ID test accuracy %: backbone {_ms(acc_b)}, FlowCon class-conditional {_ms(acc_f)}",
              "Wall time per run (s, mean over seeds): training {:.0f}, evaluator scoring pass {:.1f}, total {:.0f}; "
              "evaluator throughput {:.0f} samples/s (fit split + every set, all scorers)".format(
                  np.mean([r["train_seconds"] for r in runs]), np.mean([r["scoring_seconds"] for r in runs]),
                  np.mean([r["wall"] for r in runs]), np.mean([r["samples_per_second"] for r in runs]))]
    return "\n".join(lines) + "\n"


def _best(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def throughput(args) -> None:
    import torch

    from genood.data.digits import DigitsDataModule
    from genood.models.flowcon import FlowCon
    from genood.scoring.base import LABELS_KEY

    torch.set_num_threads(args.threads)
    model = FlowCon.load_from_checkpoint(args.ckpt, map_location=args.device).eval()
    dm = DigitsDataModule(seed=0)
    dm.setup()
    sets = dm.test_sets()
    x = torch.cat([torch.stack([s.dataset[i]["x"] for i in range(len(s.dataset))]) for s in sets]).to(args.device)
    n, bs = x.shape[0], args.batch_size
    fit, fit_y = _outputs(model, dm.fit_set)

    def batched(fn, data):
        with torch.inference_mode():
            out = [fn(data[i:i + bs]) for i in range(0, n, bs)]
        if data.is_cuda:
            torch.cuda.synchronize()
        return out

    feats, t_feat = _best(lambda: batched(lambda b: model._flow_features(b)[1], x), args.repeats)
    f_all = torch.cat(feats)
    _, t_flow = _best(lambda: batched(model.flow, f_all), args.repeats)
    outs, t_out = _best(lambda: batched(model.score_outputs, x), args.repeats)
    outs = {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
    lines = [f"{n} samples (digits ID test + every OOD set), batch {bs}, {args.threads} CPU thread(s), device {args.device}",
             f"feature extraction (backbone forward): {n / t_feat:,.0f} samples/s",
             f"flow on features: {n / t_flow:,.0f} samples/s",
             f"score_outputs (backbone + head + flow + base density): {n / t_out:,.0f} samples/s"]
    total = t_out
    for s in model.scorers():
        if s.needs_fit:
            s.fit({**fit, LABELS_KEY: fit_y})
        _, t = _best(lambda: s.score(outs), args.repeats)
        total += t
        lines.append(f"  scorer {s.name:<14} {n / t:>12,.0f} samples/s")
    lines.append(f"feature extraction + flow + all 7 scorers: {n / total:,.0f} samples/s")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("--config", default="configs/flowcon/digits.yaml")
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    t.add_argument("--set", nargs="*", default=[], help="extra CLI overrides without the leading --, e.g. model.init_args.lr=1e-5")
    t.add_argument("--root", default=None, help="output root of the runs (default: a temporary folder)")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--out", default=None)
    h = sub.add_parser("throughput")
    h.add_argument("--ckpt", required=True)
    h.add_argument("--batch_size", type=int, default=500)
    h.add_argument("--threads", type=int, default=1)
    h.add_argument("--device", default="cpu")
    h.add_argument("--repeats", type=int, default=5)
    h.add_argument("--out", default=None)
    args = p.parse_args(argv)
    table(args) if args.cmd == "table" else throughput(args)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()

"""LMD benchmark: inpainting throughput (batched attempts vs a per-attempt loop) and AUROC tables over seeds.

    python experiments/lmd_benchmark.py speed [--config configs/lmd/digits.yaml] [--ckpt RUN/last.ckpt]
                                              [--images 256] [--batch 256] [--steps N] [--attempts R]
                                              [--unet paper --shape 3 32 32] [--repeats 3]
    python experiments/lmd_benchmark.py table RUN_DIR [RUN_DIR ...] [--markdown]
    python experiments/lmd_benchmark.py knn [--config configs/lmd/digits.yaml] [--k 5]

``speed`` builds the model of a config (fresh weights, or a checkpoint's), inpaints the same images twice —
all r attempts of a batch stacked into one UNet call per step (``attempts_per_call=None``), then one attempt
at a time (``attempts_per_call=1``, the released ``recon.py`` loop) — checks that both give the same
reconstructions, and prints images/s, UNet calls and UNet image evaluations (NFE) per image, and the wall-time
ratio (best of ``--repeats`` alternating runs each, with their CPU seconds: timings on a shared machine are
noisy). ``--unet paper --shape 3 32 32`` times the paper's 35.7M-parameter CIFAR U-Net instead (fresh weights).

``table`` reads finished run folders (``results.json``; e.g. one per ``--seed_everything``) and prints the
mean ± sample std (ddof 1) AUROC per (scorer, OOD set) over them.

``knn`` is the simple baseline to put beside them: the distance of each raw-pixel image to its k-th nearest
ID training image (``genood.scoring.knn.KNNScorer``), AUROC on the config's datamodule sets.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _instantiate(section: dict, **extra):
    module, name = section["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**{**section.get("init_args", {}), **extra})


def speed(args) -> dict:
    import sys

    sys.path.insert(0, str(ROOT))
    cfg = yaml.safe_load(Path(args.config).read_text())
    model_args = dict(cfg["model"].get("init_args", {}))
    for key in ("lpips_backbone", "distances"):
        model_args.pop(key, None)
    if args.steps:
        model_args["steps"] = args.steps
    if args.attempts:
        model_args["attempts"] = args.attempts
    if args.unet:
        model_args["unet"] = args.unet
    if args.shape:
        shape = tuple(args.shape)
        x = torch.rand(args.images, *shape, generator=torch.Generator().manual_seed(0))
    else:
        dm = _instantiate(cfg["data"])
        dm.setup()
        test = dm.test_sets()[0].dataset
        x = torch.stack([test[i]["x"] for i in range(min(args.images, len(test)))])
        shape = tuple(x.shape[1:])
    from genood.models.diffusion import ImageDiffusion

    models = {}
    for mode, per_call in (("batched", None), ("loop", 1)):
        torch.manual_seed(0)
        model = ImageDiffusion(input_shape=shape, **{**model_args, "distances": ["mse"], "attempts_per_call": per_call})
        if args.ckpt:
            model.load_state_dict(torch.load(args.ckpt, map_location="cpu", weights_only=False)["state_dict"])
        models[mode] = model.eval()
    runs, outs = {}, {}
    n = len(x)
    for repeat in range(args.repeats):  # alternate the modes; keep each one's best time (shared machines)
        for mode, model in models.items():
            with torch.inference_mode():
                model.inpaint(x[:2], torch.arange(2))  # warm-up
                model.inpainter.unet_calls = model.inpainter.unet_rows = 0
                start, cpu = time.perf_counter(), time.process_time()
                parts = [model.inpaint(x[i:i + args.batch], torch.arange(i, min(i + args.batch, len(x))))
                         for i in range(0, len(x), args.batch)]
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            outs[mode] = torch.cat(parts)
            if mode in runs and runs[mode]["wall_s"] <= wall:
                continue
            runs[mode] = {"images": n, "attempts": model.attempts, "steps": model.inpainter.steps,
                          "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "images_per_s": round(n / wall, 3),
                          "unet_calls": model.inpainter.unet_calls,
                          "unet_calls_per_image": round(model.inpainter.unet_calls / n, 4),
                          "nfe_per_image": model.inpainter.unet_rows / n}
    diff = (outs["batched"] - outs["loop"]).abs().max().item()
    result = {"config": str(args.config), "shape": list(shape), "unet": model_args.get("unet"),
              "batch": args.batch, "torch_threads": torch.get_num_threads(), **runs,
              "unet_call_ratio": runs["loop"]["unet_calls"] / runs["batched"]["unet_calls"],
              "wall_ratio_loop_over_batched": round(runs["loop"]["wall_s"] / runs["batched"]["wall_s"], 3),
              "max_abs_difference": diff}
    print(json.dumps(result, indent=2))
    return result


def table(args) -> dict:
    from genood.evaluation.report import read_rows

    auroc = defaultdict(list)
    for run in args.runs:
        for r in read_rows(Path(run)):
            auroc[(r["scorer"], r["ood_set"])].append(r["auroc"])
    rows = {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)) for k, v in auroc.items()}
    scorers = sorted({k[0] for k in rows})
    sets = list(dict.fromkeys(k[1] for k in rows))
    if args.markdown:
        print("| OOD set | " + " | ".join(scorers) + " |")
        print("|---|" + "---|" * len(scorers))
        for s in sets:
            cells = [f"{rows[(sc, s)][0]:.3f} ± {rows[(sc, s)][1]:.3f}" if (sc, s) in rows else "—" for sc in scorers]
            print(f"| {s} | " + " | ".join(cells) + " |")
    else:
        for (sc, s), (m, sd, n) in rows.items():
            print(f"{sc:12s} {s:18s} {m:.3f} ± {sd:.3f} (n={n})")
    return {f"{k[0]}/{k[1]}": v for k, v in rows.items()}


def knn(args) -> dict:
    from genood.evaluation.metrics import ood_metrics
    from genood.scoring.knn import KNNScorer

    cfg = yaml.safe_load(Path(args.config).read_text())
    dm = _instantiate(cfg["data"])
    dm.setup()
    stack = lambda ds: torch.stack([ds[i]["x"] for i in range(len(ds))]).flatten(1)  # noqa: E731
    scorer = KNNScorer(k=args.k)
    scorer.fit({"features": stack(dm.fit_set)})
    sets = dm.test_sets()
    s_id = scorer.score({"features": stack(sets[0].dataset)}).numpy()
    out = {}
    for es in sets[1:]:
        out[es.name] = float(ood_metrics(s_id, scorer.score({"features": stack(es.dataset)}).numpy())["auroc"])
        print(f"knn (raw pixels, k={args.k})  {es.name:18s} {out[es.name]:.3f}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--config", default=str(ROOT / "configs/lmd/digits.yaml"))
    s.add_argument("--ckpt", default=None)
    s.add_argument("--images", type=int, default=256)
    s.add_argument("--batch", type=int, default=256)
    s.add_argument("--steps", type=int, default=None)
    s.add_argument("--attempts", type=int, default=None)
    s.add_argument("--unet", default=None)
    s.add_argument("--shape", type=int, nargs=3, default=None)
    s.add_argument("--repeats", type=int, default=3)
    t = sub.add_parser("table")
    t.add_argument("runs", nargs="+")
    t.add_argument("--markdown", action="store_true")
    k = sub.add_parser("knn")
    k.add_argument("--config", default=str(ROOT / "configs/lmd/digits.yaml"))
    k.add_argument("--k", type=int, default=5)
    args = p.parse_args()
    {"speed": speed, "table": table, "knn": knn}[args.cmd](args)


if __name__ == "__main__":
    main()

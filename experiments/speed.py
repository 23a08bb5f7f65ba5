"""Speed of single methods, outside any grid: one subcommand per family. The AUROC tables come only from
``python -m genood.benchmark --config experiments/benchmarks/<file>.yaml``; its ``cells.json`` holds every
trained run's end-to-end training / scoring seconds and samples/s.

    python experiments/speed.py hvae    [--config configs/hvae/digits.yaml] [--samples 1 64] [--batch 256]
    python experiments/speed.py dte     [--datasets wdbc wine digits]
    python experiments/speed.py flowcon --ckpt RUN/last.ckpt [--config configs/flowcon/digits.yaml] [--batch 500]
    python experiments/speed.py lmd     [--config configs/lmd/digits.yaml] [--ckpt RUN/last.ckpt] [--images 256]
                                        [--batch 256] [--steps N] [--attempts R] [--unet paper --shape 3 32 32]
    python experiments/speed.py msma    [--config configs/msma/digits.yaml | --ckpt RUN/last.ckpt] [--batch 256]
                                        [--max-rows N] [--device cuda]

Every subcommand takes ``--threads`` (torch CPU threads, default 1), ``--repeats`` (each time is the best of
this many) and ``--out FILE.json``, prints its result as JSON, and records the thread count in it. Times on a
machine shared with other jobs are noisy: report the load (``uptime``) beside them.

* ``hvae``: samples/s of ``score_outputs`` (IW-ELBO with S importance samples plus L^{>k} for every configured
  k, one batched call per batch) on the ID test split, for each S.
* ``dte``: milliseconds per test sample, whole test split in one batch, of DTE-NP / kNN (distance scan to the
  training bank), DTE-IG / DTE-C (one MLP pass) and the DDPM reconstruction (250 reverse steps), and the
  DDPM / DTE-C ratio (the paper's "orders of magnitude faster inference").
* ``flowcon``: on a trained checkpoint, samples/s of feature extraction (the backbone's forward pass), the flow
  on the features, the whole ``score_outputs`` and each scorer on the gathered outputs (fit excluded), over
  the ID test split and every OOD set; and the checkpoint's ID test accuracy (backbone, and FlowCon's
  class-conditional argmax_k), which falls out of the same outputs.
* ``lmd``: inpainting with all r attempts of a batch stacked into one UNet call per step
  (``attempts_per_call=None``) against one attempt at a time (``attempts_per_call=1``, the released
  ``recon.py`` loop): checks that both give the same reconstructions, then images/s, UNet calls and UNet
  image evaluations (NFE) per image and the wall-time ratio (the modes alternate; CPU seconds beside).
* ``msma``: the score-norm features n_i(x) = ‖σ_i s_θ(x, σ_i)‖ of all L levels stacked into one network call
  (what ``MSMA.score_outputs`` does, in calls of at most ``score_max_rows`` rows; ``--max-rows`` overrides it)
  against a loop with one call per level; checks that they agree, then samples/s and the ratio. The network
  is the config's (``configs/msma/cifar10.yaml``: the paper-scale UNet; ``configs/msma/wdbc.yaml``: the MLP).

Scoring cost does not depend on the trained weights, so ``hvae``, ``dte``, ``lmd`` and ``msma`` use freshly
initialised models unless given ``--ckpt``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- shared helpers
def instantiate(section: dict, **extra):
    """The object a config section (``class_path`` / ``init_args``) describes, with ``extra`` arguments."""
    module, name = section["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**{**section.get("init_args", {}), **extra})


def build_data(config: Path, **overrides):
    """The (set-up) datamodule of a genood config."""
    dm = instantiate(yaml.safe_load(Path(config).read_text())["data"], **overrides)
    dm.setup()
    return dm


def build(config: Path, **data_overrides):
    """The datamodule and the freshly initialised model (eval mode) of a genood config."""
    cfg = yaml.safe_load(Path(config).read_text())
    dm = build_data(config, **data_overrides)
    return dm, instantiate(cfg["model"], input_shape=dm.input_shape).eval()


def stack(dataset) -> torch.Tensor:
    """Every ``x`` of a genood dataset as one tensor, in index order."""
    return torch.stack([dataset[i]["x"] for i in range(len(dataset))])


def best_seconds(fn: Callable, repeats: int, device: Optional[torch.device] = None):
    """``(fn's last result, the fastest of repeats wall times)``; CUDA work is synchronised around each."""
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else (lambda: None)
    best, out = float("inf"), None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return out, best


# ---------------------------------------------------------------- families
@torch.inference_mode()
def hvae(args) -> dict:
    dm, model = build(args.config)
    x = stack(dm.test_sets()[0].dataset)

    def run():
        for i in range(0, len(x), args.batch):
            model.score_outputs(x[i:i + args.batch], index=torch.arange(i, min(i + args.batch, len(x))))

    rates = {}
    for s in args.samples:
        model.score_samples = s
        rates[f"S={s}"] = round(len(x) / best_seconds(run, args.repeats)[1], 1)
    return {"config": str(args.config), "images": len(x), "batch": args.batch, "samples_per_s": rates}


@torch.inference_mode()
def dte(args) -> dict:
    out = {}
    for dataset in args.datasets:
        dm, model = build(ROOT / f"configs/dte/{dataset}.yaml")
        _, ddpm = build(ROOT / "configs/dte/ddpm_wdbc.yaml", dataset=dataset)
        x = torch.cat([stack(s.dataset) for s in dm.test_sets()])
        scorers = {s.name: s for s in model.scorers()}
        fit = model.score_outputs(stack(dm.fit_set))
        for s in scorers.values():
            if s.needs_fit:
                s.fit(fit)
        ms = lambda fn, repeats=args.repeats: round(1e3 * best_seconds(fn, repeats)[1] / len(x), 5)  # noqa: E731
        t = {name: ms(lambda: scorers[name].score({"features": x})) for name in ("dte_np", "knn")}
        t["dte_ig"] = ms(lambda: model.ig_outputs(x))
        t["dte_c"] = ms(lambda: model.c_outputs(x))
        t["ddpm_recon"] = ms(lambda: ddpm.score_outputs(x, index=torch.arange(len(x))), 1)
        t["ddpm_over_dte_c"] = round(t["ddpm_recon"] / t["dte_c"], 1)
        out[dataset] = {"test_samples": len(x), "ms_per_sample": t}
    return out


def _batched(fn: Callable, x: torch.Tensor, batch: int) -> list:
    return [fn(x[i:i + batch]) for i in range(0, len(x), batch)]


@torch.inference_mode()
def flowcon(args) -> dict:
    from genood.models.flowcon import FlowCon, FlowConClassScorer
    from genood.scoring.base import LABELS_KEY

    device = torch.device(args.device)
    model = FlowCon.load_from_checkpoint(args.ckpt, map_location=device).eval()
    dm = build_data(args.config)
    sets = dm.test_sets()
    x = torch.cat([stack(s.dataset) for s in sets]).to(device)
    n, bs = len(x), args.batch

    def outputs(data: torch.Tensor) -> dict:
        parts = _batched(model.score_outputs, data, bs)
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    fit = {**outputs(stack(dm.fit_set).to(device)), LABELS_KEY: torch.tensor([dm.fit_set[i]["y"] for i in range(len(dm.fit_set))])}
    feats, t_feat = best_seconds(lambda: _batched(lambda b: model._flow_features(b)[1], x, bs), args.repeats, device)
    _, t_flow = best_seconds(lambda: _batched(model.flow, torch.cat(feats), bs), args.repeats, device)
    outs, t_out = best_seconds(lambda: outputs(x), args.repeats, device)
    scorers, total = {}, t_out
    for s in model.scorers():
        if s.needs_fit:
            s.fit(fit)
        _, t = best_seconds(lambda: s.score(outs), args.repeats)
        scorers[s.name], total = round(n / t, 1), total + t

    test = sets[0].dataset
    y_test = torch.tensor([test[i]["y"] for i in range(len(test))])
    n_test = len(test)  # the ID test split comes first in x
    class_scorer = FlowConClassScorer()
    class_scorer.fit(fit)
    first = {k: v[:n_test] for k, v in outs.items()}
    return {"ckpt": str(args.ckpt), "samples": n, "sets": [s.name for s in sets], "batch": bs, "device": str(device),
            "samples_per_s": {"feature_extraction": round(n / t_feat, 1), "flow_on_features": round(n / t_flow, 1),
                              "score_outputs": round(n / t_out, 1), "scorers": scorers,
                              "score_outputs_and_every_scorer": round(n / total, 1)},
            "id_test_accuracy": {"backbone": float((first["logits"].argmax(1).cpu() == y_test).float().mean()),
                                 "flowcon_class": float((class_scorer.predict(first).cpu() == y_test).float().mean())}}


def lmd(args) -> dict:
    from genood.models.diffusion import ImageDiffusion

    cfg = yaml.safe_load(Path(args.config).read_text())
    model_args = {k: v for k, v in cfg["model"].get("init_args", {}).items() if k not in ("lpips_backbone", "distances")}
    model_args.update({k: v for k, v in (("steps", args.steps), ("attempts", args.attempts), ("unet", args.unet)) if v})
    if args.shape:
        shape = tuple(args.shape)
        x = torch.rand(args.images, *shape, generator=torch.Generator().manual_seed(0))
    else:
        test = build_data(args.config).test_sets()[0].dataset
        x = torch.stack([test[i]["x"] for i in range(min(args.images, len(test)))])
        shape = tuple(x.shape[1:])
    models = {}
    for mode, per_call in (("batched", None), ("loop", 1)):
        torch.manual_seed(0)
        model = ImageDiffusion(input_shape=shape, **{**model_args, "distances": ["mse"], "attempts_per_call": per_call})
        if args.ckpt:
            model.load_state_dict(torch.load(args.ckpt, map_location="cpu", weights_only=False)["state_dict"])
        models[mode] = model.eval()
    runs, outs, n = {}, {}, len(x)
    for _ in range(args.repeats):  # alternate the modes and keep each one's best time
        for mode, model in models.items():
            with torch.inference_mode():
                model.inpaint(x[:2], torch.arange(2))  # warm-up
                model.inpainter.unet_calls = model.inpainter.unet_rows = 0
                start, cpu = time.perf_counter(), time.process_time()
                parts = [model.inpaint(x[i:i + args.batch], torch.arange(i, min(i + args.batch, n)))
                         for i in range(0, n, args.batch)]
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            outs[mode] = torch.cat(parts)
            if mode in runs and runs[mode]["wall_s"] <= wall:
                continue
            calls = model.inpainter.unet_calls
            runs[mode] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "images_per_s": round(n / wall, 3),
                          "unet_calls": calls, "unet_calls_per_image": round(calls / n, 4),
                          "nfe_per_image": model.inpainter.unet_rows / n}
    return {"config": str(args.config), "shape": list(shape), "unet": model_args.get("unet"), "images": n,
            "batch": args.batch, "attempts": models["batched"].attempts, "steps": models["batched"].inpainter.steps,
            **runs, "unet_call_ratio": runs["loop"]["unet_calls"] / runs["batched"]["unet_calls"],
            "wall_ratio_loop_over_batched": round(runs["loop"]["wall_s"] / runs["batched"]["wall_s"], 3),
            "max_abs_difference": (outs["batched"] - outs["loop"]).abs().max().item()}


def msma(args) -> dict:
    from genood.models.msma import MSMA

    if args.ckpt:
        model = MSMA.load_from_checkpoint(args.ckpt, map_location="cpu")
    else:
        cfg = yaml.safe_load(Path(args.config).read_text())
        torch.manual_seed(0)  # the input shape is known from the data section without reading any file
        model = instantiate(cfg["model"], input_shape=instantiate(cfg["data"]).input_shape)
    device = torch.device(args.device)
    model = model.to(device).eval()
    if args.max_rows is not None:
        model.score_max_rows = args.max_rows or None
    x = torch.rand(args.batch, *model.input_shape, device=device)

    def stacked():
        return model.score_outputs(x)["score_norms"]

    def per_level():
        level = lambda i: torch.full((len(x),), i, device=device, dtype=torch.long)  # noqa: E731
        return torch.stack([(model.sigmas[i] * model.score(x, level(i)).float()).flatten(1).norm(dim=1)
                            for i in range(model.num_levels)], dim=1)

    with torch.inference_mode():
        stacked(), per_level()  # warm-up
        a, t_stacked = best_seconds(stacked, args.repeats, device)
        b, t_loop = best_seconds(per_level, args.repeats, device)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    return {"config": None if args.ckpt else str(args.config), "ckpt": str(args.ckpt) if args.ckpt else None,
            "network": model.network, "input_shape": list(model.input_shape), "levels": model.num_levels,
            "batch": args.batch, "params": sum(q.numel() for q in model.parameters()), "device": str(device),
            "score_max_rows": model.score_max_rows, "stacked_samples_per_s": round(args.batch / t_stacked, 1),
            "per_level_loop_samples_per_s": round(args.batch / t_loop, 1),
            "speedup_stacked_over_loop": round(t_loop / t_stacked, 3)}


# ---------------------------------------------------------------- command line
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="family", required=True)

    def family(name: str, help: str, repeats: int = 3) -> argparse.ArgumentParser:
        f = sub.add_parser(name, help=help)
        f.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
        f.add_argument("--repeats", type=int, default=repeats, help=f"best of this many timings (default {repeats})")
        f.add_argument("--out", type=Path, default=None, help="also write the result here (JSON)")
        return f

    f = family("hvae", "HVAE score_outputs samples/s per number of importance samples")
    f.add_argument("--config", type=Path, default=ROOT / "configs/hvae/digits.yaml")
    f.add_argument("--samples", type=int, nargs="+", default=[1, 64], help="importance samples S (default 1 64)")
    f.add_argument("--batch", type=int, default=256)
    f = family("dte", "DTE scorers vs the DDPM reconstruction, ms per sample")
    f.add_argument("--datasets", nargs="+", default=["wdbc", "wine", "digits"])
    f = family("flowcon", "FlowCon feature extraction / flow / scorers samples/s and ID accuracy", repeats=5)
    f.add_argument("--ckpt", type=Path, required=True, help="a FlowCon run's last.ckpt")
    f.add_argument("--config", type=Path, default=ROOT / "configs/flowcon/digits.yaml", help="its data")
    f.add_argument("--batch", type=int, default=500)
    f.add_argument("--device", default="cpu")
    f = family("lmd", "LMD inpainting: stacked attempts vs a per-attempt loop")
    f.add_argument("--config", type=Path, default=ROOT / "configs/lmd/digits.yaml")
    f.add_argument("--ckpt", type=Path, default=None)
    f.add_argument("--images", type=int, default=256)
    f.add_argument("--batch", type=int, default=256)
    f.add_argument("--steps", type=int, default=None)
    f.add_argument("--attempts", type=int, default=None)
    f.add_argument("--unet", default=None, help="UNet preset instead of the config's, e.g. paper")
    f.add_argument("--shape", type=int, nargs=3, default=None, help="random inputs of this shape, e.g. 3 32 32")
    f = family("msma", "MSMA score-norm features: all levels stacked vs a loop over levels", repeats=5)
    f.add_argument("--config", type=Path, default=ROOT / "configs/msma/digits.yaml", help="its network (fresh weights)")
    f.add_argument("--ckpt", type=Path, default=None, help="an MSMA checkpoint instead of --config")
    f.add_argument("--batch", type=int, default=256)
    f.add_argument("--device", default="cpu")
    f.add_argument("--max-rows", type=int, default=None,
                   help="score_max_rows of the stacked path (default: the model's; 0 = one call per batch)")
    return p


def main(argv=None) -> dict:
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {"family": args.family, "torch_threads": torch.get_num_threads(),
              **{"hvae": hvae, "dte": dte, "flowcon": flowcon, "lmd": lmd, "msma": msma}[args.family](args)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()

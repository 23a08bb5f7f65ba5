"""MSMA feature-extraction throughput: all L noise levels stacked into one network call per batch (what
``MSMA.score_outputs`` does) against a Python loop with one call per level, on the same model and inputs.

Both paths compute n_i(x) = ‖σ_i s_θ(x, σ_i)‖₂ for i = 1 … L; the script checks that they agree, then times
each (best of ``--repeats``) and prints samples/s and the ratio. Under ``torch.inference_mode``.

    python experiments/msma_throughput.py                                  # the digits config's UNet
    python experiments/msma_throughput.py --ckpt checkpoints/msma_digits/version_0/last.ckpt
    python experiments/msma_throughput.py --shape 3,32,32 --channels 128,256,256,256 --attention 1 \
        --layers-per-block 2 --batch 250 --device cuda                     # the CIFAR10 config's UNet
    python experiments/msma_throughput.py --network mlp --shape 30 --channels 256,256,256 --batch 512
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _timed(fn, repeats: int, sync) -> tuple[torch.Tensor, float]:
    best, out = float("inf"), None
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return out, best


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default=None, help="an MSMA checkpoint (default: a freshly initialised model)")
    p.add_argument("--network", default="unet", choices=["unet", "refinenet", "mlp"])
    p.add_argument("--shape", default="1,8,8", help="input shape, e.g. 1,8,8 or 3,32,32 or 30")
    p.add_argument("--channels", default="32,64", help="UNet widths / MLP hidden sizes / RefineNet f")
    p.add_argument("--layers-per-block", type=int, default=1)
    p.add_argument("--attention", default="", help="UNet resolutions with attention, e.g. 1")
    p.add_argument("--no-mid-attention", action="store_true", default=None)
    p.add_argument("--levels", type=int, default=10)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-rows", type=int, default=None,
                   help="score_max_rows for the stacked path: chunks of at most this many (sample, level) rows")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from genood.models.msma import MSMA

    if args.ckpt:
        model = MSMA.load_from_checkpoint(args.ckpt, map_location="cpu")
        shape = model.input_shape
    else:
        shape = tuple(_ints(args.shape))
        mid = not args.no_mid_attention if args.network == "unet" and args.shape != "1,8,8" else False
        kw = dict(network=args.network, channels=_ints(args.channels), num_levels=args.levels)
        if args.network == "unet":
            kw.update(layers_per_block=args.layers_per_block, attention_blocks=_ints(args.attention), mid_attention=mid)
        torch.manual_seed(0)
        model = MSMA(input_shape=shape, **kw)
    device = torch.device(args.device)
    model = model.to(device).eval()
    model.score_max_rows = args.max_rows
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x = torch.rand(args.batch, *shape, device=device)
    L = model.num_levels

    def stacked():
        return model.score_outputs(x)["score_norms"]

    def per_level():
        cols = []
        for i in range(L):
            s = model.score(x, torch.full((x.shape[0],), i, device=device, dtype=torch.long))
            cols.append((model.sigmas[i] * s.float()).flatten(1).norm(dim=1))
        return torch.stack(cols, dim=1)

    with torch.inference_mode():
        stacked(), per_level()  # warm-up
        a, t_stacked = _timed(stacked, args.repeats, sync)
        b, t_loop = _timed(per_level, args.repeats, sync)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    n_params = sum(q.numel() for q in model.parameters())
    result = {"network": model.network, "input_shape": list(shape), "levels": L, "batch": args.batch,
              "params": n_params, "device": str(device), "threads": torch.get_num_threads(),
              "score_max_rows": args.max_rows,
              "stacked_samples_per_s": round(args.batch / t_stacked, 1),
              "per_level_loop_samples_per_s": round(args.batch / t_loop, 1),
              "speedup_stacked_over_loop": round(t_loop / t_stacked, 3)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

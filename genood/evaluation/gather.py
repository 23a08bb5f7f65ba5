"""DDP-exact collection of per-sample outputs (the README, "Exact evaluation on many GPUs").

Each rank holds the outputs of the samples its DistributedSampler gave it, including the sampler's padded
repeats. :func:`gather_unique` all-gathers them (ranks may hold different counts), drops repeated
indices and sorts by index, so the result equals a single-process run sample for sample.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.distributed as dist


def _all_gather_padded(t: torch.Tensor) -> torch.Tensor:
    """All-gather tensors whose first dimension differs across ranks; returns them concatenated in rank order."""
    if t.dtype == torch.bool:  # gloo cannot gather bools
        return _all_gather_padded(t.to(torch.uint8)).bool()
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    pad = max(sizes) - t.shape[0]
    padded = torch.cat([t, t.new_zeros((pad, *t.shape[1:]))]) if pad else t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def gather_unique(index: torch.Tensor, outputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Gather ``(index, outputs)`` from every rank, keep one row per index, sorted by index.

    Works unchanged in a single process (no process group): it then only de-duplicates and sorts.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        index = _all_gather_padded(index)
        # the same collective order on every rank: dict/set order is not (string hashing differs per process)
        outputs = {k: _all_gather_padded(outputs[k]) for k in sorted(outputs)}
    order = torch.argsort(index, stable=True)
    index = index[order]
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]
    sel = order[keep]
    return index[keep], {k: v[sel] for k, v in outputs.items()}

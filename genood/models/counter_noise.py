"""Counter-based standard-normal noise: the posterior noise of a scored sample depends only on
``(seed, sample index, importance-sample id, layer, element)``, never on which other samples share its batch.

This is what makes HVAE scores identical under DDP and in a single process (the evaluator compares them),
and independent of batch size and of how importance samples are chunked. torch has no counter-based RNG,
so the noise is built from a bijective 32-bit integer hash ("lowbias32", C. Wellons' hash-prospector)
applied to the counter, mapped to a uniform in (0, 1) and through the inverse normal CDF. Everything is
vectorised integer arithmetic on the tensors' device; products are split into 16-bit halves so that no
intermediate value leaves int64's range (no reliance on overflow behaviour).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, m: int) -> torch.Tensor:
    """(x * m) mod 2^32 for x in [0, 2^32) (int64), computed without int64 overflow."""
    lo, hi = m & 0xFFFF, m >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash with good avalanche (lowbias32); int64 in, int64 in [0, 2^32) out."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def row_keys(seed: int, index: torch.Tensor, sample_id: torch.Tensor, stream: int) -> torch.Tensor:
    """One 32-bit key per row from (seed, index, sample_id, stream); all int64 ``[R]``."""
    h = mix32(torch.full_like(index, seed & _MASK32) ^ 0x9E3779B9)
    h = mix32(h ^ (index & _MASK32))
    h = mix32(h ^ (index >> 32))
    h = mix32(h ^ (sample_id & _MASK32))
    return mix32(h ^ (stream & _MASK32))


def counter_normal(seed: int, index: torch.Tensor, sample_id: torch.Tensor, stream: int, shape: Sequence[int],
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard-normal noise of shape ``[R, *shape]``; row r depends only on
    ``(seed, index[r], sample_id[r], stream, element)``.

    ``index`` and ``sample_id`` are integer tensors ``[R]`` (on the device the noise is wanted on).
    """
    index, sample_id = index.long(), sample_id.long()
    keys = row_keys(seed, index, sample_id, stream)[:, None]                # [R, 1]
    n = math.prod(shape)
    element = torch.arange(n, device=index.device, dtype=torch.long)[None]  # [1, n]
    bits = mix32(mix32(keys ^ element) ^ keys)                              # [R, n], uniform over 2^32
    u = (bits.double() + 0.5) / 2.0 ** 32                                    # in (0, 1) strictly
    return torch.special.ndtri(u).to(dtype).view(-1, *shape)

"""LMD's lift step: the masks (Liu et al. 2023, §3.1; the released ``mask_utils.py``). **1 = known pixel.**

==================  ==========================================================================================
``checkerboard_alt``  (default) an n × n checkerboard of square blocks (n = ``blocks`` per side); attempt j uses
                      M for even j and its complement 1 − M for odd j, so each consecutive pair of attempts
                      covers every pixel once. M has its top-left block known.
``checkerboard``      the same M for every attempt.
``center``            all known except the central square of half the side ([S/4, 3S/4) in both axes).
``random``            SimMIM-style: the image is cut into ``patch`` × ``patch`` patches and ⌈ratio · #patches⌉
                      of them are known (the released code draws the known patches with SimMIM's mask
                      generator, whose "masked" patches become LMD's known ones).
==================  ==========================================================================================

The released ``random`` mask is one draw per batch call (shared by the batch, a new one per attempt). Here
it is drawn per (seed, sample index, attempt) with the counter-based noise, so a sample's mask does not
depend on its batch or DDP rank.
"""

from __future__ import annotations

import math

import torch

from genood.models.counter_noise import counter_normal

MASK_TYPES = ("checkerboard_alt", "checkerboard", "center", "random")
RANDOM_MASK_STREAM = 0x7FFF0000  # a counter stream no sampling step uses


def check_mask_geometry(mask_type: str, size: int, blocks: int = 8, patch: int = 4, ratio: float = 0.5) -> None:
    """A ValueError when the mask cannot be laid on a ``size`` × ``size`` image."""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask must be one of {MASK_TYPES}, got {mask_type!r}")
    if mask_type in ("checkerboard", "checkerboard_alt") and (blocks < 2 or size % blocks):
        raise ValueError(f"a {mask_type} mask needs the image side ({size}) divisible by mask_blocks ({blocks} >= 2)")
    if mask_type == "random":
        if patch < 1 or size % patch:
            raise ValueError(f"a random mask needs the image side ({size}) divisible by mask_patch ({patch})")
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"mask_ratio must lie in (0, 1), got {ratio}")
    if mask_type == "center" and size < 4:
        raise ValueError(f"a center mask needs images of at least 4 pixels, got {size}")


def checkerboard(size: int, blocks: int, inverted: bool = False) -> torch.Tensor:
    """``[size, size]`` checkerboard of ``blocks`` × ``blocks`` squares, block (0, 0) known (0 when inverted)."""
    ij = torch.arange(blocks)
    known = ((ij[:, None] + ij[None, :]) % 2 == 0).float()
    if inverted:
        known = 1.0 - known
    side = size // blocks
    return known.repeat_interleave(side, 0).repeat_interleave(side, 1)


def center(size: int) -> torch.Tensor:
    m = torch.ones(size, size)
    lo, hi = size // 4, int(size * 3 / 4)
    m[lo:hi, lo:hi] = 0.0
    return m


def make_masks(mask_type: str, size: int, attempts: torch.Tensor, index: torch.Tensor, seed: int = 0,
               blocks: int = 8, patch: int = 4, ratio: float = 0.5) -> torch.Tensor:
    """One mask per row, ``[R, 1, size, size]`` (broadcast over channels), for rows with attempt numbers
    ``attempts`` ``[R]`` and sample indices ``index`` ``[R]`` (the latter only matter for ``random``)."""
    check_mask_geometry(mask_type, size, blocks, patch, ratio)
    device = attempts.device
    if mask_type in ("checkerboard", "checkerboard_alt"):
        m = checkerboard(size, blocks).to(device)
        if mask_type == "checkerboard":
            return m.expand(len(attempts), 1, size, size).clone()
        odd = (attempts % 2 == 1).view(-1, 1, 1, 1).float()
        return m * (1 - odd) + (1 - m) * odd
    if mask_type == "center":
        return center(size).to(device).expand(len(attempts), 1, size, size).clone()
    n = size // patch
    tokens = n * n
    known = math.ceil(tokens * ratio)
    keys = counter_normal(seed, index, attempts, RANDOM_MASK_STREAM, (tokens,))  # a random order per row
    rank = keys.argsort(dim=1).argsort(dim=1)
    m = (rank < known).float().view(-1, 1, n, n)
    return m.repeat_interleave(patch, 2).repeat_interleave(patch, 3)

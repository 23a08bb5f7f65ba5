"""Seeded synthetic OOD images of any shape, intensities in [0, 1] (far-OOD sets for any image benchmark).

=================  ==========================================================================
name               what it is
=================  ==========================================================================
uniform_noise      i.i.d. U(0, 1) pixels
gaussian_noise     i.i.d. N(0.5, 0.25^2) pixels clipped to [0, 1]
constant           one intensity per image (all channels), drawn U(0, 1): a low-complexity set
blank              all-dark images with faint N(0, 0.05^2) speckle clipped at 0
black              all-zero images: the simplest input there is
=================  ==========================================================================

The same ``(name, n, shape, seed)`` gives the same images on every run and every DDP rank. Datamodules seed
each set with :func:`set_seed`, so a set's content depends only on the run's seed and the set's name, never on
which other sets are requested or in what order.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import torch

SYNTHETIC_SETS = ("uniform_noise", "gaussian_noise", "constant", "blank", "black")


def set_salt(name: str) -> int:
    """A stable 32-bit number for an evaluation set's name: its CRC-32 (the same in every process, unlike
    Python's per-process salted ``hash``)."""
    return zlib.crc32(name.encode())


def set_seed(seed: int, name: str) -> int:
    """The seed of set ``name`` in a run seeded ``seed``: a function of ``(seed, name)`` only, so requesting a
    subset of the sets, or reordering them, leaves each set's samples unchanged."""
    return seed * 1_000_003 + set_salt(name)


def synthetic_images(name: str, n: int, shape: Sequence[int], seed: int) -> torch.Tensor:
    """``n`` images of ``shape`` (e.g. ``(1, 28, 28)``) as float ``[n, *shape]`` in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    full = (n, *shape)
    if name == "uniform_noise":
        return torch.rand(full, generator=g)
    if name == "gaussian_noise":
        return (0.5 + 0.25 * torch.randn(full, generator=g)).clamp(0, 1)
    if name == "constant":
        return torch.rand(n, *([1] * len(shape)), generator=g).expand(full).clone()
    if name == "blank":
        return (0.05 * torch.randn(full, generator=g)).clamp(0, 1)
    if name == "black":
        return torch.zeros(full)
    raise ValueError(f"unknown synthetic set {name!r}; valid: {', '.join(SYNTHETIC_SETS)}")

"""Noise-conditional score networks s_θ(x, σ_i) for MSMA: plain ``nn.Module``s with ``forward(x, level)``.

``level`` is the integer noise-level index i ∈ {0, …, L−1} of each row (0 = σ_max), so one call can mix
levels (the score-norm features stack all L levels of a batch into one call). Each network returns a
tensor of the input's shape: the score itself, or (``output_scale="sigma"`` in :class:`~genood.models.msma.MSMA`)
σ_i times the score.

* :class:`UNetScoreNet` (images, default): diffusers' ``UNet2DModel``; the level enters as the timestep,
  through a learned per-level embedding (``level_embedding="learned"``, the closest analogue of the
  paper's per-level normalisation parameters), a sinusoidal embedding of the index (``"index"``) or of
  log σ_i (``"log_sigma"``); the ResNet blocks apply it as a scale and shift after group normalisation
  (``resnet_time_scale_shift="scale_shift"``, a FiLM analogue of conditional normalisation).
* :class:`~genood.models.msma.refinenet.RefineNetScoreNet` (images, the paper's NCSN v1 RefineNet; see
  ``refinenet.py``).
* :class:`MLPScoreNet` (vectors: tabular rows, flattened images, classifier features): an MLP whose hidden
  layers get a learned per-level scale and shift.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

LEVEL_EMBEDDINGS = ("learned", "index", "log_sigma")


class UNetScoreNet(nn.Module):
    """diffusers ``UNet2DModel`` conditioned on the noise level (see the module docstring).

    Args:
        input_shape: ``(C, H, W)``; H and W must be divisible by 2^(len(channels) − 1).
        sigmas: the L noise levels (float ``[L]``), used by ``level_embedding="log_sigma"``.
        channels: ``block_out_channels``, one width per resolution (e.g. (128, 256, 256, 256) for 32×32).
        layers_per_block: ResNet blocks per resolution.
        attention_blocks: indices of the resolutions whose blocks carry self-attention (0 = full resolution).
        mid_attention: self-attention in the middle block.
        norm_num_groups: group-norm groups (None = the largest of 32, 16, 8, 4, 2, 1 dividing every width).
        dropout: dropout in the ResNet blocks.
        level_embedding: "learned", "index" or "log_sigma".
    """

    def __init__(self, input_shape: Sequence[int], sigmas: torch.Tensor, channels: Sequence[int] = (64, 128, 128),
                 layers_per_block: int = 2, attention_blocks: Sequence[int] = (), mid_attention: bool = True,
                 norm_num_groups: Optional[int] = None, dropout: float = 0.0, level_embedding: str = "learned"):
        super().__init__()
        from diffusers import UNet2DModel

        if len(input_shape) != 3:
            raise ValueError(f"UNetScoreNet needs image inputs (C, H, W), got input_shape {tuple(input_shape)}; "
                             "use network: mlp for vectors")
        if level_embedding not in LEVEL_EMBEDDINGS:
            raise ValueError(f"level_embedding must be one of {LEVEL_EMBEDDINGS}, got {level_embedding!r}")
        channels = [int(c) for c in channels]
        n = len(channels)
        if n < 1 or any(c < 1 for c in channels):
            raise ValueError(f"channels must be positive widths, one per resolution, got {channels}")
        C, H, W = (int(v) for v in input_shape)
        if H % 2 ** (n - 1) or W % 2 ** (n - 1):
            raise ValueError(f"a UNet with {n} resolutions halves the image {n - 1} times: H, W = {H}, {W} must be "
                             f"divisible by {2 ** (n - 1)}; use fewer channels entries")
        bad = [i for i in attention_blocks if not 0 <= i < n]
        if bad:
            raise ValueError(f"attention_blocks {list(attention_blocks)} must index the {n} resolutions (0..{n - 1})")
        if norm_num_groups is None:
            norm_num_groups = next(g for g in (32, 16, 8, 4, 2, 1) if all(c % g == 0 for c in channels))
        elif any(c % norm_num_groups for c in channels):
            raise ValueError(f"norm_num_groups={norm_num_groups} must divide every width in channels={channels}")
        down = ["AttnDownBlock2D" if i in attention_blocks else "DownBlock2D" for i in range(n)]
        up = ["AttnUpBlock2D" if (n - 1 - j) in attention_blocks else "UpBlock2D" for j in range(n)]
        self.level_embedding = level_embedding
        self.register_buffer("log_sigmas", torch.as_tensor(sigmas, dtype=torch.float32).log(), persistent=False)
        self.unet = UNet2DModel(
            sample_size=(H, W), in_channels=C, out_channels=C, block_out_channels=tuple(channels),
            layers_per_block=layers_per_block, down_block_types=tuple(down), up_block_types=tuple(up),
            add_attention=mid_attention, norm_num_groups=norm_num_groups, dropout=dropout,
            resnet_time_scale_shift="scale_shift",
            time_embedding_type="learned" if level_embedding == "learned" else "positional",
            num_train_timesteps=len(sigmas) if level_embedding == "learned" else None)

    def timestep(self, level: torch.Tensor) -> torch.Tensor:
        if self.level_embedding == "learned":
            return level.long()
        if self.level_embedding == "index":
            return level.float()
        return self.log_sigmas[level.long()]

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return self.unet(x, self.timestep(level)).sample


class MLPScoreNet(nn.Module):
    """Level-conditioned MLP for vectors: h_{k+1} = ELU((W_k h_k + b_k) · (1 + γ_k[i]) + β_k[i]), output
    W_out h (the input's width). γ and β start at 0, so the untrained network ignores the level."""

    def __init__(self, num_features: int, num_levels: int, hidden_sizes: Sequence[int] = (256, 256, 256)):
        super().__init__()
        if num_features < 1 or not hidden_sizes or any(h < 1 for h in hidden_sizes):
            raise ValueError(f"MLPScoreNet needs positive sizes, got d={num_features}, hidden={list(hidden_sizes)}")
        sizes = [int(num_features), *(int(h) for h in hidden_sizes)]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.gains = nn.ModuleList(nn.Embedding(num_levels, h) for h in sizes[1:])
        self.shifts = nn.ModuleList(nn.Embedding(num_levels, h) for h in sizes[1:])
        for emb in (*self.gains, *self.shifts):
            nn.init.zeros_(emb.weight)
        self.out = nn.Linear(sizes[-1], sizes[0])
        self.act = nn.ELU()

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        h = x
        for lin, g, b in zip(self.linears, self.gains, self.shifts):
            h = self.act(lin(h) * (1 + g(level)) + b(level))
        return self.out(h)

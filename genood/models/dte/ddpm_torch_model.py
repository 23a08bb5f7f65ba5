"""The tabular DDPM baseline's denoiser (DTE's released ``diffusion/ddpm.py``; the family README): an RTDL ResNet (Gorishniy et al. 2021) with a
time embedding, as in DTE's released ``ddpm.py`` (adapted from TabDDPM).

    e   = MLP_t(sinusoid(t))                 sinusoid: 256-dim [cos, sin], max period 10⁴; MLP_t: Linear-SiLU-Linear
    h   = Linear(x) + Linear(SiLU(e))        d → d_main (128)
    h  ← h + Drop₂(Linear(Drop₁(ReLU(Linear(BN(h))))))   × n_blocks (3), d_main → d_hidden (256) → d_main
    ε̂  = Linear(ReLU(BN(h)))                 d_main → d

with dropouts Drop₁ = 0.4, Drop₂ = 0.1. The sinusoid is diffusers' ``get_timestep_embedding`` with
``flip_sin_to_cos=True, downscale_freq_shift=0`` (frequencies exp(−ln(10⁴)·i/128), cosines first).
"""

from __future__ import annotations

import torch
from torch import nn

from genood.models.dropout import Dropout


class ResNetBlock(nn.Module):
    """One RTDL ResNet block: x + Drop₂(Linear(Drop₁(ReLU(Linear(BatchNorm(x))))))."""

    def __init__(self, d_main: int, d_hidden: int, dropout_first: float, dropout_second: float):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm1d(d_main), nn.Linear(d_main, d_hidden), nn.ReLU(),
                                  Dropout(dropout_first), nn.Linear(d_hidden, d_main), Dropout(dropout_second))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TabularResNetDenoiser(nn.Module):
    """ε_θ(x_t, t) for vectors ``x_t [B, d]`` and integer timesteps ``t [B]`` (see the module docstring)."""

    def __init__(self, d_in: int, d_main: int = 128, n_blocks: int = 3, d_hidden: int = 256,
                 dropout_first: float = 0.4, dropout_second: float = 0.1, dim_t: int = 256):
        super().__init__()
        if min(d_in, d_main, d_hidden, dim_t) < 1 or n_blocks < 0:
            raise ValueError(f"TabularResNetDenoiser needs positive sizes, got d_in={d_in}, d_main={d_main}, "
                             f"d_hidden={d_hidden}, dim_t={dim_t}, n_blocks={n_blocks}")
        self.dim_t = dim_t
        self.time_embed = nn.Sequential(nn.Linear(dim_t, dim_t), nn.SiLU(), nn.Linear(dim_t, dim_t))
        self.first_layer = nn.Linear(d_in, d_main)
        self.time_proj = nn.Sequential(nn.SiLU(), nn.Linear(dim_t, d_main))
        self.blocks = nn.Sequential(*[ResNetBlock(d_main, d_hidden, dropout_first, dropout_second) for _ in range(n_blocks)])
        self.head = nn.Sequential(nn.BatchNorm1d(d_main), nn.ReLU(), nn.Linear(d_main, d_in))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted noise ``[B, d]``."""
        from diffusers.models.embeddings import get_timestep_embedding

        sinusoid = get_timestep_embedding(t, self.dim_t, flip_sin_to_cos=True, downscale_freq_shift=0)
        h = self.first_layer(x) + self.time_proj(self.time_embed(sinusoid.to(x.dtype)))
        return self.head(self.blocks(h))

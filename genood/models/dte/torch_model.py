"""DTE's network: a plain MLP on the (noised) feature vector (the released ``diffusion/dte.py`` ``MLP``; README, "Recipe").

    d → 256 → 512 → 256 → out, ReLU after every hidden layer, dropout (p = 0.5) after the 2nd and 3rd

Generally: the first hidden layer has no dropout, every later hidden layer has ReLU then dropout. DTE-IG
uses ``out = 1`` (the raw f(x), β̂ = f(x)²), DTE-C ``out = num_bins`` logits (softmax probabilities over
the time bins).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from genood.models.dropout import Dropout


class DTEMLP(nn.Module):
    """MLP ``d_in → hidden_sizes... → d_out`` with ReLU, and dropout after every hidden layer but the first."""

    def __init__(self, d_in: int, d_out: int, hidden_sizes: Sequence[int] = (256, 512, 256), dropout: float = 0.5):
        super().__init__()
        if d_in < 1 or d_out < 1 or not hidden_sizes or any(h < 1 for h in hidden_sizes):
            raise ValueError(f"DTEMLP needs positive sizes, got d_in={d_in}, d_out={d_out}, hidden={list(hidden_sizes)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        sizes = [d_in, *hidden_sizes]
        for i in range(len(hidden_sizes)):
            layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
            if i > 0:
                layers.append(Dropout(dropout))
        layers.append(nn.Linear(sizes[-1], d_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, d_in]`` → ``[B, d_out]`` (logits / raw outputs)."""
        return self.net(x)

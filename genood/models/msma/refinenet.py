"""NCSN v1 RefineNet (Song & Ermon 2019), as in MSMA's released TensorFlow 2 code (``model/refinenet.py``,
``model/layers.py``), in PyTorch. The noise level enters only through conditional instance normalisation++.

Architecture with f = ``filters`` (paper: 128), ELU everywhere:

* conv 3×3 → f;
* encoder, conditional full pre-activation residual blocks (CIN++ → ELU → conv → CIN++ → ELU → conv, plus a
  1×1 skip convolution where the width changes): f; 2f with 2×2 average pooling of both branches (the TF2
  code's FIXME: dilation 1 and pooling instead of the original's dilation 2 and strided convolution); 2f with
  dilation 2; 2f with dilation 4 (outputs at H, H/2, H/2, H/2);
* decoder, 4 RefineBlocks (2 residual conditional units per input, multi-resolution fusion of two inputs by
  CIN++ → conv 3×3 → bilinear resize → sum, chained residual pooling with 2 stages of CIN++ → 5×5 average
  pooling (stride 1, padding excluded from the mean) → conv 3×3, then 1 residual unit; 3 for the last):
  RefineBlock_4(out_4) → RefineBlock_3(out_3, ·) → RefineBlock_2(out_2, ·) → RefineBlock_1(out_1, ·) with
  widths 2f, 2f, 2f, f;
* CIN++ → ELU → conv 3×3 → C (the score; no output scaling by σ).

CIN++ (Song & Ermon 2019, appendix; the TF2 ``ConditionalInstanceNormalizationPlusPlus2D``): for channel c with
spatial mean μ_c and variance s_c², and m, v the mean and variance of the μ_c over channels,

    z_c = γ_{i,c} (x_c − μ_c) / √(s_c² + 1e-6) + β_{i,c} + α_{i,c} (μ_c − m) / √(v + 1e-6),

γ, α initialised to 1 and β to 0 (the TF2 code's choice), one row per noise level i.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class CondInstanceNormPlus(nn.Module):
    """Conditional instance normalisation++ with per-level γ, β, α (see the module docstring)."""

    def __init__(self, channels: int, num_levels: int, eps: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_levels, channels))
        self.alpha = nn.Parameter(torch.ones(num_levels, channels))
        self.beta = nn.Parameter(torch.zeros(num_levels, channels))
        self.eps = eps

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        mu = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
        m = mu.mean(dim=1, keepdim=True)
        v = mu.var(dim=1, keepdim=True, unbiased=False)
        g, a, b = (p[level][:, :, None, None] for p in (self.gamma, self.alpha, self.beta))
        return g * (x - mu) / torch.sqrt(var + self.eps) + b + a * (mu - m) / torch.sqrt(v + self.eps)


class CondPreActBlock(nn.Module):
    """Conditional full pre-activation residual block (optionally dilated, optionally 2×2-average-pooled)."""

    def __init__(self, c_in: int, c_out: int, num_levels: int, dilation: int = 1, pooling: bool = False):
        super().__init__()
        self.norm1 = CondInstanceNormPlus(c_in, num_levels)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation)
        self.norm2 = CondInstanceNormPlus(c_out, num_levels)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=dilation, dilation=dilation)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None
        self.pooling = pooling

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.elu(self.norm1(x, level)))
        h = self.conv2(F.elu(self.norm2(h, level)))
        skip = self.skip(x) if self.skip is not None else x
        if self.pooling:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return skip + h


class CondCRP(nn.Module):
    """Conditional chained residual pooling: x ← ELU(x); h = x; repeat: h = conv(avgpool5(CIN++(h))); x += h."""

    def __init__(self, channels: int, num_levels: int, stages: int = 2):
        super().__init__()
        self.norms = nn.ModuleList(CondInstanceNormPlus(channels, num_levels) for _ in range(stages))
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(stages))

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        x = F.elu(x)
        h = x
        for norm, conv in zip(self.norms, self.convs):
            h = conv(F.avg_pool2d(norm(h, level), 5, stride=1, padding=2, count_include_pad=False))
            x = x + h
        return x


class CondRefineBlock(nn.Module):
    """RCUs per input → multi-resolution fusion (two inputs) → chained residual pooling → end RCUs."""

    def __init__(self, in_channels: Sequence[int], channels: int, num_levels: int, end_rcu: int = 1):
        super().__init__()
        self.rcus = nn.ModuleList(
            nn.ModuleList([CondPreActBlock(c, channels, num_levels), CondPreActBlock(channels, channels, num_levels)])
            for c in in_channels)
        if len(in_channels) == 2:
            self.msf_norms = nn.ModuleList(CondInstanceNormPlus(channels, num_levels) for _ in range(2))
            self.msf_convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2))
        self.crp = CondCRP(channels, num_levels)
        self.end = nn.ModuleList(CondPreActBlock(channels, channels, num_levels) for _ in range(end_rcu))

    def forward(self, xs: Sequence[torch.Tensor], level: torch.Tensor) -> torch.Tensor:
        hs = []
        for x, rcus in zip(xs, self.rcus):
            for rcu in rcus:
                x = rcu(x, level)
            hs.append(x)
        if len(hs) == 2:
            high, low = (conv(norm(h, level)) for h, norm, conv in zip(hs, self.msf_norms, self.msf_convs))
            low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
            h = high + low
        else:
            h = hs[0]
        h = self.crp(h, level)
        for rcu in self.end:
            h = rcu(h, level)
        return h


class RefineNetScoreNet(nn.Module):
    """NCSN v1 RefineNet conditioned on the level index (see the module docstring).

    Args:
        input_shape: ``(C, H, W)``, H and W even.
        num_levels: L.
        filters: f (paper: 128).
    """

    def __init__(self, input_shape: Sequence[int], num_levels: int, filters: int = 128):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"RefineNetScoreNet needs image inputs (C, H, W), got {tuple(input_shape)}")
        C, H, W = (int(v) for v in input_shape)
        if H % 2 or W % 2:
            raise ValueError(f"RefineNetScoreNet pools once by 2: H, W = {H}, {W} must be even")
        f, L = int(filters), int(num_levels)
        self.conv_in = nn.Conv2d(C, f, 3, padding=1)
        self.enc = nn.ModuleList([CondPreActBlock(f, f, L), CondPreActBlock(f, 2 * f, L, pooling=True),
                                  CondPreActBlock(2 * f, 2 * f, L, dilation=2),
                                  CondPreActBlock(2 * f, 2 * f, L, dilation=4)])
        self.refine4 = CondRefineBlock([2 * f], 2 * f, L)
        self.refine3 = CondRefineBlock([2 * f, 2 * f], 2 * f, L)
        self.refine2 = CondRefineBlock([2 * f, 2 * f], 2 * f, L)
        self.refine1 = CondRefineBlock([f, 2 * f], f, L, end_rcu=3)
        self.norm_out = CondInstanceNormPlus(f, L)
        self.conv_out = nn.Conv2d(f, C, 3, padding=1)

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        level = level.long()
        h = self.conv_in(x)
        outs = []
        for block in self.enc:
            h = block(h, level)
            outs.append(h)
        r = self.refine4([outs[3]], level)
        r = self.refine3([outs[2], r], level)
        r = self.refine2([outs[1], r], level)
        r = self.refine1([outs[0], r], level)
        return self.conv_out(F.elu(self.norm_out(r, level)))

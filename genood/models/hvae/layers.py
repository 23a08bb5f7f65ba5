"""Deterministic building blocks of the HVAE (Havtorn et al. 2021, following BIVA's code base).

Every convolution and dense map is weight-normalised (Salimans & Kingma 2016). A residual block is

    y = conv2( act( conv1(act(x)) + aux_op(act(aux)) ) ) + resample(x)

with ``conv1`` stride 1, ``conv2`` carrying the block's stride (a strided convolution going down, a
transposed convolution going up), ``aux`` an optional skip input from another part of the network
(merged after ``conv1``, resampled to its shape), and a residual path that zero-pads or truncates channels
and average-pools when the block downsamples. As in the reference code, an upsampling block has no
residual path and the first block of a path may be built without one (``residual=False``: no
pre-activation, no skip). Blocks are non-gated (the paper's configs set ``gated: false``).

``drop_same_shape_skips=True`` reproduces the released block exactly as it runs
(``oodd/layers/deterministic/residual.py``): its merge line ``y = y + aux_op(act(aux)) if aux_op is not None
else y`` drops the skip input whenever it already has conv1's output shape (no ``aux_op`` is built then), so
most skip connections of a model with equal channel counts are silently unused. The default adds them, as
the architecture intends.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

Shape = tuple[int, ...]

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU, "swish": nn.SiLU,
               "gelu": nn.GELU}


def make_activation(name: str) -> nn.Module:
    """An activation module by name (relu, elu, leaky_relu, silu/swish, gelu)."""
    key = name.lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]()


def _normed(module: nn.Module, use: bool) -> nn.Module:
    return weight_norm(module) if use else module


class Conv(nn.Module):
    """A 'same'-padded, weight-normed 2-d convolution that changes the spatial size by ``stride`` exactly:
    H -> ceil(H / stride) going down, H -> H * stride going up (``transposed``)."""

    def __init__(self, in_shape: Shape, out_channels: int, kernel_size: int, stride: int = 1,
                 transposed: bool = False, weightnorm: bool = True):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        c, h, w = in_shape
        pad = (kernel_size - 1) // 2
        if transposed and stride > 1:
            conv = nn.ConvTranspose2d(c, out_channels, kernel_size, stride=stride, padding=pad,
                                      output_padding=stride - 1)
            self.out_shape = (out_channels, h * stride, w * stride)
        else:
            conv = nn.Conv2d(c, out_channels, kernel_size, stride=stride, padding=pad)
            self.out_shape = (out_channels, math.ceil(h / stride), math.ceil(w / stride))
        self.conv = _normed(conv, weightnorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Dense(nn.Module):
    """A weight-normed linear map from a flattened ``in_shape`` to ``out_shape`` (reshaped)."""

    def __init__(self, in_shape: Shape, out_shape: Shape, weightnorm: bool = True):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.linear = _normed(nn.Linear(math.prod(in_shape), math.prod(out_shape)), weightnorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)).view(-1, *self.out_shape)


class ResBlock(nn.Module):
    """Non-gated residual block (see module docstring). ``in_shape``/``aux_shape`` are ``(C, H, W)``."""

    def __init__(self, in_shape: Shape, out_channels: int, kernel_size: int, stride: int = 1,
                 transposed: bool = False, aux_shape: Optional[Shape] = None, residual: bool = True,
                 activation: str = "relu", weightnorm: bool = True, drop_same_shape_skips: bool = False):
        super().__init__()
        self.residual = residual
        self.act_pre = make_activation(activation) if residual else nn.Identity()
        self.conv1 = Conv(in_shape, out_channels, kernel_size, 1, False, weightnorm)
        mid = self.conv1.out_shape
        self.aux_op: Optional[nn.Module] = None
        self.has_aux = aux_shape is not None
        if self.has_aux:
            self.act_aux = make_activation(activation)
            if aux_shape[1] > mid[1]:      # aux is larger: strided convolution down to conv1's size
                self.aux_op = Conv(aux_shape, mid[0], kernel_size, aux_shape[1] // mid[1], False, weightnorm)
            elif aux_shape[1] < mid[1]:    # aux is smaller: transposed convolution up
                self.aux_op = Conv(aux_shape, mid[0], kernel_size, mid[1] // aux_shape[1], True, weightnorm)
            elif aux_shape[0] != mid[0]:   # same size, other channel count: 1x1 convolution
                self.aux_op = Conv(aux_shape, mid[0], 1, 1, False, weightnorm)
            if self.aux_op is not None and self.aux_op.out_shape != mid:
                raise ValueError(f"skip input of shape {aux_shape} cannot be resampled to {mid}; use spatial sizes "
                                 "that divide each other (e.g. powers of two)")
        # the released block ignores a skip input that needs no resampling (module docstring)
        self.uses_aux = self.has_aux and not (drop_same_shape_skips and self.aux_op is None)
        self.act_mid = make_activation(activation)
        self.conv2 = Conv(mid, out_channels, kernel_size, stride, transposed, weightnorm)
        self.out_shape = self.conv2.out_shape
        self.in_shape = tuple(in_shape)
        # residual path: channels padded/truncated, average-pooled when going down, absent when going up
        self.pool_stride = stride if (residual and not transposed and stride > 1) else 1
        if residual and transposed and stride > 1:
            self.residual = False

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        c_in, c_out = x.shape[1], self.out_shape[0]
        if c_out > c_in:
            x = F.pad(x, (0, 0, 0, 0, 0, c_out - c_in))
        elif c_out < c_in:
            x = x[:, :c_out]
        if self.pool_stride > 1:
            x = F.avg_pool2d(x, 3, stride=self.pool_stride, padding=1)
        return x

    def forward(self, x: torch.Tensor, aux: Optional[torch.Tensor] = None) -> torch.Tensor:
        y = self.conv1(self.act_pre(x))
        if self.uses_aux:
            a = self.act_aux(aux)
            y = y + (self.aux_op(a) if self.aux_op is not None else a)
        y = self.conv2(self.act_mid(y))
        return y + self._shortcut(x) if self.residual else y


class BlockStack(nn.Module):
    """A sequence of residual blocks; block j may read skip input j (``aux[j]``).

    ``configs`` is a list of ``(out_channels, kernel_size, stride)``. Returns the output and the list of
    every block's output (the skip inputs the next stage's blocks read, block j to block j).
    """

    def __init__(self, in_shape: Shape, configs: Sequence[tuple[int, int, int]], transposed: bool,
                 aux_shapes: Optional[Sequence[Shape]] = None, first_residual: bool = True,
                 activation: str = "relu", weightnorm: bool = True, drop_same_shape_skips: bool = False):
        super().__init__()
        blocks, shape = [], tuple(in_shape)
        for j, (channels, kernel, stride) in enumerate(configs):
            aux = aux_shapes[j] if aux_shapes is not None else None
            block = ResBlock(shape, channels, kernel, stride, transposed, aux, first_residual or j > 0,
                             activation, weightnorm, drop_same_shape_skips)
            blocks.append(block)
            shape = block.out_shape
        self.blocks = nn.ModuleList(blocks)
        self.out_shape = shape
        self.hidden_shapes = [b.out_shape for b in blocks]

    def forward(self, x: torch.Tensor, aux: Optional[Sequence[torch.Tensor]] = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hidden = []
        for j, block in enumerate(self.blocks):
            x = block(x, aux[j] if aux is not None else None)
            hidden.append(x)
        return x, hidden

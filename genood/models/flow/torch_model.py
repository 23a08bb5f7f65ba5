"""Multiscale image normalizing flows (RealNVP, Dinh et al. ICLR 2017; Glow, Kingma & Dhariwal NeurIPS 2018)
built from normflows 1.7.3 parts, as a plain ``nn.Module``.

Change of variables (RealNVP §3.1): for an invertible f with z = f(y),

    log p_Y(y) = log p_Z(f(y)) + log |det ∂f/∂y|,

summed over a chain of layers. The data-side pre-processing g maps the dequantized image u ∈ [0, 1)^D to y:

* ``logit`` (RealNVP §4.1 and its released code, ``data_constraint = 0.9``): s = α + (1 − 2α) u,
  y = logit(s), log |dy/du| = Σ_d [log(1 − 2α) − log s_d − log(1 − s_d)], α = 0.05 (normflows'
  ``transforms.Logit``, which implements exactly this symmetric form);
* ``shift`` (Glow's code): y = u − ½, log-det 0.

so that log p(u) = log p_Z(z) + log|det ∂z/∂y| + log|det ∂y/∂u| (nats), the continuous log-density of u that
:mod:`genood.models.flow.dequantization` turns into the discrete likelihood.

Multiscale layout (RealNVP §3.6, Glow §3 / Fig. 2): at every level but the last, a squeeze turns C×H×W into
4C×H/2×W/2 and half of the channels are factored out to their own Gaussian; the other half goes on to the
next level. normflows' ``MultiscaleFlow`` indexes levels from the coarsest (0) to the data side (L − 1); our
constructor builds them from the data side.

* ``glow``: per level a squeeze then K ``GlowBlock`` steps (ActNorm → invertible 1×1 convolution → affine
  coupling with the scale sigmoid(h + 2) and a zero-initialised last convolution; the coupling network is
  conv3×3 → ReLU → conv1×1 → ReLU → conv3×3 with ActNorm in the hidden layers as in Glow's code); learned
  diagonal Gaussians for the factored-out and the top latents (Glow's ``learntop``).
* ``realnvp``: per level K checkerboard couplings, a squeeze, K channel couplings, then the split; the last
  level has K + 1 checkerboard couplings (the paper: K = 3, 4 at the last level). Couplings are affine with
  log-scale w ⊙ tanh(h) (the released code's ``rescaling_scale · tanh``) and shift t from a ResNet on the
  conditioning half; unit Gaussian base (RealNVP's prior).

Layer directions follow normflows: a layer's ``inverse`` maps data → latent and returns log|det| of that map.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import normflows as nf
import torch
from torch import nn


class ShiftPreprocess(nf.flows.Flow):
    """Glow's pre-processing y = u − ½ (log-det 0) as a normflows transform: ``inverse`` maps data → latent.

    Written here because normflows' ``transforms.Shift`` modifies its input in place.
    """

    def __init__(self, shift: float = 0.5):
        super().__init__()
        self.shift = float(shift)

    def forward(self, z):
        return z + self.shift, torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)

    def inverse(self, z):
        return z - self.shift, torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)


class ResNetCouplingNet(nn.Module):
    """RealNVP's coupling network (§4.1 / released ``resnet``): conv3×3 → ``blocks`` residual blocks
    (ReLU, conv3×3, ReLU, conv3×3, + input) → ReLU → conv3×3 to 2·C_out maps, interleaved as normflows'
    ``AffineCoupling`` reads them (shift = channels 0::2, log-scale = channels 1::2).

    The log-scale is bounded as w ⊙ tanh(h) with a learned per-channel w (the released code's scalar
    ``rescaling_scale`` · tanh). ``init_zeros`` zeroes the last convolution (the coupling starts as the identity,
    Glow's initialisation; the released RealNVP code instead starts w at 0, which stalls w and h together
    when the last convolution is also zero).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int = 64, blocks: int = 2,
                 init_zeros: bool = True):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, hidden_channels, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1),
                          nn.ReLU(), nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1))
            for _ in range(blocks))
        self.conv_out = nn.Conv2d(hidden_channels, 2 * out_channels, 3, padding=1)
        if init_zeros:
            nn.init.zeros_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)
        self.log_scale_weight = nn.Parameter(torch.ones(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.blocks:
            h = h + block(h)
        out = self.conv_out(torch.relu(h))
        shift, raw = out[:, 0::2], out[:, 1::2]
        log_scale = self.log_scale_weight * torch.tanh(raw)
        return torch.stack([shift, log_scale], dim=2).flatten(1, 2)  # interleave: [t_0, s_0, t_1, s_1, ...]


ARCHITECTURES = ("glow", "realnvp")
PREPROCESSING = ("logit", "shift")


def _glow_level(channels: int, steps: int, hidden: int, use_lu: bool, net_actnorm: bool) -> list:
    """One Glow level in normflows order (latent → data): K steps then the squeeze."""
    blocks = [nf.flows.GlowBlock(channels, hidden, scale=True, scale_map="sigmoid", split_mode="channel",
                                 leaky=0.0, init_zeros=True, use_lu=use_lu, net_actnorm=net_actnorm)
              for _ in range(steps)]
    return blocks + [nf.flows.Squeeze()]


def _realnvp_coupling(channels: int, mode: str, hidden: int, blocks: int) -> nf.flows.Flow:
    if mode.startswith("checkerboard"):
        c_in, c_out = channels, channels
    elif mode == "channel":      # z1 = first ceil(C/2) channels conditions z2 = the rest
        c_in, c_out = (channels + 1) // 2, channels // 2
    else:                        # channel_inv: z1 = last C//2 channels conditions the first ceil(C/2)
        c_in, c_out = channels // 2, (channels + 1) // 2
    net = ResNetCouplingNet(c_in, c_out, hidden, blocks)
    return nf.flows.AffineCouplingBlock(net, scale=True, scale_map="exp", split_mode=mode)


def _realnvp_level(channels: int, steps: int, hidden: int, blocks: int, last: bool) -> list:
    """One RealNVP level in normflows order (latent → data)."""
    checker = [_realnvp_coupling(channels, "checkerboard" if j % 2 == 0 else "checkerboard_inv", hidden, blocks)
               for j in range(steps + 1 if last else steps)]
    if last:
        return checker[::-1]
    channel = [_realnvp_coupling(4 * channels, "channel" if j % 2 == 0 else "channel_inv", hidden, blocks)
               for j in range(steps)]
    # data → latent (normflows' log_prob runs the list backwards): checkerboards, squeeze, channel couplings
    return channel[::-1] + [nf.flows.Squeeze()] + checker[::-1]


class FlowNetwork(nn.Module):
    """A multiscale RealNVP or Glow on images ``input_shape = (C, H, W)`` with its pre-processing.

    Args:
        input_shape: (C, H, W); H and W must be divisible by 2^levels (Glow) or 2^(levels − 1) (RealNVP), and
            for RealNVP the last level's width must be even (checkerboard split).
        architecture: "glow" or "realnvp".
        levels: L, the number of scales.
        steps: K, flow steps per level (Glow: GlowBlocks; RealNVP: couplings per mask type).
        hidden_channels: width of the coupling networks (Glow: 512; RealNVP CIFAR-10: 64).
        resnet_blocks: residual blocks per RealNVP coupling network (RealNVP CIFAR-10: 8).
        preprocessing: "logit" (RealNVP) or "shift" (Glow).
        logit_alpha: α of the logit transform.
        learn_prior: learned diagonal Gaussians per latent (Glow's learntop) or the unit Gaussian (RealNVP).
        use_lu: LU-parametrised 1×1 convolutions (Glow) — off by default: normflows builds them with the
            deprecated ``torch.lu``; the plain W with ``slogdet`` is exact and cheap at these channel counts.
        net_actnorm: ActNorm inside Glow's coupling networks (Glow's code: on).
    """

    def __init__(self, input_shape: Sequence[int], architecture: str = "glow", levels: int = 2, steps: int = 8,
                 hidden_channels: int = 64, resnet_blocks: int = 2, preprocessing: str = "logit",
                 logit_alpha: float = 0.05, learn_prior: bool = True, use_lu: bool = False, net_actnorm: bool = True):
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 3:
            raise ValueError(f"the image flow needs input_shape (C, H, W), got {shape}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        if preprocessing not in PREPROCESSING:
            raise ValueError(f"preprocessing must be one of {PREPROCESSING}, got {preprocessing!r}")
        if levels < 1 or steps < 0 or hidden_channels < 1 or resnet_blocks < 0:
            raise ValueError(f"need levels >= 1, steps >= 0, hidden_channels >= 1, resnet_blocks >= 0; got "
                             f"{levels}, {steps}, {hidden_channels}, {resnet_blocks}")
        if not 0.0 < logit_alpha < 0.5:
            raise ValueError(f"logit_alpha must be in (0, 0.5), got {logit_alpha}")
        C, H, W = shape
        squeezes = levels if architecture == "glow" else levels - 1
        if H % 2 ** squeezes or W % 2 ** squeezes:
            raise ValueError(f"{architecture} with levels={levels} squeezes {squeezes} time(s), so H and W must be "
                             f"divisible by {2 ** squeezes}; got input_shape {shape}. Use fewer levels.")
        if architecture == "realnvp" and (W // 2 ** squeezes) % 2:
            raise ValueError(f"realnvp's checkerboard couplings need an even width at every level; with levels="
                             f"{levels} the last level is {W // 2 ** squeezes} wide. Use fewer levels.")
        self.input_shape, self.architecture, self.levels = shape, architecture, levels
        self.num_dims = C * H * W

        flows_data_first, latent_shapes = [], []          # per level, from the data side
        c, h, w = C, H, W
        for lvl in range(levels):
            last = lvl == levels - 1
            if architecture == "glow":
                c, h, w = 4 * c, h // 2, w // 2
                flows_data_first.append(_glow_level(c, steps, hidden_channels, use_lu, net_actnorm))
            else:
                flows_data_first.append(_realnvp_level(c, steps, hidden_channels, resnet_blocks, last))
                if not last:
                    c, h, w = 4 * c, h // 2, w // 2
            if last:
                latent_shapes.append((c, h, w))
            else:
                latent_shapes.append((c // 2, h, w))     # factored out: Split's second chunk
                c = c - c // 2
        # normflows order: index 0 = the coarsest level
        flows = flows_data_first[::-1]
        q0 = [nf.distributions.DiagGaussian(s, trainable=learn_prior) for s in latent_shapes[::-1]]
        merges = [nf.flows.Merge() for _ in range(levels - 1)]
        transform = nf.transforms.Logit(alpha=logit_alpha) if preprocessing == "logit" else ShiftPreprocess()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.lu is deprecated.*")
            self.flow = nf.MultiscaleFlow(q0, flows, merges, transform=transform, class_cond=False)
        self.latent_shapes = latent_shapes[::-1]
        self._initialized = False  # cache of the ActNorm flags (reading them syncs with the GPU)
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_initialized", False))

    # ---- ActNorm's data-dependent initialisation (Glow §3.1) ---------------------------------------------
    def actnorms(self) -> list:
        return [m for m in self.modules() if isinstance(m, nf.flows.ActNorm)]

    @property
    def initialized(self) -> bool:
        """Whether every ActNorm has run its data-dependent initialisation (always true without ActNorm).
        Read from the layers' flags until true, then cached (a loaded state dict resets the cache)."""
        if not self._initialized:
            self._initialized = all(bool(m.data_dep_init_done > 0) for m in self.actnorms())
        return self._initialized

    @torch.no_grad()
    def initialize(self, u: torch.Tensor) -> None:
        """Run ActNorm's data-dependent initialisation on the batch u (dequantized, in [0, 1)): each ActNorm
        sets its scale and bias so that its output has zero mean and unit variance per channel on u."""
        self.flow.log_prob(u, None)

    # ---- densities and maps -----------------------------------------------------------------------------
    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        """log p(u) in nats, ``[B]``, for dequantized images u ∈ [0, 1)^D (pre-processing log-det included)."""
        if tuple(u.shape[1:]) != self.input_shape:
            raise ValueError(f"the flow was built for images of shape {self.input_shape}, got a batch of shape "
                             f"{tuple(u.shape)}")
        return self.flow.log_prob(u, None)

    def encode(self, u: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """u → the latents z (coarsest first) and log|det ∂z/∂u| ``[B]`` (pre-processing included)."""
        return self.flow.inverse_and_log_det(u)

    def decode(self, z: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """latents → u and log|det ∂u/∂z| ``[B]``."""
        return self.flow.forward_and_log_det(z)

    def base_log_prob(self, z: list[torch.Tensor]) -> torch.Tensor:
        """Σ_levels log p_Z(z_level), ``[B]``."""
        return sum(q.log_prob(zi) for q, zi in zip(self.flow.q0, z))

    @torch.no_grad()
    def sample(self, num_samples: int) -> torch.Tensor:
        """Draws u ∈ [0, 1)-ish images from the model (continuous; quantize with floor(u · n_bins))."""
        return self.flow.sample(num_samples)[0]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["FlowNetwork", "ResNetCouplingNet", "ShiftPreprocess", "count_parameters", "ARCHITECTURES",
           "PREPROCESSING"]

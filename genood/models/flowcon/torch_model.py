"""FlowCon's RealNVP for feature vectors with its learned base density (Aathreya & Canavan, ECCV 2024,
Sec. 3.1; released ``models/realnvp.py``).

Forward direction = features f → latent z (the density direction), ``n_couplings`` (8) affine couplings
alternating which half of the D dimensions stays fixed (layer 0 keeps the first ⌊D/2⌋, layer 1 the rest,
...). One coupling, with x_a the fixed half and x_b the changing half:

    (s, t) = NN(x_a),   NN = Linear(·, 256) – SiLU – [Dropout 0.5] – Linear(256, 256) – SiLU – Linear(256, 2|x_b|)
    s ← w ⊙ tanh(s),    w = weight-normalised per-dimension scale (starts at 1)
    y_b = (x_b + t) ⊙ exp(s),   y_a = x_a,   log|det J| = Σ s

The last linear layer of NN is zero-initialised, so every coupling starts as the identity.

**Learned base density.** The last coupling also maps its fixed half z_a through a zero-initialised
``Linear(|z_a|, 2D)`` to (μ, log σ) ∈ R^{2D}; the base density is log N(z; μ(z_a), diag σ(z_a)²) summed over
all D dimensions, N(0, I) at initialisation. (It conditions on a part of z itself, so it is a score, not a
normalised density over z.) The released model gives every coupling such a head but only the last one is
ever read; the unused heads, the unused softmax head and two unused scalars of ``LatentModel`` never receive a
gradient, so leaving them out changes nothing.

**Library parts.** Each coupling is an nflows ``CouplingTransform`` (nflows 0.14: its mask bookkeeping, the
split of x into fixed / changing halves, the merge and the inverse pass) and the stack an nflows
``CompositeTransform`` (summed log-determinants). nflows' own ``AffineCouplingTransform`` cannot express
FlowCon's layer: it uses a sigmoid scale and y = x·scale + shift, while FlowCon adds the shift *before*
scaling and bounds the log-scale by w ⊙ tanh(s) with a weight-normalised w; so ``_coupling_transform_forward``
/ ``_inverse`` are ours. normflows' ``AffineCouplingBlock`` has the same mismatch (exp / sigmoid scale maps,
shift after scale) and its ``MLP`` only offers (leaky) ReLU, not SiLU. The weight normalisation is torch's
``nn.utils.parametrizations.weight_norm`` as in the released code, and the learned base density (tied to
z_a) is FlowCon's own: :class:`FlowConRealNVP` holds it.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_p(x: torch.Tensor, mean: torch.Tensor, log_sd: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, exp(log_sd)²) (broadcasting)."""
    return -0.5 * LOG_2PI - log_sd - 0.5 * (x - mean) ** 2 * torch.exp(-2.0 * log_sd)


class CouplingNet(nn.Module):
    """NN(x_a) → (s, t) for the changing half: Linear – SiLU – [Dropout] – Linear – SiLU – zero Linear.

    The released network reads the full D-vector with the changing half zeroed (``Linear(D, 256)``); reading
    only x_a is the same function. ``fan_in`` = D gives the first layer the released initialisation scale
    (PyTorch's default uniform(±1/√fan_in) for a ``Linear(D, ·)``).
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 256, dropout: float = 0.0,
                 fan_in: Optional[int] = None):
        super().__init__()
        first = nn.Linear(in_features, hidden)
        bound = 1.0 / math.sqrt(fan_in or in_features)
        nn.init.uniform_(first.weight, -bound, bound)
        nn.init.uniform_(first.bias, -bound, bound)
        last = nn.Linear(hidden, out_features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers = [first, nn.SiLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(hidden, hidden), nn.SiLU(), last]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.net(x)


class TanhScale(nn.Module):
    """s ↦ w ⊙ tanh(s) with w weight-normalised per dimension (torch ``weight_norm`` over a vector of ones,
    as the released ``RescaleTabular``): w_d = g_d · v_d / |v_d|, g = v = 1 at initialisation."""

    def __init__(self, features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.weight * torch.tanh(s)


def _coupling_base():
    from nflows.transforms.coupling import CouplingTransform

    return CouplingTransform


class FlowConCoupling(_coupling_base()):
    """One FlowCon affine coupling on an nflows ``CouplingTransform`` (mask > 0 = changing dimensions).

    ``forward(x) -> (y, log|det J|)`` with y_b = (x_b + t) exp(s); ``inverse(y) -> (x, −log|det J|)``.
    """

    def __init__(self, mask: torch.Tensor, hidden: int = 256, dropout: float = 0.0):
        mask = torch.as_tensor(mask)
        d = int(mask.numel())
        super().__init__(mask, lambda n_in, n_out: CouplingNet(n_in, n_out, hidden, dropout, fan_in=d))
        self.scale = nn.utils.parametrizations.weight_norm(TanhScale(self.num_transform_features))

    def _transform_dim_multiplier(self) -> int:
        return 2

    def _scale_shift(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.num_transform_features
        return self.scale(params[:, :n]), params[:, n:]

    def _coupling_transform_forward(self, inputs, transform_params):
        s, t = self._scale_shift(transform_params)
        return (inputs + t) * torch.exp(s), s.sum(dim=1)

    def _coupling_transform_inverse(self, inputs, transform_params):
        s, t = self._scale_shift(transform_params)
        return inputs * torch.exp(-s) - t, -s.sum(dim=1)


def alternating_masks(dim: int, n: int) -> list[torch.Tensor]:
    """The released ``MaskTabular`` pattern: layer i keeps the first ⌊D/2⌋ dimensions fixed when i is even,
    the remaining ones when i is odd (mask 1 = changing)."""
    split = dim // 2
    masks = []
    for i in range(n):
        m = torch.zeros(dim)
        if i % 2 == 0:
            m[split:] = 1
        else:
            m[:split] = 1
        masks.append(m)
    return masks


class FlowConRealNVP(nn.Module):
    """RealNVP for D-dimensional vectors with FlowCon's learned base density.

    ``forward(f)`` returns ``(z, logdet [B], mu [B, D], log_sd [B, D])``, where (μ, log σ) come from the last
    coupling's fixed half of z. :meth:`log_base` = Σ_d log N(z_d; μ_d, σ_d) in nats.
    """

    def __init__(self, dim: int, n_couplings: int = 8, hidden: int = 256, dropout: float = 0.0):
        super().__init__()
        if dim < 2:
            raise ValueError(f"FlowCon's flow needs feature vectors with D >= 2, got D={dim}")
        if n_couplings < 1:
            raise ValueError(f"n_couplings must be >= 1, got {n_couplings}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        from nflows.transforms.base import CompositeTransform

        self.dim = dim
        masks = alternating_masks(dim, n_couplings)
        self.transform = CompositeTransform([FlowConCoupling(m, hidden, dropout) for m in masks])
        self.register_buffer("prior_features", torch.nonzero(masks[-1] <= 0).flatten(), persistent=False)
        self.prior = nn.Linear(len(self.prior_features), 2 * dim)
        nn.init.zeros_(self.prior.weight)
        nn.init.zeros_(self.prior.bias)

    def base_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ) = prior(z_a), z_a = the last coupling's fixed half of z."""
        mu, log_sd = self.prior(z[:, self.prior_features]).chunk(2, dim=1)
        return mu, log_sd

    def forward(self, f: torch.Tensor):
        if f.ndim != 2 or f.shape[1] != self.dim:
            raise ValueError(f"FlowConRealNVP was built for D={self.dim} features, got {tuple(f.shape)}")
        z, logdet = self.transform(f)
        mu, log_sd = self.base_params(z)
        return z, logdet, mu, log_sd

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.transform.inverse(z)[0]

    @staticmethod
    def log_base(z: torch.Tensor, mu: torch.Tensor, log_sd: torch.Tensor) -> torch.Tensor:
        """Σ_d log N(z_d; μ_d, σ_d), ``[B]`` (nats)."""
        return gaussian_log_p(z, mu, log_sd).sum(dim=1)

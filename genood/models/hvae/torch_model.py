"""The hierarchical VAE of Havtorn et al. (ICML 2021, "Hierarchical VAEs Know What They Don't Know"),
as a plain ``nn.Module``: the reference code's ``VAE`` model built from ``VaeStage`` s.

Generative model (top-down), with z_1 next to x and z_L at the top:

    p(x, z) = p(x | z_1) · Π_{i<L} p(z_i | z_{i+1}) · p(z_L),        p(z_L) = N(0, I)

Inference (bottom-up): stage i runs residual blocks on the *sampled* z_{i-1} (x for i = 1), each block also
reading the previous stage's deterministic features h_{i-1} (a skip connection), then a Gaussian head gives
q(z_i | z_{i-1}, h_{i-1}). Generation runs each stage's blocks in reverse (transposed), block j reading block
j of the stage above (skip connections between latents).

Bounds (the family README, "The bounds"; reference ``scripts/ood-llr.py``), all single-sample Monte Carlo in the KL terms:

* ELBO      L(x)     = E_q [ log p(x | z) − Σ_i (log q(z_i | ·) − log p(z_i | z_{i+1})) ]
* skip bound L^{>k}(x) = E_{q(z_{>k} | x) p(z_{≤k} | z_{>k})} [ log p(x | z) + log p(z_{>k}) − log q(z_{>k} | x) ]

  implemented as the reference code does: the k lowest layers take the **mean** of the conditional prior
  p(z_i | z_{i+1}) on the generative path and contribute no KL term; on the inference path they pass q's
  mean upward (``use_mode`` = ``decode_from_p`` in ``ood-llr.py``). k = 0 gives the ELBO exactly.
* importance weighting over S samples: log (1/S) Σ_s exp(bound_s), computed with all S copies of the batch
  in one network call.

Every per-row choice (which layers use a mode, which are decoded from p) is a boolean mask over the rows of
one batch, so the ELBO's S samples and each L^{>k} are computed together in a single forward pass.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn

from .layers import BlockStack, Dense, Shape
from .likelihoods import LIKELIHOODS
from genood.models.counter_noise import counter_normal
from .stochastic import Gaussian, GaussianLatent, Posterior, rows_mask

# The paper's FashionMNIST/MNIST HVAE (reference README): 3 stages x 3 residual blocks, non-gated, weight-normed.
FASHIONMNIST_STAGES = (
    {"channels": 64, "blocks": 3, "kernel_size": 5, "stride": 2, "latent": "conv", "latent_features": 8},
    {"channels": 64, "blocks": 3, "kernel_size": 3, "stride": 2, "latent": "dense", "latent_features": 16},
    {"channels": 64, "blocks": 3, "kernel_size": 3, "stride": 1, "latent": "dense", "latent_features": 8},
)

_STAGE_KEYS = {"channels", "blocks", "kernel_size", "stride", "latent", "latent_features"}


class StageSpec(NamedTuple):
    """One stage: residual blocks ``(channels, kernel, stride)`` (the last block carries the stride) and its latent."""

    blocks: tuple[tuple[int, int, int], ...]
    latent: str
    latent_features: int


def parse_stage(i: int, spec: Mapping[str, Any]) -> StageSpec:
    """Validate a stage dict: ``channels`` (int, or one int per block), ``blocks`` (default 3),
    ``kernel_size`` (default 3), ``stride`` of the last block (default 1), ``latent`` ("conv" | "dense"),
    ``latent_features``."""
    unknown = set(spec) - _STAGE_KEYS
    if unknown:
        raise ValueError(f"stage {i}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(_STAGE_KEYS)}")
    for key in ("channels", "latent", "latent_features"):
        if key not in spec:
            raise ValueError(f"stage {i}: missing {key!r} (e.g. {dict(FASHIONMNIST_STAGES[0])})")
    channels = spec["channels"]
    if isinstance(channels, int):
        channels = [channels] * int(spec.get("blocks", 3))
    channels = [int(c) for c in channels]
    kernel, stride = int(spec.get("kernel_size", 3)), int(spec.get("stride", 1))
    if not channels or min(channels) < 1 or stride < 1:
        raise ValueError(f"stage {i}: need >= 1 block with positive channels and stride >= 1, got {dict(spec)}")
    blocks = tuple((c, kernel, stride if j == len(channels) - 1 else 1) for j, c in enumerate(channels))
    return StageSpec(blocks, str(spec["latent"]), int(spec["latent_features"]))


class ForwardPass(NamedTuple):
    """Per-row results of one forward pass (R rows)."""

    log_px: torch.Tensor            # [R] log p(x | z)
    kl: list[torch.Tensor]          # per layer (bottom first) [R, *shape]: log q(z_i|·) − log p(z_i|·), 0 where dropped
    posteriors: list[Posterior]     # per layer, bottom first
    priors: list[Gaussian]          # per layer, bottom first: p(z_i | z_{i+1}) (N(0, I) at the top)

    def bound(self) -> torch.Tensor:
        """log p(x | z) − Σ_i KL_i per row ``[R]`` (the ELBO's integrand; L^{>k}'s on rows that skip)."""
        return self.log_px - sum(k.flatten(1).sum(1) for k in self.kl)


def log_mean_exp(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/S) Σ_s exp(v_s) along ``dim`` (the importance-weighted bound's estimator)."""
    return torch.logsumexp(values, dim=dim) - math.log(values.shape[dim])


class HierarchicalVAE(nn.Module):
    """Bottom-up inference / top-down generation HVAE with L = len(stages) stochastic layers.

    Args:
        input_shape: ``(C, H, W)``.
        stages: stage dicts, bottom first (see :func:`parse_stage`); default: the paper's FashionMNIST HVAE.
        likelihood: "bernoulli" (binarized images) or "discretized_logistic_mixture" (8-bit images).
        n_mix, n_bins: mixture components and levels of the discretized logistic mixture.
        activation: activation in every block and head (the reference code's default, ReLU).
        skip_connections: skip connections between stages (the reference code's ``skip_stochastic``).
        drop_same_shape_skips: run the residual blocks as the released code does, ignoring every skip input
            that already has the block's shape (:mod:`genood.models.hvae.layers`); default False (intended).
        weightnorm: weight-normalise every convolution and dense map.
    """

    def __init__(self, input_shape: Sequence[int], stages: Optional[Sequence[Mapping[str, Any]]] = None,
                 likelihood: str = "bernoulli", n_mix: int = 10, n_bins: int = 256, activation: str = "relu",
                 skip_connections: bool = True, weightnorm: bool = True, drop_same_shape_skips: bool = False):
        super().__init__()
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"HVAE needs image inputs of shape (C, H, W), got {input_shape}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {likelihood!r}")
        specs = [parse_stage(i, s) for i, s in enumerate(stages if stages is not None else FASHIONMNIST_STAGES)]
        if not specs:
            raise ValueError("stages must hold at least one stage")
        self.input_shape, self.skip_connections = input_shape, skip_connections
        wn, act = weightnorm, activation

        # inference path, bottom-up
        self.q_stacks, self.q_projections = nn.ModuleList(), nn.ModuleList()
        q_in, h_prev, h_shapes, z_in_shapes = input_shape, None, [], []
        for i, spec in enumerate(specs):
            aux = [h_prev] * len(spec.blocks) if (skip_connections and h_prev is not None) else None
            stack = BlockStack(q_in, spec.blocks, transposed=False, aux_shapes=aux, first_residual=i > 0,
                               activation=act, weightnorm=wn, drop_same_shape_skips=drop_same_shape_skips)
            h = stack.out_shape
            z_shape = (spec.latent_features, *h[1:]) if spec.latent == "conv" else (spec.latent_features,)
            proj_shape = h if spec.latent == "dense" else z_shape
            self.q_stacks.append(stack)
            # the top latent feeds no stage above it: no projection (an unused layer would break DDP)
            top = i == len(specs) - 1
            self.q_projections.append(Dense(z_shape, h, wn) if spec.latent == "dense" and not top else nn.Identity())
            h_shapes.append(h)
            z_in_shapes.append(proj_shape)
            q_in, h_prev = proj_shape, h

        # generative path, top-down: stage i maps projected z_i to d_{i-1} (the features z_{i-1}'s prior reads)
        n = len(specs)
        p_stacks, p_projections, d_shapes = [None] * n, [None] * n, [None] * n
        upper_hidden: Optional[list[Shape]] = None
        for i in reversed(range(n)):
            spec = specs[i]
            rev = list(spec.blocks[::-1])  # reversed blocks: the strided one comes first (transposed: upsamples)
            aux = upper_hidden if (skip_connections and upper_hidden is not None) else None
            stack = BlockStack(z_in_shapes[i], rev, transposed=True, aux_shapes=aux, first_residual=False,
                               activation=act, weightnorm=wn, drop_same_shape_skips=drop_same_shape_skips)
            p_stacks[i] = stack
            z_shape = (spec.latent_features, *h_shapes[i][1:]) if spec.latent == "conv" else (spec.latent_features,)
            p_projections[i] = Dense(z_shape, h_shapes[i], wn) if spec.latent == "dense" else nn.Identity()
            d_shapes[i] = stack.out_shape
            upper_hidden = stack.hidden_shapes
        self.p_stacks, self.p_projections = nn.ModuleList(p_stacks), nn.ModuleList(p_projections)

        # latents: q head on h_i, p head on d_i (the output of stage i+1's generative blocks)
        self.latents = nn.ModuleList()
        for i, spec in enumerate(specs):
            p_in = d_shapes[i + 1] if i + 1 < n else None
            latent = GaussianLatent(spec.latent, spec.latent_features, h_shapes[i], p_in, act, wn)
            if p_in is not None and spec.latent == "conv" and p_in[1:] != h_shapes[i][1:]:
                raise ValueError(f"stage {i}: generative features {p_in} do not match the conv latent's spatial "
                                 f"size {h_shapes[i][1:]}; use strides that divide the input size")
            self.latents.append(latent)
        if d_shapes[0][1:] != input_shape[1:]:
            raise ValueError(f"the generative path ends at spatial size {d_shapes[0][1:]} but the input is "
                             f"{input_shape[1:]}; use strides whose product divides the image size")
        kwargs = {"n_mix": n_mix, "n_bins": n_bins} if likelihood != "bernoulli" else {}
        self.likelihood_name = likelihood
        self.likelihood = LIKELIHOODS[likelihood](d_shapes[0], input_shape, activation=act, weightnorm=wn, **kwargs)

    @property
    def n_latents(self) -> int:
        return len(self.latents)

    @property
    def latent_shapes(self) -> list[Shape]:
        return [lat.shape for lat in self.latents]

    # ---- the two passes -----------------------------------------------------------------------------
    def infer(self, x: torch.Tensor, eps: Optional[Sequence[Optional[torch.Tensor]]] = None,
              use_mode: Optional[Sequence[Optional[torch.Tensor]]] = None) -> list[Posterior]:
        """Bottom-up pass: q(z_i | ·) and z_i per layer (bottom first). ``eps[i]`` is layer i's noise
        (None: drawn from the torch RNG); rows where ``use_mode[i]`` is True pass q's mean upward."""
        posteriors, inp, h_prev = [], x, None
        for i, (stack, latent, proj) in enumerate(zip(self.q_stacks, self.latents, self.q_projections)):
            aux = [h_prev] * len(stack.blocks) if (self.skip_connections and h_prev is not None) else None
            h, _ = stack(inp, aux)
            post = latent.posterior(h, eps[i] if eps is not None else None,
                                    use_mode[i] if use_mode is not None else None)
            posteriors.append(post)
            inp, h_prev = proj(post.z), h
        return posteriors

    def generate(self, posteriors: Sequence[Posterior], x: torch.Tensor,
                 decode_from_p: Optional[Sequence[Optional[torch.Tensor]]] = None) -> ForwardPass:
        """Top-down pass with the posterior samples: log p(x | z) and each layer's MC KL term.

        Rows where ``decode_from_p[i]`` is True use the mean of p(z_i | z_{i+1}) instead of the posterior
        sample for z_i and get no KL term for layer i (the L^{>k} bound's lower layers)."""
        n = self.n_latents
        kls, priors = [None] * n, [None] * n
        d, upper_hidden = None, None
        for i in reversed(range(n)):
            post = posteriors[i]
            p = self.latents[i].prior(d, post.z)
            kl = post.q.log_prob(post.z) - p.log_prob(post.z)
            z = post.z
            mask = decode_from_p[i] if decode_from_p is not None else None
            if mask is not None:
                m = rows_mask(mask, z)
                z = torch.where(m, p.mu, z)
                kl = torch.where(m, torch.zeros_like(kl), kl)
            aux = upper_hidden if (self.skip_connections and upper_hidden is not None) else None
            d, upper_hidden = self.p_stacks[i](self.p_projections[i](z), aux)
            kls[i], priors[i] = kl, p
        return ForwardPass(self.likelihood.log_prob(x, d), kls, list(posteriors), priors)

    def forward(self, x: torch.Tensor, eps=None, use_mode=None, decode_from_p=None) -> ForwardPass:
        """Inference then generation on the same rows (see :meth:`infer` and :meth:`generate`)."""
        return self.generate(self.infer(x, eps, use_mode), x, decode_from_p)

    # ---- bounds ----------------------------------------------------------------------------------------
    def bounds(self, x: torch.Tensor, samples: Mapping[int, int], index: Optional[torch.Tensor] = None,
               seed: int = 0, max_rows: Optional[int] = None) -> dict[int, torch.Tensor]:
        """Importance-weighted L^{>k}(x) for every ``k -> S_k`` in ``samples`` (k = 0: the ELBO), ``[B]`` each.

        All ``B · Σ_k S_k`` rows go through the network in one call (or in chunks of ``max_rows`` rows).
        The noise of row (sample b, importance sample s, layer i) is a counter-based function of
        ``(seed, index[b], s, i)`` (:func:`~genood.models.counter_noise.counter_normal`), so a sample's value
        does not depend on its batch; ``index`` defaults to ``arange(B)``. Bounds for different k share
        the noise of equal sample ids (common random numbers).
        """
        b = x.shape[0]
        for k, s in samples.items():
            if not 0 <= int(k) <= self.n_latents:
                raise ValueError(f"k must be in [0, {self.n_latents}] for an HVAE with {self.n_latents} latent "
                                 f"layers, got {k}")
            if int(s) < 1:
                raise ValueError(f"the number of importance samples must be >= 1, got {s} for k={k}")
        device = x.device
        index = torch.arange(b, device=device) if index is None else torch.as_tensor(index, device=device).long()
        if index.shape != (b,):
            raise ValueError(f"index must have shape ({b},), got {tuple(index.shape)}")
        ks = torch.cat([torch.full((int(s) * b,), int(k), device=device, dtype=torch.long) for k, s in samples.items()])
        sid = torch.cat([torch.arange(int(s), device=device).repeat_interleave(b) for s in samples.values()])
        rows = torch.arange(ks.shape[0], device=device) % b
        chunk = max_rows or ks.shape[0]
        values = torch.cat([self.row_bounds(x[rows[j:j + chunk]], ks[j:j + chunk], index[rows[j:j + chunk]],
                                             sid[j:j + chunk], seed) for j in range(0, ks.shape[0], chunk)])
        out, start = {}, 0
        for k, s in samples.items():
            out[int(k)] = log_mean_exp(values[start:start + int(s) * b].view(int(s), b), 0)
            start += int(s) * b
        return out

    def row_bounds(self, x: torch.Tensor, ks: torch.Tensor, index: torch.Tensor, sample_id: torch.Tensor,
                   seed: int = 0) -> torch.Tensor:
        """One single-sample bound per row ``[R]``: row r is the integrand of L^{>ks[r]} for input ``x[r]`` with
        the counter-based noise of ``(seed, index[r], sample_id[r])`` (:meth:`bounds` log-mean-exps these)."""
        eps = [counter_normal(seed, index, sample_id, i, shape, x.dtype) for i, shape in enumerate(self.latent_shapes)]
        lower = [ks > i for i in range(self.n_latents)]  # layer i is among the k lowest on rows with k > i
        return self.forward(x, eps, use_mode=lower, decode_from_p=lower).bound()

    def elbo(self, x: torch.Tensor, S: int = 1, **kwargs) -> torch.Tensor:
        """Importance-weighted ELBO with S samples (one batched call), ``[B]`` nats. ``kwargs``: see :meth:`bounds`."""
        return self.bounds(x, {0: S}, **kwargs)[0]

    def elbo_skip_lower(self, x: torch.Tensor, k: int, S: int = 1, **kwargs) -> torch.Tensor:
        """L^{>k}(x) (the k lowest latents decoded from the conditional prior's mean), ``[B]`` nats."""
        return self.bounds(x, {k: S}, **kwargs)[k]

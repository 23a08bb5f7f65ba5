"""MSMA as a :class:`~genood.models.base.GenerativeModel`: a noise-conditional score network trained by
denoising score matching, whose score norms at L noise levels feed three density detectors.

Training (``loss``; released ``train.py`` + ``losses.dsm_loss``): for each example one level index
i ~ U{0, …, L−1}, x̃ = x + σ_i ε, loss = batch mean of ½ σ_i² ‖s_θ(x̃, σ_i) + (x̃ − x)/σ_i²‖² (see
:mod:`genood.models.msma.objective`). Optional random horizontal / vertical flips of the training images
(the paper flips CIFAR horizontally and brain scans vertically) are applied here, per example, in training
only. Validation uses the same objective with the level and the noise of each example drawn from its
dataset index (counter-based), so ``val/loss`` is comparable between epochs and exact under DDP.

Scoring (``score_outputs``): ``score_norms`` ``[B, L]``, n_i(x) = ‖σ_i s_θ(x, σ_i)‖₂ on the clean input,
all L levels in one network call (``score_max_rows`` chunks it). Scorers: ``msma_gmm``, ``msma_flow``,
``msma_knn`` and ``msma_norm_l{i}`` (see :mod:`genood.models.msma.scorers`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from genood.models.base import GenerativeModel
from genood.models.counter_noise import counter_normal, mix32, row_keys
from genood.scoring.knn import KNNScorer

from .objective import dsm_loss, geometric_sigmas, perturb, score_norms
from .refinenet import RefineNetScoreNet
from .scorers import PAPER_GMM_COMPONENTS, FlowScorer, GMMScorer, ScoreNormScorer
from .torch_model import MLPScoreNet, UNetScoreNet

NETWORKS = ("unet", "refinenet", "mlp")
OUTPUT_SCALES = ("none", "sigma")
VAL_STREAM = 0x5EED  # counter-noise stream of the validation draws


class MSMA(GenerativeModel):
    """Multiscale Score Matching Analysis (Mahmood, Oliva, Styner; ICLR 2021). See README.md.

    Args (paper values as defaults where the paper has one):
        input_shape: ``(C, H, W)`` images or ``(d,)`` vectors, linked from the datamodule by the CLI.
        lr: Adam learning rate (paper 1e-3).
        network: "unet" (diffusers ``UNet2DModel``), "refinenet" (the paper's NCSN v1 RefineNet) or "mlp"
            (vectors); None = "unet" for images, "mlp" for vectors.
        channels: UNet widths per resolution / MLP hidden sizes / RefineNet ``[f]`` (paper f = 128);
            None = (64, 128, 128), (256, 256, 256), [128].
        layers_per_block, attention_blocks, mid_attention, norm_num_groups, dropout, level_embedding: the
            UNet's options (:class:`~genood.models.msma.torch_model.UNetScoreNet`).
        output_scale: "none" (paper: the network outputs the score) or "sigma" (NCSNv2-style s = net / σ).
        num_levels, sigma_max, sigma_min: the geometric noise levels (paper 10, 1.0, 0.01).
        hflip, vflip: random flips of training images (paper: horizontal for CIFAR).
        score_max_rows: at most this many (sample, level) rows per network call when scoring (None = the
            whole stacked batch at once).
        val_seed: seed of the validation levels and noise.
        gmm_components, gmm_folds, gmm_n_jobs, gmm_seed: the GMM's grid (paper {2, 4, …, 20}), CV folds
            (paper 10), joblib workers and k-means seed.
        flow_*: the MAF (:class:`~genood.models.msma.scorers.FlowScorer`; paper: 1 layer, MADE 2 × 128,
            Adadelta lr 0.01, batch 128, 1000 epochs, raw vectors); ``flow_val_fraction`` and
            ``flow_patience`` are our early stopping (0 / None: the paper's plain 1000 epochs).
        knn_k: the kNN detector's k (paper 5).
        norm_levels: the levels (1-based, 1 = σ_max) that get a single-level ``msma_norm_l{i}`` scorer
            (None = all L; [] = none).
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, lr: float = 1e-3, network: Optional[str] = None,
                 channels: Optional[Sequence[int]] = None, layers_per_block: int = 2,
                 attention_blocks: Sequence[int] = (), mid_attention: bool = True,
                 norm_num_groups: Optional[int] = None, dropout: float = 0.0, level_embedding: str = "learned",
                 output_scale: str = "none", num_levels: int = 10, sigma_max: float = 1.0, sigma_min: float = 0.01,
                 hflip: bool = False, vflip: bool = False, score_max_rows: Optional[int] = None, val_seed: int = 0,
                 gmm_components: Sequence[int] = PAPER_GMM_COMPONENTS, gmm_folds: int = 10,
                 gmm_n_jobs: Optional[int] = 1, gmm_seed: int = 0, flow_hidden_features: int = 128,
                 flow_hidden_layers: int = 2, flow_num_layers: int = 1, flow_optimizer: str = "adadelta",
                 flow_lr: float = 0.01, flow_batch_size: int = 128, flow_epochs: int = 1000,
                 flow_val_fraction: float = 0.1, flow_patience: Optional[int] = 100, flow_standardize: bool = False,
                 flow_seed: int = 0, knn_k: int = 5, norm_levels: Optional[Sequence[int]] = None):
        super().__init__(input_shape=input_shape, lr=lr)
        if self.input_shape is None:
            raise ValueError("MSMA needs input_shape, (C, H, W) or (d,) (the CLI links it from the datamodule; pass it "
                             "when constructing the model directly)")
        is_image = len(self.input_shape) == 3
        if not is_image and len(self.input_shape) != 1:
            raise ValueError(f"MSMA takes images (C, H, W) or vectors (d,), got input_shape {self.input_shape}")
        network = network or ("unet" if is_image else "mlp")
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
        if network in ("unet", "refinenet") and not is_image:
            raise ValueError(f"network {network!r} needs images (C, H, W), got input_shape {self.input_shape}; "
                             "use network: mlp for vectors")
        if output_scale not in OUTPUT_SCALES:
            raise ValueError(f"output_scale must be one of {OUTPUT_SCALES}, got {output_scale!r}")
        if (hflip or vflip) and not is_image:
            raise ValueError("hflip / vflip augment images; the inputs are vectors")
        self.save_hyperparameters()
        self.network, self.output_scale, self.hflip, self.vflip = network, output_scale, hflip, vflip
        self.score_max_rows, self.val_seed = score_max_rows, val_seed
        sigmas = geometric_sigmas(sigma_max, sigma_min, num_levels)
        self.num_levels = num_levels
        self.register_buffer("sigmas", sigmas.float(), persistent=False)
        if network == "unet":
            self.net = UNetScoreNet(self.input_shape, sigmas, channels or (64, 128, 128), layers_per_block,
                                    attention_blocks, mid_attention, norm_num_groups, dropout, level_embedding)
        elif network == "refinenet":
            f = list(channels or [128])
            if len(f) != 1:
                raise ValueError(f"network refinenet takes channels: [f] (one filter count; paper 128), got {f}")
            self.net = RefineNetScoreNet(self.input_shape, num_levels, f[0])
        else:
            self.net = MLPScoreNet(int(self.input_shape[0]), num_levels, channels or (256, 256, 256))
        self.scorer_args = dict(
            gmm=dict(components=gmm_components, folds=gmm_folds, n_jobs=gmm_n_jobs, seed=gmm_seed),
            flow=dict(hidden_features=flow_hidden_features, hidden_layers=flow_hidden_layers,
                      num_layers=flow_num_layers, optimizer=flow_optimizer, lr=flow_lr, batch_size=flow_batch_size,
                      epochs=flow_epochs, val_fraction=flow_val_fraction, patience=flow_patience,
                      standardize=flow_standardize, seed=flow_seed))
        self.knn_k = knn_k
        self.norm_levels = list(range(1, num_levels + 1)) if norm_levels is None else [int(i) for i in norm_levels]
        bad = [i for i in self.norm_levels if not 1 <= i <= num_levels]
        if bad:
            raise ValueError(f"norm_levels {bad} outside 1..{num_levels} (1 = σ_max)")
        self.scorers()  # fail at construction on bad scorer settings

    # ---- the score network ------------------------------------------------------------------------
    def score(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """s_θ(x, σ_level) for rows of ``x`` with integer level indices ``level`` ``[R]`` (0 = σ_max)."""
        out = self.net(x, level)
        if self.output_scale == "sigma":
            out = out / self.sigmas[level].reshape(-1, *([1] * (x.ndim - 1))).to(out.dtype)
        return out

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"MSMA was built for inputs of shape {self.input_shape}, got a batch of shape "
                             f"{tuple(x.shape)}")
        return x.float() if not torch.is_floating_point(x) else x

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        for flag, dim in ((self.hflip, -1), (self.vflip, -2)):
            if flag:
                flip = torch.rand(x.shape[0], device=x.device) < 0.5
                x = torch.where(flip.view(-1, *([1] * (x.ndim - 1))), x.flip(dim), x)
        return x

    def _val_draws(self, x: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Level and noise of each validation example from its dataset index (counter-based)."""
        index = index.to(x.device).long()
        zero = torch.zeros_like(index)
        level = mix32(row_keys(self.val_seed, index, zero, VAL_STREAM)) % self.num_levels
        noise = counter_normal(self.val_seed, index, zero, VAL_STREAM + 1, x.shape[1:], dtype=x.dtype)
        return level, noise

    # ---- GenerativeModel ------------------------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        """DSM loss with λ(σ) = σ² and one level per example (random in training, index-keyed otherwise)."""
        x = self._check_x(batch["x"])
        if self.training:
            x = self._augment(x)
            level = torch.randint(0, self.num_levels, (x.shape[0],), device=x.device)
            noise = torch.randn_like(x)
        else:
            index = batch.get("index")
            index = torch.arange(x.shape[0]) if index is None else torch.as_tensor(index)
            level, noise = self._val_draws(x, index)
        sigma = self.sigmas[level]
        x_tilde = perturb(x, sigma, noise)
        return dsm_loss(self.score(x_tilde, level), x_tilde, x, sigma)

    def score_norms(self, x: torch.Tensor) -> torch.Tensor:
        """n(x) ``[B, L]``: n_i(x) = ‖σ_i s_θ(x, σ_i)‖₂ for all levels in one stacked call."""
        return score_norms(self.score, self._check_x(x), self.sigmas, self.score_max_rows)

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """``{"score_norms": [B, L]}`` on the clean inputs (deterministic: ``index`` is not needed)."""
        return {"score_norms": self.score_norms(x)}

    def scorers(self) -> list:
        return [GMMScorer("msma_gmm", **self.scorer_args["gmm"]),
                FlowScorer("msma_flow", **self.scorer_args["flow"]),
                KNNScorer("msma_knn", key="score_norms", k=self.knn_k),
                *[ScoreNormScorer(i) for i in self.norm_levels]]

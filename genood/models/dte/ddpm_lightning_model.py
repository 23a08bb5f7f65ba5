"""The tabular DDPM anomaly detector DTE compares against (methods.md §5.6; DTE's released ``ddpm.py``).

Training: ε-prediction (DDPM Eq. 14), T = 1000, linear β 1e-4 → 1e-2,
x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, loss ‖ε − ε_θ(x_t, t)‖² averaged over features and batch. Adam 1e-4,
weight decay 5e-4, batch 64, at most 400 epochs; the released early stop (``early_stop=True``): from epoch
51 on, stop when the epoch's mean loss exceeds the one 39 epochs earlier (``losses[-1] > losses[-40]``).

Score (``ddpm_recon``): the mean squared error over features between x and its reconstruction after
``recon_t`` = 250 reverse steps t = 249 → 0, all samples of a batch stepped together:

* ``recon_start="noised"`` (default, the paper's description): first draw x_249 ~ q(x_249 | x) =
  N(√ᾱ_249 x, (1 − ᾱ_249) I), then denoise;
* ``recon_start="clean"`` (the released code: its forward-noising line is commented out): start the
  reverse chain from x itself.

``recon_sampling="ancestral"`` (default) steps x_{t−1} = μ_θ(x_t, t) + √β̃_t z (the fixed-small variance of
diffusers' ``DDPMScheduler``, whose ``step`` gives the same value for the same z; tests check it);
``"mean"`` keeps only the posterior mean μ_θ(x_t, t) = (x_t − β_t / √(1 − ᾱ_t) · ε_θ) / √α_t (DDPM Eq. 11),
which is what the released code does (its noise term is commented out too). The evaluator passes each
sample's dataset index, and the noise z of a sample is a counter-based function of (``recon_seed``, index,
step) (:mod:`genood.models.counter_noise`): a score does not depend on its batch or DDP rank. Called without
an index, ``recon_seed`` seeds one generator per call (None = the global RNG).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from genood.models.base import GenerativeModel
from genood.models.counter_noise import counter_normal
from genood.scoring.reconstruction import mse_distance

from .ddpm_torch_model import TabularResNetDenoiser
from .schedule import BETA_END, BETA_START, make_ddpm_scheduler
from .scorers import DDPMReconstructionScorer

RECON_STARTS = ("noised", "clean")
RECON_SAMPLINGS = ("ancestral", "mean")


def should_stop_early(epoch_losses: list[float]) -> bool:
    """The released early stop: from epoch 51 on (52 losses), stop when the latest epoch's mean loss exceeds
    the one 39 epochs earlier (``losses[-1] > losses[-40]``)."""
    return len(epoch_losses) > 51 and epoch_losses[-1] > epoch_losses[-40]


class TabularDDPM(GenerativeModel):
    """ε-prediction DDPM with an RTDL-ResNet denoiser, scored by reconstruction error (module docstring)."""

    def __init__(self, input_shape: Optional[Sequence[int]] = None, lr: float = 1e-4, weight_decay: float = 5e-4,
                 T: int = 1000, beta_start: float = BETA_START, beta_end: float = BETA_END, d_main: int = 128,
                 n_blocks: int = 3, d_hidden: int = 256, dropout_first: float = 0.4, dropout_second: float = 0.1,
                 dim_t: int = 256, recon_t: int = 250, recon_start: str = "noised", recon_sampling: str = "ancestral",
                 recon_seed: Optional[int] = 0, early_stop: bool = True):
        super().__init__(input_shape=input_shape, lr=lr)
        if self.input_shape is None or len(self.input_shape) != 1:
            raise ValueError(f"TabularDDPM works on feature vectors: input_shape must be (d,), got {input_shape}")
        if recon_start not in RECON_STARTS:
            raise ValueError(f"recon_start must be one of {RECON_STARTS}, got {recon_start!r}")
        if recon_sampling not in RECON_SAMPLINGS:
            raise ValueError(f"recon_sampling must be one of {RECON_SAMPLINGS}, got {recon_sampling!r}")
        if not 1 <= recon_t <= T:
            raise ValueError(f"recon_t must lie in [1, T={T}], got {recon_t}")
        self.save_hyperparameters()
        self.d = int(self.input_shape[0])
        self.weight_decay, self.T, self.recon_t = weight_decay, T, recon_t
        self.recon_start, self.recon_sampling, self.recon_seed = recon_start, recon_sampling, recon_seed
        self.early_stop = early_stop
        self.scheduler = make_ddpm_scheduler(T, beta_start, beta_end)
        self.net = TabularResNetDenoiser(self.d, d_main, n_blocks, d_hidden, dropout_first, dropout_second, dim_t)
        self.epoch_losses: list[float] = []
        self._epoch_sum, self._epoch_count = 0.0, 0

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        return self.flat_inputs(x, self.d)

    # ---- training -------------------------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        x0 = self._x(batch["x"])
        if self.training and x0.shape[0] < 2:
            # BatchNorm cannot train on one sample (a trailing batch of size 1): skip it with a zero loss.
            return sum(p.sum() for p in self.net.parameters()) * 0.0
        t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.scheduler.add_noise(x0, noise, t)
        return F.mse_loss(self.net(x_t, t), noise)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def on_train_epoch_start(self) -> None:
        self._epoch_sum, self._epoch_count = 0.0, 0

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._epoch_sum += float(loss.detach()) * batch["x"].shape[0]
        self._epoch_count += batch["x"].shape[0]

    def on_train_epoch_end(self) -> None:
        stats = torch.tensor([self._epoch_sum, float(self._epoch_count)], device=self.device, dtype=torch.float64)
        if self._trainer is not None:
            stats = self.trainer.strategy.reduce(stats, reduce_op="sum")  # same value on every rank
        self.epoch_losses.append(float(stats[0] / stats[1].clamp_min(1)))
        if self.early_stop and should_stop_early(self.epoch_losses):
            self.trainer.should_stop = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ddpm_epoch_losses"] = list(self.epoch_losses)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.epoch_losses = list(checkpoint.get("ddpm_epoch_losses", []))

    # ---- scoring ----------------------------------------------------------------------------------
    def posterior_mean(self, eps: torch.Tensor, t: int, x_t: torch.Tensor) -> torch.Tensor:
        """μ_θ(x_t, t) = (x_t − β_t / √(1 − ᾱ_t) · ε_θ) / √α_t (DDPM Eq. 11)."""
        s = self.scheduler
        beta_t, abar_t = float(s.betas[t]), float(s.alphas_cumprod[t])
        return (x_t - beta_t / (1.0 - abar_t) ** 0.5 * eps) / (1.0 - beta_t) ** 0.5

    def posterior_std(self, t: int) -> float:
        """√β̃_t, β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t): the fixed-small variance of p(x_{t−1} | x_t) (DDPM Eq. 7)."""
        s = self.scheduler
        if t == 0:
            return 0.0
        beta_t, abar_t, abar_prev = float(s.betas[t]), float(s.alphas_cumprod[t]), float(s.alphas_cumprod[t - 1])
        return (beta_t * (1.0 - abar_prev) / (1.0 - abar_t)) ** 0.5

    def _noise(self, x: torch.Tensor, index: Optional[torch.Tensor], stream: int,
               generator: Optional[torch.Generator]) -> torch.Tensor:
        """N(0, I) noise for ``x``: keyed by each sample's dataset ``index`` when given (the same value in any
        batch, on any DDP rank), else drawn from ``generator``."""
        if index is None:
            return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        index = torch.as_tensor(index, device=x.device).long()
        return counter_normal(self.recon_seed or 0, index, torch.zeros_like(index), stream, (self.d,), x.dtype)

    def reconstruct(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x after ``recon_t`` reverse steps t = recon_t − 1 → 0 (start and sampling per the options); each
        ancestral step is x_{t−1} = μ_θ(x_t, t) + √β̃_t z with the scheduler's β, ᾱ (``scheduler.step`` with
        the same z gives the same value; it only lacks a way to pass z, which per-sample noise needs)."""
        x = self._x(x)
        g = None
        if self.recon_seed is not None and index is None:
            g = torch.Generator(device=x.device).manual_seed(self.recon_seed)
        if self.recon_start == "noised":
            t0 = torch.full((x.shape[0],), self.recon_t - 1, device=x.device, dtype=torch.long)
            sample = self.scheduler.add_noise(x, self._noise(x, index, self.T, g), t0)
        else:
            sample = x
        for t in range(self.recon_t - 1, -1, -1):
            eps = self.net(sample, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
            sample = self.posterior_mean(eps, t, sample)
            if self.recon_sampling == "ancestral" and t > 0:
                sample = sample + self.posterior_std(t) * self._noise(x, index, t, g)
        return sample

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """The reconstruction family's outputs: ``x`` [B, d], ``x_hat`` [B, 1, d] (one reconstruction) and
        their squared error ``ddpm_recon_mse`` [B]; with ``index`` the reconstruction noise is per sample
        (exact under DDP)."""
        x = self._x(x)
        out = {"x": x, "x_hat": self.reconstruct(x, index).unsqueeze(1)}
        out["ddpm_recon_mse"] = mse_distance(out["x"], out["x_hat"])[:, 0]
        return out

    def scorers(self) -> list:
        return [DDPMReconstructionScorer()]

"""The tabular DDPM anomaly detector DTE compares against (Livernoche et al. 2024; DTE's released
``diffusion/ddpm.py``; the family README, "DDPM reconstruction variants").

Training: ε-prediction (DDPM Eq. 14), T = 1000, linear β 1e-4 → 1e-2,
x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, loss ‖ε − ε_θ(x_t, t)‖² averaged over features and batch. Adam 1e-4,
weight decay 5e-4, batch 64 with the last partial batch dropped (the released loader's ``drop_last=True``;
set ``data.init_args.drop_last: true``: BatchNorm cannot train on a batch of one), at most 400 epochs; the
released early stop (``early_stop=True``): from epoch 51 on, stop when the epoch's mean loss exceeds the one
39 epochs earlier (``losses[-1] > losses[-40]``).

Score (``ddpm_recon``): the mean squared error over features between x and its reconstruction after
``recon_t`` = 250 reverse steps t = 249 → 0, all samples of a batch stepped together. ``recon_variant``:

* ``"released"`` (default; ``ddpm.py`` at the repository's HEAD, commit 2aef173): start the reverse chain
  from the clean x (the released forward-noising line is commented out) and take ancestral steps
  x_{t−1} = μ_θ(x_t, t) + √β̃_t z (z = 0 at t = 0), with μ_θ(x_t, t) = (x_t − β_t / √(1 − ᾱ_t) · ε_θ) / √α_t
  (DDPM Eq. 11) and the fixed-small variance β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) (DDPM Eq. 7; diffusers'
  ``DDPMScheduler.step`` gives the same value for the same z, tests check it);
* ``"mean_only"`` (the first release, commit 20795a4, superseded by 2aef173, which restored the noise term):
  clean start, posterior mean μ_θ only;
* ``"paper"`` (the paper's description): first draw x_{recon_t−1} ~ q(x_{recon_t−1} | x) =
  N(√ᾱ x, (1 − ᾱ) I), then ancestral steps.

The evaluator passes each sample's dataset index, and the noise z of a sample is a counter-based function of
(``recon_seed``, index, step) (:mod:`genood.models.counter_noise`): a score does not depend on its batch or
DDP rank. Called without an index, ``recon_seed`` seeds one generator per call (None = the global RNG).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from genood.models.base import GenerativeModel, fused_adam
from genood.models.counter_noise import counter_normal
from genood.scoring.reconstruction import mse_distance

from .ddpm_torch_model import TabularResNetDenoiser
from .schedule import BETA_END, BETA_START, make_ddpm_scheduler
from .scorers import DDPMReconstructionScorer

# recon_variant -> (start from a noised x?, add the posterior noise term in each reverse step?)
RECON_VARIANTS = {"released": (False, True), "mean_only": (False, False), "paper": (True, True)}


def should_stop_early(epoch_losses: list[float]) -> bool:
    """The released early stop: from epoch 51 on (52 losses), stop when the latest epoch's mean loss exceeds
    the one 39 epochs earlier (``losses[-1] > losses[-40]``)."""
    return len(epoch_losses) > 51 and epoch_losses[-1] > epoch_losses[-40]


class TabularDDPM(GenerativeModel):
    """ε-prediction DDPM with an RTDL-ResNet denoiser, scored by reconstruction error (module docstring)."""

    def __init__(self, input_shape: Optional[Sequence[int]] = None, lr: float = 1e-4, weight_decay: float = 5e-4,
                 T: int = 1000, beta_start: float = BETA_START, beta_end: float = BETA_END, d_main: int = 128,
                 n_blocks: int = 3, d_hidden: int = 256, dropout_first: float = 0.4, dropout_second: float = 0.1,
                 dim_t: int = 256, recon_t: int = 250, recon_variant: str = "released",
                 recon_seed: Optional[int] = 0, early_stop: bool = True):
        super().__init__(input_shape=input_shape, lr=lr)
        if self.input_shape is None or len(self.input_shape) != 1:
            raise ValueError(f"TabularDDPM works on feature vectors: input_shape must be (d,), got {input_shape}")
        if recon_variant not in RECON_VARIANTS:
            raise ValueError(f"recon_variant must be one of {list(RECON_VARIANTS)}, got {recon_variant!r}")
        if not 1 <= recon_t <= T:
            raise ValueError(f"recon_t must lie in [1, T={T}], got {recon_t}")
        self.save_hyperparameters()
        self.d = int(self.input_shape[0])
        self.weight_decay, self.T, self.recon_t = weight_decay, T, recon_t
        self.recon_variant, self.recon_seed = recon_variant, recon_seed
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
            raise ValueError("TabularDDPM cannot train on a batch of one sample (its BatchNorm layers need two or "
                             "more): drop the last partial batch as the released code does "
                             "(data.init_args.drop_last: true) or change the batch size")
        t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.scheduler.add_noise(x0, noise, t)
        return F.mse_loss(self.net(x_t, t), noise)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay, **fused_adam())

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
        """x after ``recon_t`` reverse steps t = recon_t − 1 → 0, as ``recon_variant`` says (module docstring):
        a clean or noised start, then x_{t−1} = μ_θ(x_t, t) (+ √β̃_t z for t > 0 in the ancestral variants).
        The step equals diffusers' ``scheduler.step`` with the same z; it is written out because ``step``
        cannot take a given z, which per-sample (index-keyed) noise needs."""
        x = self._x(x)
        noised_start, ancestral = RECON_VARIANTS[self.recon_variant]
        g = None
        if self.recon_seed is not None and index is None:
            g = torch.Generator(device=x.device).manual_seed(self.recon_seed)
        if noised_start:
            t0 = torch.full((x.shape[0],), self.recon_t - 1, device=x.device, dtype=torch.long)
            sample = self.scheduler.add_noise(x, self._noise(x, index, self.T, g), t0)
        else:
            sample = x
        for t in range(self.recon_t - 1, -1, -1):
            eps = self.net(sample, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
            sample = self.posterior_mean(eps, t, sample)
            if ancestral and t > 0:
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

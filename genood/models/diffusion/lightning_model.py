"""An image diffusion model (diffusers ``UNet2DModel``) scored by LMD: lift, map, detect (Liu et al., ICML 2023).

Training (the released sub-VP recipe, ``configs/subvp/*_ddpm_continuous.py``): images in [0, 1] are mapped to
[−1, 1], randomly flipped left-right (``random_flip``), and the ε-network is trained by denoising score
matching on the continuous-time sub-VP SDE (:mod:`.sde`; or the discrete DDPM with ``process="ddpm"``,
:mod:`.ddpm`). Adam (lr 2e-4) with a linear warm-up over ``warmup_steps`` (5000), gradient clipping at 1
(``trainer.gradient_clip_val``) and an exponential moving average of the weights with decay
min(``ema_decay``, (1 + n) / (10 + n)) after the n-th update (the released ``ExponentialMovingAverage``).
Validation and scoring use the EMA network.

Scoring (``score_outputs``): every image is inpainted ``attempts`` = r times (10) with the masks of
:mod:`.masks` (lift) by the replacement inpainter of :mod:`.inpaint` with ``steps`` = N reverse steps (map),
all r attempts of a batch in one UNet call per step and the noise keyed by (``score_seed``, dataset index,
attempt, step). It returns ``x`` [B, C, H, W] and ``x_hat`` [B, r, C, H, W] in [0, 1] (unclamped, as the
released code); the scorers (detect, :mod:`.scorers`) take a distance per attempt and its median. In the test
loop each batch is reduced at once to the per-attempt distances ``[B, r]`` (``keep_reconstructions=False``),
so the evaluator never holds the reconstructions of a whole dataset.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

from genood.models.base import GenerativeModel
from genood.models.counter_noise import counter_normal
from genood.scoring.reconstruction import reduce_to_distances

from .ddpm import DiscreteDDPM
from .inpaint import FINALS, ReplacementInpainter
from .masks import check_mask_geometry, make_masks
from .scorers import lmd_scorers
from .sde import SubVPSDE
from .torch_model import build_unet, load_unet

PROCESSES = ("subvp", "ddpm")
VAL_STREAM_U, VAL_STREAM_Z = 0x7FFE0001, 0x7FFE0002  # counter streams of the validation loss


class ImageDiffusion(GenerativeModel):
    """Image diffusion model + LMD scorers (module docstring).

    Args:
        input_shape: ``(C, S, S)``, linked from the datamodule (square images, S divisible by the mask blocks).
        lr: Adam learning rate (paper 2e-4).
        process: "subvp" (paper: the continuous-time sub-VP SDE) or "ddpm" (discrete, ``DDPMScheduler``).
        beta_min, beta_max: the sub-VP SDE's β(0), β(1) (0.1, 20).
        train_eps, sample_eps: smallest training time (1e-5) and last sampling time (1e-3) of the sub-VP SDE.
        ddpm_timesteps, ddpm_beta_start, ddpm_beta_end: the DDPM option's schedule (1000, 1e-4, 0.02).
        unet: a preset ("paper", "small") or a dict of ``UNet2DModel`` arguments (:mod:`.torch_model`).
        pretrained: a diffusers folder or a checkpoint to start from (:func:`.torch_model.load_unet`); set
            ``trainer.max_epochs: 0`` to evaluate it without training.
        ema_decay: EMA decay (paper 0.9999).
        warmup_steps: linear learning-rate warm-up in optimizer steps (paper 5000; 0 = none).
        random_flip: random left-right flips in training (paper: on).
        mask, mask_blocks, mask_patch, mask_ratio: the lift (:mod:`.masks`; paper ``checkerboard_alt``, 8).
        attempts: r, inpainting attempts per image (paper 10).
        steps: N, reverse steps per attempt (paper 1000).
        final: "released" (the released inpainter's output) or "mean" (:mod:`.inpaint`).
        attempts_per_call: attempts per UNet call (None = all r in one call; 1 = a per-attempt loop).
        score_seed: seed of the masks' and the sampler's counter-based noise.
        distances: the scorers' distances, from "lpips", "mse", "ssim" (None = all three when
            ``lpips_backbone`` is set, else mse and ssim). Scorer names are ``lmd_<distance>``.
        lpips_backbone, lpips_heads: LPIPS weight files (:class:`~genood.scoring.reconstruction.LPIPSDistance`).
        aggregate: "median" (paper) or "mean" over the r attempts.
        keep_reconstructions: return x and x_hat from the test loop instead of per-attempt distances.
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, lr: float = 2e-4, process: str = "subvp",
                 beta_min: float = 0.1, beta_max: float = 20.0, train_eps: float = 1e-5, sample_eps: float = 1e-3,
                 ddpm_timesteps: int = 1000, ddpm_beta_start: float = 1e-4, ddpm_beta_end: float = 0.02,
                 unet: Union[str, dict] = "paper", pretrained: Optional[str] = None, ema_decay: float = 0.9999,
                 warmup_steps: int = 5000, random_flip: bool = True, mask: str = "checkerboard_alt",
                 mask_blocks: int = 8, mask_patch: int = 4, mask_ratio: float = 0.5, attempts: int = 10,
                 steps: int = 1000, final: str = "released", attempts_per_call: Optional[int] = None,
                 score_seed: int = 0, distances: Optional[Sequence[str]] = None,
                 lpips_backbone: Optional[str] = None, lpips_heads: Optional[str] = None, aggregate: str = "median",
                 keep_reconstructions: bool = False):
        super().__init__(input_shape=input_shape, lr=lr)
        shape = self.input_shape
        if shape is None or len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"ImageDiffusion needs square images: input_shape (C, S, S), got {input_shape} (the CLI "
                             "links it from the datamodule; pass it when constructing the model directly)")
        if process not in PROCESSES:
            raise ValueError(f"process must be one of {PROCESSES}, got {process!r}")
        if final not in FINALS:
            raise ValueError(f"final must be one of {FINALS}, got {final!r}")
        if attempts < 1 or steps < 1:
            raise ValueError(f"attempts and steps must be >= 1, got {attempts}, {steps}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        check_mask_geometry(mask, shape[1], mask_blocks, mask_patch, mask_ratio)
        self.save_hyperparameters()
        if process == "subvp":
            self.process = SubVPSDE(beta_min, beta_max, sample_eps=sample_eps, train_eps=train_eps)
        else:
            self.process = DiscreteDDPM(ddpm_timesteps, ddpm_beta_start, ddpm_beta_end)
        self.net = load_unet(pretrained, shape, unet) if pretrained else build_unet(unet, shape)
        self.ema_net = copy.deepcopy(self.net).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.ema_decay, self.warmup_steps, self.random_flip = ema_decay, warmup_steps, random_flip
        self.mask, self.mask_blocks, self.mask_patch, self.mask_ratio = mask, mask_blocks, mask_patch, mask_ratio
        self.attempts, self.score_seed, self.keep_reconstructions = attempts, score_seed, keep_reconstructions
        self.inpainter = ReplacementInpainter(self.process, steps, final=final, seed=score_seed,
                                              attempts_per_call=attempts_per_call)
        self._scorers = lmd_scorers(distances, lpips_backbone, lpips_heads, aggregate)  # loads LPIPS weights now
        self._last_ema_step = -1

    # ---- inputs -----------------------------------------------------------------------------------------
    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"ImageDiffusion was built for inputs of shape {self.input_shape}, got a batch of shape "
                             f"{tuple(x.shape)}")
        if (x < 0).any() or (x > 1).any():
            raise ValueError("ImageDiffusion needs images in [0, 1] (they are mapped to [-1, 1] inside)")
        return x

    # ---- training ---------------------------------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        """Mean over the batch and pixels of ‖ε_θ(x_t, t) − z‖² (:meth:`SubVPSDE.training_inputs`). Training
        draws t and z from the global RNG; validation keys them by the samples' indices (a deterministic
        val/loss) and uses the EMA network."""
        x0 = self._check_x(batch["x"]).float() * 2 - 1
        if self.training and self.random_flip:
            flip = torch.rand(x0.shape[0], device=x0.device) < 0.5
            x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
        if self.training or "index" not in batch:
            u = torch.rand(x0.shape[0], device=x0.device)
            z = torch.randn_like(x0)
        else:
            index = torch.as_tensor(batch["index"], device=x0.device).long()
            zero = torch.zeros_like(index)
            u = torch.special.ndtr(counter_normal(self.score_seed, index, zero, VAL_STREAM_U, (1,)).view(-1))
            z = counter_normal(self.score_seed, index, zero, VAL_STREAM_Z, x0.shape[1:], x0.dtype)
        x_t, t, target = self.process.training_inputs(x0, u, z)
        net = self.net if self.training else self.ema_net  # validation: the EMA network (eval mode, set by Lightning)
        return F.mse_loss(net(x_t, t, return_dict=False)[0], target)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, betas=(0.9, 0.999), eps=1e-8)
        if not self.warmup_steps:
            return opt
        warm = self.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(step / warm, 1.0))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @torch.no_grad()
    def update_ema(self) -> float:
        """One EMA update of ``ema_net`` towards ``net``; returns the decay used."""
        self.ema_updates += 1
        n = int(self.ema_updates)
        decay = min(self.ema_decay, (1 + n) / (10 + n))
        for e, p in zip(self.ema_net.parameters(), self.net.parameters()):
            e.lerp_(p, 1.0 - decay)
        for eb, b in zip(self.ema_net.buffers(), self.net.buffers()):
            eb.copy_(b)
        return decay

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.global_step != self._last_ema_step:  # once per optimizer step (gradient accumulation)
            self._last_ema_step = self.global_step
            self.update_ema()

    def on_train_start(self) -> None:
        self._last_ema_step = self.global_step

    # ---- scoring ----------------------------------------------------------------------------------------
    def masks(self, index: torch.Tensor, batch_size: int, device) -> torch.Tensor:
        """``[B, r, 1, S, S]`` masks for the batch (1 = known)."""
        att = torch.arange(self.attempts, device=device).repeat(batch_size)
        idx = index.repeat_interleave(self.attempts)
        m = make_masks(self.mask, self.input_shape[1], att, idx, self.score_seed, self.mask_blocks, self.mask_patch,
                       self.mask_ratio)
        return m.view(batch_size, self.attempts, *m.shape[1:])

    def inpaint(self, x: torch.Tensor, index: Optional[torch.Tensor] = None,
                masks: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Inpainted reconstructions ``[B, r, C, S, S]`` in [0, 1] of images ``x`` in [0, 1] with the EMA
        network. ``index`` keys the noise (default: the positions 0..B−1 in this batch); ``masks``
        ``[B, r, 1 or C, S, S]`` overrides the configured ones."""
        x = self._check_x(x).float()
        index = torch.arange(x.shape[0], device=x.device) if index is None else torch.as_tensor(index, device=x.device).long()
        if masks is None:
            masks = self.masks(index, x.shape[0], x.device)

        def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.ema_net(x_t, t, return_dict=False)[0]

        was_training = self.ema_net.training
        self.ema_net.eval()  # no dropout when scoring, whatever mode the module is in
        try:
            x_hat = self.inpainter(eps_fn, x * 2 - 1, masks, index)
        finally:
            self.ema_net.train(was_training)
        return (x_hat + 1) / 2

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """The reconstruction family's outputs: ``x`` [B, C, S, S] and ``x_hat`` [B, r, C, S, S], in [0, 1]."""
        x = self._check_x(x).float()
        return {"x": x, "x_hat": self.inpaint(x, index)}

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        out = self.score_outputs(batch["x"], index=batch["index"])
        return out if self.keep_reconstructions else reduce_to_distances(self._scorers, out)

    def scorers(self) -> list:
        return list(self._scorers)

"""The contract between a genood model and the evaluator.

A :class:`GenerativeModel` is a LightningModule that

* trains with :meth:`loss` (a scalar; non-finite losses stop training with a message naming the step),
* computes its per-sample OOD quantities in :meth:`score_outputs` (a dict of ``[B, ...]`` tensors; see
  :mod:`genood.scoring.base`), called under ``torch.inference_mode`` by the test loop with the samples'
  dataset ``index``: a model whose scoring is stochastic seeds each sample's noise from it, so a score never
  depends on which batch or DDP rank the sample landed in,
* lists the scorers that apply to it in :meth:`scorers` (names unique, higher = more OOD).

The evaluator (:mod:`genood.evaluation`) only calls these three; it never looks inside a model.
``input_shape`` is linked from the datamodule by the CLI, so configs never repeat it.
"""

from __future__ import annotations

import random
from typing import Optional, Sequence

import numpy as np
import torch

import lightning as L


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN or infinite."""


class GenerativeModel(L.LightningModule):
    def __init__(self, input_shape: Optional[Sequence[int]] = None, lr: float = 1e-3):
        super().__init__()
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.lr = lr

    # ---- what subclasses implement -------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def scorers(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def select_outputs(self, scorers: Sequence) -> None:
        """Called by the CLI, before training, with the scorers the run will use: a model may then skip
        building, training and computing what none of them reads (DTE trains only the heads they need).
        Default: keep everything."""

    def flat_inputs(self, x: torch.Tensor, num_features: int) -> torch.Tensor:
        """``x`` as float ``[B, num_features]`` vectors, or a ValueError naming the expected width."""
        x = x.flatten(1).float()
        if x.shape[1] != num_features:
            raise ValueError(f"{type(self).__name__} was built for d={num_features} features, got inputs of shape "
                             f"{tuple(x.shape)}")
        return x

    # ---- Lightning plumbing shared by every model ----------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"{type(self).__name__}: training loss is {loss.item()} at global step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}); training stopped. Checkpoints saved before "
                "this step are intact. Lower the learning rate or check the inputs.")
        self.log_loss("loss", loss, batch["x"].shape[0], prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log_loss("loss", loss, batch["x"].shape[0], prog_bar=True)
        return loss

    def log_loss(self, name: str, value: torch.Tensor, batch_size: int, prog_bar: bool = False) -> None:
        """Log ``train/<name>`` or ``val/<name>`` (by the module's mode). Training values are logged per step,
        and only on the steps the trainer writes (every ``log_every_n_steps``): ``self.log`` costs more than a
        small MLP's step, and Lightning discards the other steps' values anyway. Validation values are
        averaged over the epoch and synchronised across DDP ranks."""
        if self._trainer is None:
            return
        if self.training:
            every = max(1, int(getattr(self.trainer, "log_every_n_steps", 1) or 1))
            if self.trainer.global_step % every == 0:
                self.log(f"train/{name}", value, prog_bar=prog_bar, batch_size=batch_size)
        else:
            self.log(f"val/{name}", value, prog_bar=prog_bar, sync_dist=True, batch_size=batch_size)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return self.score_outputs(batch["x"], index=batch["index"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


    # Resuming from last.ckpt must continue exactly as an uninterrupted run: keep the RNG streams (CPU torch,
    # numpy, Python, and the CUDA generator of the device this process trains on).
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        # plain tensors and numbers only, so Lightning's weights_only=True loading accepts the checkpoint
        rng = {"torch": torch.get_rng_state(),
               "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
               "python": random.getstate()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        checkpoint["genood_rng"] = rng

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        rng = checkpoint.get("genood_rng")
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            kind, keys, pos, has_gauss, cached = rng["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            random.setstate(rng["python"])
            device = self._training_device()
            if "cuda" in rng and device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"].cpu(), device)

    def _training_device(self) -> torch.device:
        """The device this process trains on. Lightning restores a checkpoint before it moves the module, so
        ``self.device`` may still be the CPU here: ask the trainer's strategy."""
        if self._trainer is not None:
            return self.trainer.strategy.root_device
        return self.device


def fused_adam() -> dict:
    """Keyword arguments selecting torch's fused Adam kernel (one kernel for every parameter instead of a dozen
    small ops per tensor: the same update up to float rounding, about 10% of a small MLP's CPU step)."""
    return {"fused": True}

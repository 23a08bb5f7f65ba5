"""``<run>/last.ckpt``: the weights (and optimizer, loop and RNG states) to resume from, and the final weights
once training ends.

Writing a checkpoint after every epoch is the usual rule, and for a model whose epoch takes seconds or more it
costs nothing; for a small MLP on a few hundred rows (DTE: 8 steps of a few ms per epoch, 400 epochs) the
writes cost as much as the training. :class:`LastCheckpoint` writes at an epoch end when at least
``min_interval`` seconds have passed since its last write (so every epoch of a model whose epochs are longer),
at the last epoch, and when training ends for any other reason (an early stop, nothing to train), so
``last.ckpt`` always holds the final weights. An interrupted run loses at most ``min_interval`` seconds of
training; ``saved_epoch`` says which epoch the file holds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from lightning.pytorch.callbacks import Checkpoint

DEFAULT_MIN_INTERVAL = 10.0  # seconds between two writes of last.ckpt (at epoch ends)


class LastCheckpoint(Checkpoint):
    """Keeps ``<dirpath>/last.ckpt`` (see the module docstring). A :class:`~lightning.pytorch.callbacks.Checkpoint`,
    so Lightning runs it after the module's own ``on_train_epoch_end`` (which may still update state, e.g. the
    vector flow's batch-norm statistics) and includes it in ``trainer.checkpoint_callbacks``."""

    def __init__(self, dirpath: str | Path, min_interval: float = DEFAULT_MIN_INTERVAL):
        self.path = Path(dirpath) / "last.ckpt"
        self.min_interval = float(min_interval)
        self.saved_epoch: Optional[int] = None   # the epoch (0-based) whose end the file holds
        self.saved_step: Optional[int] = None
        self._written_at = time.monotonic()      # the run's start counts as a write: no file after a 1 s epoch

    @property
    def best_model_path(self) -> str:
        """The file once written ('' before), as :class:`ModelCheckpoint` names its output."""
        return str(self.path) if self.saved_step is not None else ""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        last_epoch = trainer.max_epochs is not None and trainer.max_epochs >= 0 and \
            trainer.current_epoch + 1 >= trainer.max_epochs
        due = last_epoch or trainer.should_stop or time.monotonic() - self._written_at >= self.min_interval
        if trainer.strategy.broadcast(due):  # rank 0 decides: saving is collective (a barrier) under DDP
            self.save(trainer, epoch=trainer.current_epoch)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.strategy.broadcast(self.saved_step != trainer.global_step or not self.path.is_file()):
            self.save(trainer, epoch=trainer.current_epoch - 1)

    def save(self, trainer, epoch: int) -> None:
        trainer.save_checkpoint(str(self.path), weights_only=False)  # the full state to resume from; saying so
        # also silences Lightning's 'weights_only was not set' line at every save
        self.saved_epoch, self.saved_step, self._written_at = epoch, int(trainer.global_step), time.monotonic()

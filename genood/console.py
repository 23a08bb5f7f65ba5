"""What a run shows on the console: progress that names what is being scored, plain progress lines when the
output is not a terminal (a benchmark cell's log, a SLURM log), a model summary without the meaningless
"FLOPs: 0", and none of the library warnings that are not the user's concern.

:func:`console_callbacks` swaps Lightning's default progress bar and model summary for these (a progress bar
or summary the user configured is kept); the evaluator names the scoring sets with :func:`name_scoring_sets`.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from datetime import timedelta
from typing import Optional, Sequence

from lightning.pytorch.callbacks import ModelSummary, ProgressBar, RichModelSummary, RichProgressBar

# seconds between two plain progress lines (GENOOD_PROGRESS_INTERVAL overrides it)
PROGRESS_INTERVAL = 15.0

# warnings every run printed that say nothing the user can act on
QUIET_WARNINGS = (
    # genood writes config.yaml into the fresh run folder before the checkpoints: by design
    r".*Checkpoint directory .* exists and is not empty.*",
    # Lightning 2.6's own use of a torch.utils._pytree API that torch 2.14 deprecates
    r".*LeafSpec.*",
    # small embedded datasets have fewer batches per epoch than log_every_n_steps; epoch metrics are logged
    r".*smaller than the logging interval.*",
)


def silence_known_noise() -> None:
    """Hide :data:`QUIET_WARNINGS` in this process (and so in DDP workers, which import genood too)."""
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class NamedScoringSets:
    """A progress display that names the evaluation set of each test dataloader (set by the evaluator)."""

    set_names: Sequence[str] = ()

    def scoring_label(self, dataloader_idx: Optional[int]) -> Optional[str]:
        if dataloader_idx is None or dataloader_idx >= len(self.set_names):
            return None
        return f"{self.set_names[dataloader_idx]} ({dataloader_idx + 1}/{len(self.set_names)})"


class ScoringProgressBar(NamedScoringSets, RichProgressBar):
    """Lightning's rich progress bar, with the scoring bars named ``Scoring <set> (i/n)``."""

    @property
    def test_description(self) -> str:
        label = self.scoring_label(self._current_eval_dataloader_idx)
        return f"Scoring {label}" if label else super().test_description


class PlainProgress(NamedScoringSets, ProgressBar):
    """Progress as plain lines on stdout, for output that is not a terminal: while training, every
    ``interval`` seconds (epoch, batch, rate, time left) and once at the end; while scoring, every ``interval``
    seconds and at the end of each set (set, batches, rate, time left)."""

    def __init__(self, interval: float = PROGRESS_INTERVAL):
        super().__init__()
        self.interval = interval
        self._enabled = True
        self._last = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _say(self, text: str) -> None:
        self._last = time.monotonic()
        if self._enabled:
            print(f"genood: {text}", flush=True)

    def _due(self) -> bool:
        return self._enabled and time.monotonic() - self._last >= self.interval

    # training
    def on_train_start(self, trainer, pl_module) -> None:
        self._fit_start, self._first_epoch, self._last = time.monotonic(), trainer.current_epoch, time.monotonic()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._due():
            return
        now, total = time.monotonic(), self.total_train_batches
        done_in_epoch = batch_idx + 1
        rate = done_in_epoch / max(now - self._epoch_start, 1e-9)
        text = f"training epoch {trainer.current_epoch + 1}"
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        text += f"/{max_epochs}" if max_epochs else ""
        text += f", batch {done_in_epoch}/{total}, {rate:.3g} batches/s"
        if max_epochs and total not in (0, float("inf")):
            done = trainer.current_epoch - self._first_epoch + done_in_epoch / total
            left = max_epochs - trainer.current_epoch - done_in_epoch / total
            text += f", about {_duration((now - self._fit_start) * left / done)} left"
        self._say(text)

    def on_train_end(self, trainer, pl_module) -> None:
        epochs = trainer.current_epoch - self._first_epoch
        self._say(f"training: {epochs} epochs in {_duration(time.monotonic() - self._fit_start)}")

    # scoring
    def _set(self, dataloader_idx: int) -> str:
        return self.scoring_label(dataloader_idx) or f"dataloader {dataloader_idx}"

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            self._set_start = time.monotonic()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        total, done = self.total_test_batches_current_dataloader, batch_idx + 1
        elapsed = max(time.monotonic() - self._set_start, 1e-9)
        rate = done / elapsed
        if done == total:
            self._say(f"scored {self._set(dataloader_idx)}: {total} batches in {_duration(elapsed)} "
                      f"({rate:.3g} batches/s)")
        elif self._due():
            self._say(f"scoring {self._set(dataloader_idx)}: batch {done}/{total}, {rate:.3g} batches/s, "
                      f"about {_duration((total - done) / rate)} left in this set")

    def on_test_end(self, trainer, pl_module) -> None:
        self.reset_dataloader_idx_tracker()


class QuietModelSummary(RichModelSummary):
    """Lightning's rich model summary without the FLOPs column and total when they are 0 (they are counted
    only for a model with an ``example_input_array``, which genood's models do not set)."""

    @staticmethod
    def summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                  total_flops, **summarize_kwargs) -> None:
        if total_flops:
            return RichModelSummary.summarize(summary_data, total_parameters, trainable_parameters, model_size,
                                              total_training_modes, total_flops, **summarize_kwargs)
        from rich import get_console
        from rich.table import Table
        from lightning.pytorch.utilities.model_summary.model_summary import (get_formatted_model_size,
                                                                              get_human_readable_count)

        data = [(name, column) for name, column in summary_data if name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in data:
            table.add_column(name, justify="right" if "Params" in name else "left",
                             style="dim" if name == " " else None)
        for row in zip(*(column for _, column in data)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        console.print(f"Parameters: {get_human_readable_count(int(trainable_parameters))} trainable, "
                      f"{get_human_readable_count(int(total_parameters - trainable_parameters))} frozen, "
                      f"{get_formatted_model_size(model_size)} MB")


def default_progress_bar() -> ProgressBar:
    """Rich bars on a terminal, plain lines otherwise (every GENOOD_PROGRESS_INTERVAL seconds, default
    :data:`PROGRESS_INTERVAL`)."""
    if sys.stdout.isatty():
        return ScoringProgressBar()
    return PlainProgress(float(os.environ.get("GENOOD_PROGRESS_INTERVAL", PROGRESS_INTERVAL)))


def _named_classes(configured: Sequence) -> list[type]:
    """The classes of the trainer callbacks a config names (``{"class_path": ...}`` entries)."""
    import importlib

    out = []
    for c in configured:
        path = c.get("class_path") if hasattr(c, "get") else None
        if isinstance(path, str) and "." in path:
            module, name = path.rsplit(".", 1)
            try:
                out.append(getattr(importlib.import_module(module), name))
            except (ImportError, AttributeError):
                pass
    return out


def console_callbacks(callbacks: list, configured: Sequence) -> None:
    """Replace, in the trainer's ``callbacks`` list, Lightning's default progress bar and model summary by
    genood's, unless ``configured`` (the config's ``trainer.callbacks`` entries) names a progress bar or a
    model summary of its own."""
    named = _named_classes(configured)
    own_bar = any(issubclass(c, ProgressBar) for c in named if isinstance(c, type))
    own_summary = any(issubclass(c, ModelSummary) for c in named if isinstance(c, type))
    for i, cb in enumerate(callbacks):
        if type(cb) is RichProgressBar and not own_bar:
            callbacks[i] = default_progress_bar()
        elif type(cb) is RichModelSummary and not own_summary:
            callbacks[i] = QuietModelSummary(max_depth=cb._max_depth)


def name_scoring_sets(trainer, names: Sequence[str]) -> None:
    """Tell the trainer's progress display (when it is genood's) the name of each test dataloader's set."""
    bar = trainer.progress_bar_callback
    if isinstance(bar, NamedScoringSets):
        bar.set_names = list(names)

"""OOD evaluation of a trained model in one Lightning test pass (exact under DDP).

The test loop runs ``model.score_outputs`` over the ID fit split (only when some scorer needs ID
statistics), the ID test split and every OOD set; :class:`OODEvaluationCallback` keeps each batch's
outputs with the samples' indices, gathers them across ranks without the sampler's duplicates, then rank 0
fits and runs the scorers, computes the metrics and writes the run folder's results, plots and logs.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from ..console import name_scoring_sets
from ..data.base import EvalSet, OODDataModule
from ..provenance import provenance
from ..scoring.base import Scorer
from .gather import gather_unique
from .results import SetOutputs, metric_rows, score_sets

FIT_SET = "__fit__"


class OODEvaluationCallback(Callback):
    """Collects per-sample outputs of the test loop; at epoch end scores, reports and logs (rank 0)."""

    def __init__(self, scorers: Sequence[Scorer], sets: Sequence[tuple[str, str]], run_dir: Optional[Path],
                 plots: bool = True, print_table: bool = True, bootstrap: int = 0, metadata: Optional[dict] = None):
        self.bootstrap = bootstrap
        self.metadata = dict(metadata or {})
        self.scorers = list(scorers)
        self.sets = list(sets)  # (name, group) per test dataloader, in order; FIT_SET first when used
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.plots = plots
        self.print_table = print_table
        self.rows: Optional[list[dict]] = None
        self.scores: Optional[dict] = None

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()
        self._buffers = {i: {"index": [], "y": [], "out": []} for i in range(len(self.sets))}

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        extra = {}
        for s in self.scorers:
            extra.update(s.batch_outputs(batch))
        buf = self._buffers[dataloader_idx]
        buf["index"].append(torch.as_tensor(batch["index"], device=pl_module.device))
        buf["y"].append(torch.as_tensor(batch["y"], device=pl_module.device))
        buf["out"].append({**{k: v.detach() for k, v in outputs.items()},
                           **{k: v.to(pl_module.device) for k, v in extra.items()}})

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        collected = []
        for i, (name, group) in enumerate(self.sets):
            buf = self._buffers[i]
            first = buf["out"][0]
            per_sample = sorted(k for k, v in first.items() if torch.is_tensor(v) and v.ndim >= 1)
            outs = {k: torch.cat([o[k] for o in buf["out"]]) for k in per_sample}
            outs["__y"] = torch.cat(buf["y"])
            index, outs = gather_unique(torch.cat(buf["index"]), outs)
            y = outs.pop("__y")
            constants = {k: v for k, v in first.items() if k not in per_sample}  # e.g. num_dims
            collected.append(SetOutputs(name, group, index, y, {**outs, **constants}))
        self._buffers = {}
        if trainer.global_rank != 0:
            return
        fit = collected[0] if self.sets[0][0] == FIT_SET else None
        sets = collected[1:] if fit is not None else collected
        self.scores = score_sets(self.scorers, fit, sets)
        self.rows = metric_rows(self.scores, sets, bootstrap=self.bootstrap)
        seconds = time.perf_counter() - self._start
        n_samples = sum(len(c.index) for c in collected)
        self.metadata = {**provenance(pl_module.device, world_size=trainer.world_size), **self.metadata,
                         "scoring_seconds": round(seconds, 3), "scored_samples": int(n_samples),
                         "samples_per_second": round(n_samples / seconds, 2) if seconds > 0 else None,
                         "sets": {s.name: {"group": s.group, "n": int(len(s.index))} for s in sets}}
        if self.run_dir is not None:
            from .report import write_results

            write_results(self.run_dir, self.rows, self.scores, sets, self.metadata)
            paths = []
            if self.plots:
                from .plots import plot_scores

                paths = plot_scores(self.run_dir / "plots", self.scores, sets[0].name)
            _log_results(trainer, self.rows, paths)
        if self.print_table:
            from .report import print_table

            print_table(self.rows)


def _log_results(trainer: Trainer, rows: list[dict], plot_paths: list[Path]) -> None:
    """Metrics to every logger; the table and the plots too when the logger is W&B."""
    from .metrics import METRIC_NAMES

    metrics = {f"ood/{r['scorer']}/{r['ood_set']}/{m}": r[m] for r in rows for m in METRIC_NAMES}
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
        if hasattr(logger, "log_table") and hasattr(logger, "log_image"):  # WandbLogger
            from .report import COLUMNS

            logger.log_table(key="ood/results", columns=list(COLUMNS), data=[[r[c] for c in COLUMNS] for r in rows])
            for kind in ("hist", "roc"):  # one key per figure size
                paths = [p for p in plot_paths if p.stem.startswith(kind + "_")]
                if paths:
                    logger.log_image(key=f"ood/{kind}", images=[str(p) for p in paths], caption=[p.stem for p in paths])
        logger.save()


def evaluate(trainer: Trainer, model: LightningModule, datamodule: OODDataModule, scorers: Sequence[Scorer],
             run_dir: Optional[Path] = None, plots: bool = True, print_table: bool = True,
             bootstrap: int = 0, metadata: Optional[dict] = None) -> list[dict]:
    """Score ``model`` on the datamodule's ID test split and OOD sets with ``scorers``; returns metric rows.

    ``metadata`` (e.g. the seed, training time and which weights are evaluated) is written to
    ``results.json`` beside the provenance (:func:`genood.provenance.provenance`), the scoring wall time and
    throughput (samples scored per second, the fit split included). Under ``ddp_spawn`` the rows are
    computed in the spawned rank-0 process; they are then read back from ``run_dir/results.json``.
    """
    eval_sets: list[EvalSet] = datamodule.test_sets()
    loaders = datamodule.test_dataloader()
    sets = [(s.name, s.group) for s in eval_sets]
    if any(s.needs_fit for s in scorers):
        loaders = [datamodule.fit_dataloader(), *loaders]
        sets = [(FIT_SET, "id"), *sets]
    callback = OODEvaluationCallback(scorers, sets, run_dir, plots=plots, print_table=print_table,
                                     bootstrap=bootstrap, metadata=metadata)
    name_scoring_sets(trainer, ["ID fit split" if name == FIT_SET else name for name, _ in sets])
    trainer.callbacks.append(callback)
    try:
        with warnings.catch_warnings():  # the sampler's padded repeats are dropped by gather_unique
            warnings.filterwarnings("ignore", message=".*DistributedSampler.*")
            trainer.test(model, dataloaders=loaders, verbose=False)
    finally:
        trainer.callbacks.remove(callback)
    if callback.rows is not None:
        return callback.rows
    if run_dir is not None and (Path(run_dir) / "results.json").exists():
        from .report import read_rows

        return read_rows(run_dir)
    return []

"""``python -m genood.train [--config FILE] [--key.sub=value ...]``: fit, then OOD evaluation, one command.

With no arguments it runs the embedded default experiment (``configs/default.yaml``: the hierarchical VAE
on scikit-learn's digits). ``--ckpt_path <run>/last.ckpt`` resumes training into a new run folder (the
weights, optimizer, epoch and RNG states of that checkpoint, so the run continues as an uninterrupted one).
After training, the weights named by ``--evaluation.checkpoint`` (``last``: the final weights, the default;
``best``: the lowest ``val/loss``) are evaluated; the console and ``results.json``'s metadata say which.
``results.json``'s ``metadata.train_metrics`` holds the last logged value of every training and validation
metric (``val/loss``, ...): what a W&B run's summary shows, and what ``python -m genood.sweep`` optimises.

A known user error (bad config value, missing dataset, unknown OOD set, unreadable or mismatched
checkpoint) prints one line and exits with status 2 on the command line; :func:`main` raises it as a
Python exception. A run that fails before training starts leaves no run folder behind.

SIGTERM or SIGINT (a scheduler's pre-emption, Ctrl+C) stops training at the next batch boundary, so
``last.ckpt`` (the last completed epoch) is never cut short; the command prints one line with the command
that resumes from it and exits with 128 + the signal number (143, 130). A run stopped before its first
checkpoint leaves no run folder behind (:mod:`genood.interrupt`).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Optional

from .cli import (GenoodCLI, build_scorers, command_line, final_metrics, load_weights, report_rows,
                  run_folder_scope, with_default_config)
from .interrupt import INTERRUPTIONS, RunInterrupted, SignalGuard, resume_command, stop_on_signals


def main(argv: Optional[list[str]] = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    with run_folder_scope() as scope, stop_on_signals() as guard:
        cli, trained = None, False
        try:
            cli = GenoodCLI(args=with_default_config(argv))
            guard.watch(cli.trainer)
            scorers = build_scorers(cli.model, cli.config.evaluation)  # fail on bad names before training
            ckpt = cli.config.ckpt_path
            if ckpt:
                load_weights(cli.model, ckpt)  # a readable, matching checkpoint, or a clear error
            cli.trainer.callbacks.append(scope)  # marks the run started when the training loop begins
            start, cpu_start = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():  # a resumed run writes a new folder by design
                warnings.filterwarnings("ignore", message=".*The dirpath has changed from.*")
                cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
            timing = {"train_seconds": round(time.perf_counter() - start, 3),
                      "train_cpu_seconds": round(time.process_time() - cpu_start, 3)}  # this process's CPU time
            trained = True
            metrics = final_metrics(cli.trainer)  # before the evaluation's test loop adds its own
            weights = cli.trained_weights(resumed_from=ckpt)
            return report_rows(cli, scorers, "", {**timing, "weights": weights, "train_metrics": metrics})
        except INTERRUPTIONS:
            raise interrupted(guard, cli, argv, trained) from None


def interrupted(guard: SignalGuard, cli: Optional[GenoodCLI], argv: list[str], trained: bool) -> RunInterrupted:
    """What a signal left behind, and the one command that carries on from there."""
    run = cli.run_dir if cli is not None else None
    last = Path(run) / "last.ckpt" if run is not None else None
    if last is None or not last.is_file():
        return guard.interrupted("before the first checkpoint, nothing was kept (no run folder); start again "
                                 f"with: {resume_command('genood.train', argv)}")
    if trained:
        which = last if cli.config.evaluation.checkpoint == "last" else Path(run) / "best.ckpt"
        return guard.interrupted("after training, before the results were written; score the trained weights "
                                 f"with: {resume_command('genood.evaluate', [], which)}")
    saved = cli.last_checkpoint.saved_epoch if cli.last_checkpoint is not None else None
    done, total = (saved + 1 if saved is not None else cli.trainer.current_epoch), cli.trainer.max_epochs
    of = f" of {total}" if total and total > 0 else ""
    return guard.interrupted(f"with {done}{of} epochs done and saved in {last}; resume with: "
                             f"{resume_command('genood.train', argv, last)}")


if __name__ == "__main__":
    command_line(main, "genood.train")

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
"""

from __future__ import annotations

import time
import warnings
from typing import Optional

from .cli import (GenoodCLI, build_scorers, command_line, final_metrics, load_weights, main_argv, report_rows,
                  run_folder_scope)


def main(argv: Optional[list[str]] = None) -> list[dict]:
    with run_folder_scope() as scope:
        cli = GenoodCLI(args=main_argv(argv))
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
        metrics = final_metrics(cli.trainer)  # before the evaluation's test loop adds its own
        weights = cli.trained_weights(resumed_from=ckpt)
        return report_rows(cli, scorers, "", {**timing, "weights": weights, "train_metrics": metrics})


if __name__ == "__main__":
    command_line(main, "genood.train")

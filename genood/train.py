"""``python -m genood.train [--config FILE] [--key.sub=value ...]``: fit, then OOD evaluation, one command.

With no arguments it runs the embedded default experiment (``configs/default.yaml``: the hierarchical VAE
on scikit-learn's digits). ``--ckpt_path <run>/last.ckpt`` resumes training into a new run folder.
"""

from __future__ import annotations

import time
from typing import Optional

from .cli import GenoodCLI, build_scorers, load_weights, main_argv, report_rows, run_folder_scope


def main(argv: Optional[list[str]] = None) -> list[dict]:
    with run_folder_scope():
        cli = GenoodCLI(args=main_argv(argv))
        scorers = build_scorers(cli.model, cli.config.evaluation)  # fail on bad names before training
        ckpt = cli.config.ckpt_path
        if ckpt:
            load_weights(cli.model, ckpt)  # a readable, matching checkpoint, or a clear error
        start = time.perf_counter()
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
        weights = {"source": "final weights of this training run (last.ckpt)", "epochs_completed": cli.trainer.current_epoch,
                   "global_step": cli.trainer.global_step, "resumed_from": ckpt}
        return report_rows(cli, scorers, "", {"train_seconds": round(time.perf_counter() - start, 3),
                                              "weights": weights})


if __name__ == "__main__":
    main()

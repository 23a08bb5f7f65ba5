"""``python -m genood.train [--config FILE] [--key.sub=value ...]``: fit, then OOD evaluation, one command.

With no arguments it runs the embedded default experiment (``configs/default.yaml``: the default model on
scikit-learn's digits). ``--ckpt_path <run>/last.ckpt`` resumes training into a new run folder.
"""

from __future__ import annotations

import os
from typing import Optional

from .cli import GenoodCLI, build_scorers, main_argv, release_run_dir
from .run_dir import ENV_VAR


def main(argv: Optional[list[str]] = None) -> list[dict]:
    claimed_here = ENV_VAR not in os.environ
    try:
        cli = GenoodCLI(args=main_argv(argv))
        cli.after_instantiate()
        cli.save_resolved_config()
        scorers = build_scorers(cli.model, cli.config.evaluation)  # fail on bad names before training
        ckpt = cli.config.ckpt_path
        if ckpt:
            from .cli import load_weights

            load_weights(cli.model, ckpt)  # a readable, matching checkpoint, or a clear error
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
        rows = cli.run_evaluation(scorers)
        if cli.trainer.global_rank == 0:
            print(f"run folder: {cli.run_dir}")
        return rows
    finally:
        release_run_dir(claimed_here)


if __name__ == "__main__":
    main()

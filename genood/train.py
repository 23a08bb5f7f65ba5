"""``python -m genood.train [--config FILE] [--key.sub=value ...]``: fit, then OOD evaluation, one command.

With no arguments it runs the embedded default experiment (``configs/default.yaml``: the hierarchical VAE
on scikit-learn's digits). ``--ckpt_path <run>/last.ckpt`` resumes training into a new run folder.
"""

from __future__ import annotations

from typing import Optional

from .cli import GenoodCLI, build_scorers, load_weights, main_argv, report_rows, run_folder_scope


def main(argv: Optional[list[str]] = None) -> list[dict]:
    with run_folder_scope():
        cli = GenoodCLI(args=main_argv(argv))
        scorers = build_scorers(cli.model, cli.config.evaluation)  # fail on bad names before training
        ckpt = cli.config.ckpt_path
        if ckpt:
            load_weights(cli.model, ckpt)  # a readable, matching checkpoint, or a clear error
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
        return report_rows(cli, scorers, "")


if __name__ == "__main__":
    main()

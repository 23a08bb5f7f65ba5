"""``python -m genood.evaluate --ckpt_path <run>/last.ckpt [--data.* ...] [--trainer.* ...]``

Re-scores a saved checkpoint into a new run folder. The model and data come from the run's own
``config.yaml`` (beside the checkpoint) unless ``--config`` is given; any ``--data.*``, ``--trainer.*``
or ``--evaluation.*`` override applies on top, e.g. other OOD sets or ``--trainer.devices=2
--trainer.strategy=ddp`` (the metrics equal a one-process evaluation exactly). The training run's folder
settings are never reused: the evaluation claims a new ``version_<N>`` folder (or the ``--run_dir`` given
here), and its ``config.yaml`` records the scored checkpoint as ``ckpt_path``.

Scoring ``<run>/last.ckpt`` reproduces the training run's ``results.json`` rows exactly when the run
evaluated its final weights (``evaluation.checkpoint: last``, the default); ``<run>/best.ckpt`` those of a
run that evaluated ``best``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from .cli import GenoodCLI, build_scorers, command_line, load_weights, report_rows, run_folder_scope
from .interrupt import INTERRUPTIONS, resume_command, stop_on_signals


def _split_ckpt_arg(argv: list[str]) -> tuple[Optional[str], list[str]]:
    for i, a in enumerate(argv):
        if a == "--ckpt_path" and i + 1 < len(argv):
            return argv[i + 1], argv[:i] + argv[i + 2:]
        if a.startswith("--ckpt_path="):
            return a.split("=", 1)[1], argv[:i] + argv[i + 1:]
    return None, argv


def _after_configs(argv: list[str], extra: list[str]) -> list[str]:
    """``argv`` with ``extra`` inserted after its last ``--config`` (so the configs cannot override it, and any
    later command-line argument still can)."""
    end = 0
    for i, a in enumerate(argv):
        if a == "--config":
            end = i + 2
        elif a.startswith("--config="):
            end = i + 1
    return [*argv[:end], *extra, *argv[end:]]


def main(argv: Optional[list[str]] = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    ckpt, rest = _split_ckpt_arg(argv)
    if ckpt is None:
        if any(a in ("-h", "--help") for a in rest):
            with run_folder_scope():
                GenoodCLI(args=rest)  # prints the help and exits
        raise ValueError("--ckpt_path <run>/last.ckpt is required (the checkpoint to score)")
    if not Path(ckpt).is_file():
        raise FileNotFoundError(f"checkpoint {ckpt} does not exist")
    if not any(a == "--config" or a.startswith("--config=") for a in rest):
        run_config = Path(ckpt).resolve().parent / "config.yaml"
        if not run_config.exists():
            raise FileNotFoundError(f"no config.yaml beside {ckpt}; pass the config of the run that wrote it "
                                    "with --config FILE")
        rest = ["--config", str(run_config), *rest]
    # the training run's folder settings never carry over (a new folder unless --run_dir is given here), and
    # the evaluation run's config.yaml records the scored checkpoint
    args = _after_configs(rest, ["--run_dir=null", f"--ckpt_path={ckpt}"])
    # a failed or interrupted evaluation leaves no folder without results behind
    with run_folder_scope(), stop_on_signals() as guard:
        try:
            cli = GenoodCLI(args=args)
            guard.watch(cli.trainer)
            scorers = build_scorers(cli.model, cli.config.evaluation)
            saved = load_weights(cli.model, ckpt)
            weights = {"source": "checkpoint", "checkpoint": "given", "path": str(Path(ckpt).resolve()), **saved}
            if cli.trainer.global_rank == 0:
                print(f"genood: evaluating {weights['path']} (epoch {saved.get('epoch')}, global step "
                      f"{saved.get('global_step')})")
            return report_rows(cli, scorers, f"evaluated {ckpt}; ", {"weights": weights})
        except INTERRUPTIONS:
            again = resume_command("genood.evaluate", [*_split_ckpt_arg(argv)[1]], ckpt)
            raise guard.interrupted(f"while scoring, nothing was written (no run folder); start again with: {again}") \
                from None


if __name__ == "__main__":
    command_line(main, "genood.evaluate")

"""``python -m genood.evaluate --ckpt_path <run>/last.ckpt [--data.* ...] [--trainer.* ...]``

Re-scores a saved checkpoint into a new run folder. The model and data come from the run's own
``config.yaml`` (beside the checkpoint) unless ``--config`` is given; any ``--data.*``, ``--trainer.*``
or ``--evaluation.*`` override applies on top, e.g. other OOD sets or ``--trainer.devices=2
--trainer.strategy=ddp`` (the metrics equal a one-process evaluation exactly).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from .cli import GenoodCLI, build_scorers, load_weights, report_rows, run_folder_scope


def _split_ckpt_arg(argv: list[str]) -> tuple[Optional[str], list[str]]:
    for i, a in enumerate(argv):
        if a == "--ckpt_path" and i + 1 < len(argv):
            return argv[i + 1], argv[:i] + argv[i + 2:]
        if a.startswith("--ckpt_path="):
            return a.split("=", 1)[1], argv[:i] + argv[i + 1:]
    return None, argv


def main(argv: Optional[list[str]] = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    ckpt, rest = _split_ckpt_arg(argv)
    if ckpt is None and not any(a in ("-h", "--help") for a in rest):
        raise SystemExit("genood.evaluate: --ckpt_path <run>/last.ckpt is required")
    if ckpt is not None and not any(a == "--config" or a.startswith("--config=") for a in rest):
        run_config = Path(ckpt).resolve().parent / "config.yaml"
        if not run_config.exists():
            raise SystemExit(f"genood.evaluate: no config.yaml beside {ckpt}; pass the run's --config FILE")
        rest = ["--config", str(run_config), *rest]
    with run_folder_scope():
        cli = GenoodCLI(args=rest)
        scorers = build_scorers(cli.model, cli.config.evaluation)
        load_weights(cli.model, ckpt)
        return report_rows(cli, scorers, f"evaluated {ckpt}; ", {"weights": {"source": "checkpoint", "checkpoint": str(Path(ckpt).resolve())}})


if __name__ == "__main__":
    main()

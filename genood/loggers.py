"""Weights & Biases logging that never reaches the network unless the user has configured W&B.

``configs/logger/wandb.yaml`` selects :class:`WandbLogger`. It is offline (a local run folder under the
genood run folder, synced later with ``wandb sync``) unless an API key is configured (``WANDB_API_KEY``,
or a ``wandb login`` entry in ``~/.netrc``) or ``WANDB_MODE`` is set, in which case ``WANDB_MODE`` decides.
The evaluator logs the metrics, the results table and the plots to it.
"""

from __future__ import annotations

import netrc
import os
from typing import Optional

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

from .run_dir import ENV_VAR


def wandb_configured() -> bool:
    """True when W&B could authenticate: an API key in the environment or a netrc entry for W&B."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in h for h in hosts)


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger with genood's defaults: the run folder as ``save_dir``, offline by default.

    Args:
        project: W&B project.
        name: run name (default: the run folder's experiment/version).
        save_dir: where W&B writes locally (default: the genood run folder).
        offline: None = decide from the environment (see module docstring).
        log_model: upload checkpoints as artifacts (off by default).
    """

    def __init__(self, project: str = "genood", name: Optional[str] = None, save_dir: Optional[str] = None,
                 offline: Optional[bool] = None, log_model: bool = False, **kwargs):
        run_dir = os.environ.get(ENV_VAR)
        save_dir = save_dir or run_dir or "."
        if name is None and run_dir:
            name = "/".join(run_dir.rstrip("/").split("/")[-2:])
        if offline is None:
            offline = "WANDB_MODE" not in os.environ and not wandb_configured()
        if kwargs.get("settings") is None:  # genood prints its own results table: no W&B history / summary panel
            import wandb

            kwargs["settings"] = wandb.Settings(max_end_of_run_history_metrics=0, max_end_of_run_summary_metrics=0)
        super().__init__(project=project, name=name, save_dir=save_dir, offline=offline, log_model=log_model, **kwargs)
        # Lightning passes anonymous=None, which W&B 0.31 answers with a deprecation warning on every run
        self._wandb_init.pop("anonymous", None)

    def finish(self) -> None:
        """End the W&B run once genood has logged everything (the evaluation comes after ``fit``). Left to the
        interpreter's exit, W&B's service prints its closing lines (how to sync, where the logs are) with
        colour codes even into a log file; finished here, W&B prints them plainly when the output is not a
        terminal."""
        if self._experiment is not None:
            self._experiment.finish()

"""The ``evaluation:`` section of a config (maps 1:1 onto this constructor)."""

from __future__ import annotations

from typing import Literal, Optional

CHECKPOINTS = ("last", "best")


class EvaluationConfig:
    """How a trained model is evaluated.

    Args:
        scorers: names of the scorers to run (None = every scorer the model provides). Unknown names fail
            with the list of valid ones.
        plots: write score histograms and ROC curves to ``<run>/plots``.
        print_table: print the results table on the console.
        background_ckpt: a checkpoint of a background model (Ren et al. 2019, trained on perturbed inputs)
            that adds the ``likelihood_ratio`` scorer to models exposing ``log_prob``.
        bootstrap: number of bootstrap resamples for 95% confidence intervals (0 = none); adds
            ``<metric>_lo`` / ``<metric>_hi`` to every per-set row.
        checkpoint: which weights ``python -m genood.train`` evaluates after training: ``"last"`` (the final
            weights, the run's ``last.ckpt``) or ``"best"`` (``best.ckpt``, the lowest ``val/loss``). The log
            line and ``results.json``'s metadata (``weights``) name them. ``python -m genood.evaluate`` scores
            the ``--ckpt_path`` it is given and ignores this setting.
    """

    def __init__(self, scorers: Optional[list[str]] = None, plots: bool = True, print_table: bool = True,
                 background_ckpt: Optional[str] = None, bootstrap: int = 0,
                 checkpoint: Literal["last", "best"] = "last"):
        self.scorers = scorers
        self.plots = plots
        self.print_table = print_table
        self.background_ckpt = background_ckpt
        if bootstrap < 0:
            raise ValueError(f"evaluation.bootstrap must be >= 0, got {bootstrap}")
        self.bootstrap = bootstrap
        if checkpoint not in CHECKPOINTS:
            raise ValueError(f"evaluation.checkpoint must be one of {list(CHECKPOINTS)}, got {checkpoint!r}")
        self.checkpoint = checkpoint

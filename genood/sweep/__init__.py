"""Hyper-parameter sweeps: W&B sweep files (``experiments/sweeps/``) run by W&B's agent or, with no W&B server,
by Optuna (``python -m genood.sweep``); see the README, "Sweeps"."""

from .spec import Sweep, SweepSpecError, load_sweep

__all__ = ["Sweep", "SweepSpecError", "load_sweep"]

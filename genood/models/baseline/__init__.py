"""Baseline density models."""

from genood.models.baseline.lightning_model import PPCA
from genood.models.baseline.torch_model import PPCANetwork

__all__ = ["PPCA", "PPCANetwork"]

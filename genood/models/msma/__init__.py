"""MSMA: Multiscale Score Matching Analysis (Mahmood, Oliva, Styner; ICLR 2021). See README.md."""

from .flow import build_maf, fit_maf
from .lightning_model import MSMA
from .objective import dsm_loss, geometric_sigmas, score_norms
from .refinenet import RefineNetScoreNet
from .scorers import FlowScorer, GMMScorer, ScoreNormScorer
from .torch_model import MLPScoreNet, UNetScoreNet

__all__ = ["MSMA", "UNetScoreNet", "RefineNetScoreNet", "MLPScoreNet", "GMMScorer", "FlowScorer", "ScoreNormScorer",
           "geometric_sigmas", "dsm_loss", "score_norms", "build_maf", "fit_maf"]

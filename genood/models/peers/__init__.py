"""Classical peers on raw inputs: genood's k-NN distance, Isolation Forest and per-sample ECOD, and PyOD's
detectors run as ADBench / DTE ran them (the classical columns of DTE's tables). See README.md."""

from genood.models.peers.lightning_model import DEFAULT_DETECTORS, DETECTORS, ClassicalPeers
from genood.models.peers.pyod_scorer import PYOD_DETECTORS, PyODScorer, seeded_global_rngs
from genood.models.peers.scorers import ECODScorer, IsolationForestScorer, ecod_scores, skewness_sign

__all__ = ["ClassicalPeers", "DEFAULT_DETECTORS", "DETECTORS", "ECODScorer", "IsolationForestScorer", "PYOD_DETECTORS",
           "PyODScorer", "ecod_scores", "seeded_global_rngs", "skewness_sign"]

"""Classical peers (k-NN distance, Isolation Forest, ECOD) on raw inputs: the reference rows of every
benchmark table. See README.md."""

from genood.models.peers.lightning_model import ClassicalPeers
from genood.models.peers.scorers import ECODScorer, IsolationForestScorer, ecod_scores, skewness_sign

__all__ = ["ClassicalPeers", "ECODScorer", "IsolationForestScorer", "ecod_scores", "skewness_sign"]

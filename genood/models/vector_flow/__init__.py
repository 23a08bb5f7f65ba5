"""Normalizing flows on vectors (tabular features, embeddings): MAF (Papamakarios et al. 2017) on nflows, and DTE's
released PlanarFlow baseline, scored by the likelihood family (nll, typicality). See README.md."""

from genood.models.vector_flow.lightning_model import VectorFlow
from genood.models.vector_flow.planar import PlanarFlowNetwork, PlanarLayer
from genood.models.vector_flow.torch_model import VectorMAF

__all__ = ["PlanarFlowNetwork", "PlanarLayer", "VectorFlow", "VectorMAF"]

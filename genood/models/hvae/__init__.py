"""Hierarchical VAE with the LLR^{>k} OOD score (Havtorn et al., ICML 2021). See README.md."""

from genood.models.hvae.lightning_model import HVAE
from genood.models.hvae.scorers import LLR, NegELBO, NegSkipELBO, hvae_scorers
from genood.models.hvae.torch_model import HierarchicalVAE

__all__ = ["HVAE", "HierarchicalVAE", "NegELBO", "NegSkipELBO", "LLR", "hvae_scorers"]

"""DTE (Diffusion Time Estimation, Livernoche et al. ICLR 2024) and its tabular DDPM baseline; see README.md."""

from .ddpm_lightning_model import TabularDDPM
from .ddpm_torch_model import TabularResNetDenoiser
from .lightning_model import DTE
from .scorers import DDPMReconstructionScorer, DTECategoricalScorer, DTEInverseGammaScorer, DTENonParametricScorer
from .torch_model import DTEMLP

__all__ = ["DTE", "TabularDDPM", "DTEMLP", "TabularResNetDenoiser", "DTENonParametricScorer", "DTEInverseGammaScorer",
           "DTECategoricalScorer", "DDPMReconstructionScorer"]

"""Image diffusion models on diffusers' UNet2DModel, scored by LMD (Lift, Map, Detect; Liu et al. ICML 2023);
see README.md."""

from .ddpm import DiscreteDDPM
from .inpaint import ReplacementInpainter
from .lightning_model import ImageDiffusion
from .masks import make_masks
from .scorers import lmd_scorers
from .sde import SubVPSDE

__all__ = ["ImageDiffusion", "SubVPSDE", "DiscreteDDPM", "ReplacementInpainter", "make_masks", "lmd_scorers"]

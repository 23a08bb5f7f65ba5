"""Image normalizing flows (RealNVP, Glow) for the likelihood family of OOD scores; see README.md."""

from genood.models.flow.lightning_model import ImageFlow
from genood.models.flow.torch_model import FlowNetwork, ResNetCouplingNet, ShiftPreprocess

__all__ = ["ImageFlow", "FlowNetwork", "ResNetCouplingNet", "ShiftPreprocess"]

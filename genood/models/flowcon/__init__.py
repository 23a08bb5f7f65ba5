"""FlowCon (Aathreya & Canavan, ECCV 2024): RealNVP + Bhattacharyya SupCon on frozen classifier features; see README.md."""

from .lightning_model import FlowCon
from .losses import contrastive_loss, flow_loss, pairwise_log_p
from .scorers import FlowConClassScorer, FlowConFullScorer, FlowConScorer
from .torch_model import FlowConCoupling, FlowConRealNVP

__all__ = ["FlowCon", "FlowConRealNVP", "FlowConCoupling", "FlowConScorer", "FlowConClassScorer", "FlowConFullScorer",
           "contrastive_loss", "flow_loss", "pairwise_log_p"]

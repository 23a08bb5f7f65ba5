"""Masked autoregressive flow (MAF; Papamakarios, Pavlakou & Murray, NeurIPS 2017) on D-dimensional vectors.

A MADE layer is an autoregressive Gaussian read as a flow (MAF §3.1): with μ_i = f_μ(x_{<i}) and α_i =
f_α(x_{<i}) computed in one masked pass, the data are mapped to noise by u_i = (x_i − μ_i) exp(−α_i), whose
Jacobian is triangular, so log|det ∂u/∂x| = −Σ_i α_i and, by the change of variables (MAF §2.2),

    log p(x) = log N(u; 0, I) + log|det ∂u/∂x|.

MAF stacks K such layers, each driven by the previous one's noise, reversing the order of the variables
between layers, with batch normalisation between layers (MAF §4, experimental setup, and the released code
``ml/models/mafs.py``: a BatchNorm after each MADE, with its own log-determinant Σ log γ − ½ Σ log(v + ε)).

**Library.** The stack is nflows' ``MaskedAutoregressiveFlow`` (nflows 0.14; ``ReversePermutation`` before each
MADE, ``BatchNorm`` after it): the same model up to the parametrisation of the scale, which nflows writes
exp(−α) = softplus(s) + 10⁻³ (bounded away from 0; the paper: exp(−α) directly) and γ = softplus + 10⁻⁵
(the paper: exp(log γ)). ``hidden_layers`` hidden layers of ``hidden_features`` units per MADE
(nflows: ``num_blocks_per_layer = hidden_layers − 1`` plain blocks after the first masked layer).

**Batch norm statistics.** In training each BatchNorm normalises by the batch's mean and variance; for
evaluation MAF's code sets them to the statistics of the **whole training set** (``set_batch_norm_stats``,
every epoch before validation and after training). :meth:`VectorMAF.set_batch_norm_stats` does that layer by
layer. nflows starts its running variance at 0 (an untrained flow in eval mode would divide by √ε); here it
starts at 1 (MAF's code: ``bv = 1``), so an untrained flow's BatchNorm is the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "elu": F.elu}


class VectorMAF(nn.Module):
    """MAF with ``num_layers`` MADEs on ``features``-dimensional vectors, base N(0, I) (module docstring).

    The paper's UCI setting (released ``run_experiments.py``, POWER): 5 MADEs of 2 × 100 ReLU units, batch norm.
    """

    def __init__(self, features: int, num_layers: int = 5, hidden_features: int = 100, hidden_layers: int = 2,
                 activation: str = "relu", batch_norm: bool = True):
        super().__init__()
        from nflows.flows.autoregressive import MaskedAutoregressiveFlow

        if features < 1 or num_layers < 1 or hidden_features < 1 or hidden_layers < 1:
            raise ValueError(f"VectorMAF needs features, num_layers, hidden_features and hidden_layers >= 1, got "
                             f"{features}, {num_layers}, {hidden_features}, {hidden_layers}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.features = features
        self.flow = MaskedAutoregressiveFlow(features=features, hidden_features=hidden_features, num_layers=num_layers,
                                             num_blocks_per_layer=hidden_layers - 1, use_residual_blocks=False,
                                             activation=ACTIVATIONS[activation],
                                             batch_norm_between_layers=batch_norm)
        for bn in self.batch_norms():
            bn.running_var.fill_(1.0)

    def batch_norms(self) -> list[nn.Module]:
        from nflows.transforms.normalization import BatchNorm

        return [m for m in self.flow.modules() if isinstance(m, BatchNorm)]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats ``[B]`` (batch statistics in BatchNorm when training, the stored ones in eval mode)."""
        return self.flow.log_prob(x)

    @torch.no_grad()
    def set_batch_norm_stats(self, x: torch.Tensor) -> None:
        """Set every BatchNorm's evaluation mean and (biased) variance to those of its inputs when the flow maps
        the rows ``x`` (the whole training set), first layer first: MAF's ``set_batch_norm_stats``."""
        from nflows.transforms.normalization import BatchNorm

        was_training = self.training
        self.eval()
        u = x
        for t in self.flow._transform._transforms:
            if isinstance(t, BatchNorm):
                t.running_mean.copy_(u.mean(0))
                t.running_var.copy_(u.var(0, unbiased=False))
            u, _ = t(u)
        self.train(was_training)

"""MSMA's flow detector: a masked autoregressive flow (MAF, Papamakarios et al. 2017) on the score-norm
vectors, as the released ``ood_detection_helper.train_flow`` builds it with TensorFlow Probability:

* one ``MaskedAutoregressiveFlow`` bijector whose MADE (``AutoregressiveNetwork(params=2, hidden_units=[128,
  128], activation="elu")``, Glorot-uniform weights, zero biases) gives a shift μ_d and a log-scale α_d from
  x_{<d}; base N(0, I). Density evaluation is one pass: u_d = (x_d − μ_d(x_{<d})) · exp(−α_d(x_{<d})),
  log p(x) = log N(u; 0, I) − Σ_d α_d (TFP's unconstrained log-scale, no soft clamp);
* trained by maximum likelihood with Adadelta (lr 0.01; Keras' ρ = 0.95, ε = 1e-7), batch 128, ``n // 128``
  steps per epoch, 1000 epochs.

The masked network is nflows' ``MADE`` (feed-forward blocks, nflows' degree assignment); the affine step is
TFP's (nflows' own ``MaskedAffineAutoregressiveTransform`` uses a softplus scale instead). The paper notes
the flow is unstable on small training sets; :func:`fit_maf` therefore holds out a validation split, keeps
the best epoch's weights and stops after ``patience`` epochs without improvement or at a non-finite loss.
Training is seeded and runs on one CPU thread, so the same vectors give the same flow bit for bit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

OPTIMIZERS = ("adadelta", "adam")


def _affine_autoregressive_transform():
    from nflows.transforms.autoregressive import AutoregressiveTransform
    from nflows.transforms.made import MADE, MaskedLinear

    class TFPAffineAutoregressive(AutoregressiveTransform):
        """u = (x − μ(x_{<d})) · exp(−α(x_{<d})) (data → noise), log|det| = −Σ_d α_d."""

        def __init__(self, features: int, hidden_features: int = 128, hidden_layers: int = 2):
            if hidden_layers < 1:
                raise ValueError(f"the MADE needs at least one hidden layer, got {hidden_layers}")
            made = MADE(features=features, hidden_features=hidden_features, num_blocks=hidden_layers - 1,
                        output_multiplier=2, use_residual_blocks=False, activation=F.elu)
            for m in made.modules():  # Keras' Dense initialisation (TFP's AutoregressiveNetwork)
                if isinstance(m, MaskedLinear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
            self.features = features
            super().__init__(made)

        def _params(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            params = params.view(-1, self.features, 2)
            return params[..., 0], params[..., 1]  # shift, log_scale (TFP's unstack order)

        def _elementwise_forward(self, inputs, autoregressive_params):
            shift, log_scale = self._params(autoregressive_params)
            return (inputs - shift) * torch.exp(-log_scale), -log_scale.sum(1)

        def _elementwise_inverse(self, inputs, autoregressive_params):
            shift, log_scale = self._params(autoregressive_params)
            return shift + torch.exp(log_scale) * inputs, log_scale.sum(1)

    return TFPAffineAutoregressive


def build_maf(features: int, hidden_features: int = 128, hidden_layers: int = 2, num_layers: int = 1):
    """An nflows ``Flow``: ``num_layers`` TFP-style affine MADE layers (reversing the order between layers),
    base N(0, I). The paper's flow is ``num_layers=1`` with a 2 × 128 MADE."""
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.permutations import ReversePermutation

    if features < 1 or num_layers < 1:
        raise ValueError(f"build_maf needs features >= 1 and num_layers >= 1, got {features}, {num_layers}")
    layer = _affine_autoregressive_transform()
    transforms = []
    for k in range(num_layers):
        if k > 0:
            transforms.append(ReversePermutation(features))
        transforms.append(layer(features, hidden_features, hidden_layers))
    return Flow(CompositeTransform(transforms), StandardNormal([features]))


@dataclass
class FlowFit:
    """What :func:`fit_maf` did: per-epoch mean train / validation NLL (nats), the epoch whose weights were
    kept (0-based; the last one without validation), where it stopped and why."""

    train_nll: list = field(default_factory=list)
    val_nll: list = field(default_factory=list)
    best_epoch: int = -1
    epochs_run: int = 0
    stop_reason: str = ""


def fit_maf(flow, x_train: torch.Tensor, x_val: Optional[torch.Tensor] = None, optimizer: str = "adadelta",
            lr: float = 0.01, batch_size: int = 128, epochs: int = 1000, patience: Optional[int] = None,
            seed: int = 0) -> FlowFit:
    """Maximum likelihood training of ``flow`` on ``x_train`` ``[N, D]`` in place (see the module docstring).

    Each epoch draws a seeded permutation and takes ``max(1, N // batch_size)`` steps (Keras'
    ``steps_per_epoch = n // batch_size``). With ``x_val`` the weights of the epoch with the lowest mean
    validation NLL are restored at the end, and training stops after ``patience`` epochs without a new best
    (None: never early). A non-finite training loss stops training (the best weights so far are kept).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"flow optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if optimizer == "adadelta":
        opt = torch.optim.Adadelta(flow.parameters(), lr=lr, rho=0.95, eps=1e-7)
    else:
        opt = torch.optim.Adam(flow.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    n = x_train.shape[0]
    steps = max(1, n // batch_size)
    report = FlowFit()
    best, best_state, since_best = float("inf"), None, 0
    for epoch in range(epochs):
        flow.train()
        perm = torch.randperm(n, generator=g)
        total, finite = 0.0, True
        for k in range(steps):
            batch = x_train[perm[k * batch_size:(k + 1) * batch_size]]
            loss = -flow.log_prob(batch).mean()
            if not torch.isfinite(loss):
                finite = False
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        report.epochs_run = epoch + 1
        if not finite:
            report.stop_reason = f"non-finite training loss at epoch {epoch}"
            break
        report.train_nll.append(total / steps)
        if x_val is None:  # keep the last finite epoch's weights
            best_state, report.best_epoch = copy.deepcopy(flow.state_dict()), epoch
            continue
        flow.eval()
        with torch.no_grad():
            val = -flow.log_prob(x_val).mean().item()
        report.val_nll.append(val)
        if val < best:  # NaN never counts as an improvement
            best, best_state, since_best = val, copy.deepcopy(flow.state_dict()), 0
            report.best_epoch = epoch
        else:
            since_best += 1
            if patience is not None and since_best >= patience:
                report.stop_reason = f"no validation improvement for {patience} epochs"
                break
    if best_state is None:
        raise FloatingPointError(f"the MSMA flow did not train ({report.stop_reason or 'no finite validation loss'}); "
                                 "lower flow_lr, set flow_standardize: true or use flow_optimizer: adam")
    flow.load_state_dict(best_state)
    report.stop_reason = report.stop_reason or f"ran all {epochs} epochs"
    flow.eval()
    return report

"""FlowCon's test-time scores (Aathreya & Canavan, ECCV 2024, Sec. 3.4; released ``tester/emperical_params.py``),
all negated so that **higher = more OOD**, in bits/dim.

==============  =================================================================================  ==============
name            score (before negation)                                                            reads
==============  =================================================================================  ==============
flowcon         Σ_d log N(z; μ(z_a), σ(z_a)) / (D ln 2): the released WRN-path score (the paper's   flow_log_p
                tables), no log-determinant; per sample, independent of the batch
flowcon_class   [max_k Σ_d log N(z; μ_k, σ_k) + log|det J|] / (D ln 2), (μ_k, log σ_k) = class-k    flow_z,
                means of the flow's predicted (μ, log σ) on the ID fit split; the per-sample        flow_logdet,
                log-determinant, never the batch mean                                              (fit: flow_mu,
                                                                                                   flow_log_sd)
flowcon_full    [−D ln n_bins + log|det J| + Σ_d log N(z; μ(z_a), σ(z_a))] / (D ln 2): the          flow_log_p,
                released ResNet-path score with the batch-mean log-determinant replaced by the      flow_logdet
                sample's own (the released branch adds the batch mean, so a score would depend on
                its batch; as released that branch also returns a 1-tuple and fails)
==============  =================================================================================  ==============
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from genood.models.classifier.scorers import fit_labels
from genood.scoring.base import Outputs, Scorer, model_output

from .torch_model import gaussian_log_p


class FlowConScorer(Scorer):
    """``flowcon``: −Σ_d log N(z; μ(z_a), σ(z_a)) / (D ln 2) (the released WRN score, negated)."""

    name = "flowcon"
    requires = ("flow_log_p",)

    def score(self, outputs: Outputs) -> torch.Tensor:
        return -model_output(outputs, "flow_log_p", self.name, 1)


class FlowConFullScorer(Scorer):
    """``flowcon_full``: −[−D ln n_bins + log|det J| + Σ_d log N(z; μ(z_a), σ(z_a))] / (D ln 2), per sample."""

    name = "flowcon_full"
    requires = ("flow_log_p", "flow_logdet")

    def __init__(self, dim: int, n_bins: int = 32):
        self.dim, self.n_bins = dim, n_bins

    def score(self, outputs: Outputs) -> torch.Tensor:
        ln2d = self.dim * math.log(2)
        log_p = model_output(outputs, "flow_log_p", self.name, 1)
        logdet = model_output(outputs, "flow_logdet", self.name, 1)
        return -(log_p + (logdet - self.dim * math.log(self.n_bins)) / ln2d)


class FlowConClassScorer(Scorer):
    """``flowcon_class``: the class-conditional density with per-class base Gaussians ("k distributions").

    ``fit``: μ_k, log σ_k = means over the fit split's class-k samples of the flow's predicted μ(z_a) and
    log σ(z_a) (the released ``calc_emp_params``). ``score`` = −[max_k Σ_d log N(z; μ_k, σ_k) + log|det J|] / (D ln 2).
    :meth:`predict` gives argmax_k, FlowCon's class-conditional classifier (the paper's accuracy check).
    """

    name = "flowcon_class"
    requires = ("flow_z", "flow_logdet")
    needs_fit = True

    def __init__(self, chunk_size: Optional[int] = None):
        self.chunk_size = chunk_size  # rows per [rows, K, D] block; None = as many as keep it <= 2^24 floats
        self.mu: Optional[torch.Tensor] = None
        self.log_sd: Optional[torch.Tensor] = None
        self.classes: Optional[torch.Tensor] = None

    def fit(self, outputs: Outputs) -> None:
        mu = model_output(outputs, "flow_mu", self.name, 2)
        log_sd = model_output(outputs, "flow_log_sd", self.name, 2)
        y = fit_labels(outputs, self.name, mu.shape[0])
        keep = y >= 0
        mu, log_sd, y = mu[keep], log_sd[keep], y[keep]
        self.classes, inverse = torch.unique(y, return_inverse=True)
        counts = torch.bincount(inverse, minlength=len(self.classes)).to(mu.dtype)[:, None]
        zeros = torch.zeros(len(self.classes), mu.shape[1], dtype=mu.dtype, device=mu.device)
        self.mu = zeros.index_add(0, inverse, mu) / counts
        self.log_sd = zeros.index_add(0, inverse, log_sd) / counts

    def class_log_p(self, outputs: Outputs) -> torch.Tensor:
        """Σ_d log N(z; μ_k, σ_k) for every fitted class, ``[N, K]`` (nats), in row chunks."""
        if self.mu is None:
            raise RuntimeError(f"scorer {self.name!r} must be fit on ID data before scoring (call fit(outputs))")
        z = model_output(outputs, "flow_z", self.name, 2)
        mu, log_sd = self.mu.to(z.device), self.log_sd.to(z.device)
        rows = self.chunk_size or max(1, (1 << 24) // mu.numel())
        parts = [gaussian_log_p(z[i:i + rows, None, :], mu[None], log_sd[None]).sum(dim=2)
                 for i in range(0, z.shape[0], rows)]
        return torch.cat(parts) if parts else z.new_zeros(0, len(self.classes))

    def predict(self, outputs: Outputs) -> torch.Tensor:
        """argmax_k of the class log-likelihood, as the fitted class labels ``[N]``."""
        return self.classes.to(outputs["flow_z"].device)[self.class_log_p(outputs).argmax(dim=1)]

    def score(self, outputs: Outputs) -> torch.Tensor:
        logdet = model_output(outputs, "flow_logdet", self.name, 1)
        d = self.mu.shape[1] if self.mu is not None else 1
        return -(self.class_log_p(outputs).amax(dim=1) + logdet) / (d * math.log(2))

"""Typicality (Nalisnick, Matsukawa, Teh, Lakshminarayanan 2019b, "Detecting out-of-distribution inputs
to deep generative models using typicality", arXiv 1906.02994).

A model's typical set holds the inputs whose negative log-likelihood is close to the entropy
H = E_p[−log p(x)], estimated on ID training data as Ĥ = (1/N) Σ_n −log p(x_n). An input is atypical, hence
OOD, when its NLL is far from Ĥ in *either* direction, which is what lets the test flag inputs a model finds
too *likely* (constant images, SVHN under a CIFAR model) as well as unlikely ones.

* :class:`Typicality` is the per-sample (M = 1) score ε̂(x) = |−log p(x) − Ĥ| (higher = more OOD), with Ĥ
  fit on the ID fit split.
* :func:`typicality_batch_test` is the paper's batch test (Alg. 1): for a batch of M inputs,
  ε̂ = |(1/M) Σ_m −log p(x_m) − Ĥ|; the threshold ε_α^M is the (1 − α) quantile of ε̂ over K bootstrap
  batches of size M drawn with replacement from held-out ID data; the batch is declared OOD when
  ε̂ > ε_α^M.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from genood.scoring.base import Outputs, Scorer
from genood.scoring.likelihood import get_log_prob


class Typicality(Scorer):
    """|−log p(x) − Ĥ|, Ĥ = mean NLL on the ID fit split (Nalisnick et al. 2019b, M = 1)."""

    name = "typicality"
    requires = ("log_prob",)
    needs_fit = True

    def __init__(self, key: str = "log_prob", name: str = "typicality"):
        self.key, self.name, self.requires = key, name, (key,)
        self.entropy: Optional[float] = None  # Ĥ in nats

    def fit(self, outputs: Outputs) -> None:
        nll = -get_log_prob(outputs, self.key, self.name).double()
        if nll.numel() == 0:
            raise ValueError(f"scorer {self.name!r}: the fit split is empty; Ĥ needs ID samples")
        if not torch.isfinite(nll).all():
            raise ValueError(f"scorer {self.name!r}: {int((~torch.isfinite(nll)).sum())} non-finite log-likelihoods "
                             "in the fit split; Ĥ would be undefined")
        self.entropy = float(nll.mean())

    def score(self, outputs: Outputs) -> torch.Tensor:
        if self.entropy is None:
            raise RuntimeError(f"scorer {self.name!r} is not fitted: call fit(fit_outputs) on ID data first "
                               "(the evaluator does so for scorers with needs_fit=True)")
        nll = -get_log_prob(outputs, self.key, self.name)
        return (nll.double() - self.entropy).abs().float()


@dataclass
class TypicalityTestResult:
    """Outcome of the batch typicality test, one entry per tested batch."""

    epsilon: torch.Tensor      # ε̂ of each tested batch, [n_batches]
    threshold: float           # ε_α^M, the (1 − α) bootstrap quantile
    reject: torch.Tensor       # bool [n_batches]: True = the batch is declared OOD (ε̂ > ε_α^M)
    entropy: float             # Ĥ used
    bootstrap: torch.Tensor    # the K bootstrap ε̂ values on held-out ID data


def typicality_batch_test(nll_batch: torch.Tensor, nll_val: torch.Tensor, M: int, K: int = 1000,
                          alpha: float = 0.01, seed: int = 0, entropy: Optional[float] = None) -> TypicalityTestResult:
    """The batch typicality test of Nalisnick et al. 2019b (Alg. 1), vectorised.

    ``nll_batch``: NLLs (nats) of the inputs under test, either ``[n_batches, M]`` or a flat ``[n_batches·M]``
    split into consecutive batches of M. ``nll_val``: NLLs of held-out ID data, the bootstrap pool.
    ``entropy``: Ĥ (the mean NLL on ID *training* data, as in the paper); default: the mean of ``nll_val``.
    The threshold ε_α^M is the (1 − α) quantile of ε̂ over K batches of M drawn with replacement from
    ``nll_val`` (generator seeded by ``seed``).
    """
    if M < 1 or K < 1:
        raise ValueError(f"typicality_batch_test: M and K must be >= 1, got M={M}, K={K}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"typicality_batch_test: alpha must be in (0, 1), got {alpha}")
    nll_batch = torch.as_tensor(nll_batch, dtype=torch.float64)
    nll_val = torch.as_tensor(nll_val, dtype=torch.float64).reshape(-1)
    if nll_val.numel() == 0:
        raise ValueError("typicality_batch_test: nll_val (held-out ID NLLs) is empty")
    if nll_batch.ndim == 1:
        if nll_batch.numel() % M:
            raise ValueError(f"typicality_batch_test: {nll_batch.numel()} test NLLs do not split into batches of "
                             f"M={M}; pass [n_batches, M] or a multiple of M")
        nll_batch = nll_batch.reshape(-1, M)
    elif nll_batch.ndim != 2 or nll_batch.shape[1] != M:
        raise ValueError(f"typicality_batch_test: nll_batch must be [n_batches, M={M}] or flat, got "
                         f"{tuple(nll_batch.shape)}")
    h = float(nll_val.mean()) if entropy is None else float(entropy)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(nll_val.numel(), (K, M), generator=g)
    boot = (nll_val[idx].mean(dim=1) - h).abs()
    threshold = float(torch.quantile(boot, 1.0 - alpha))
    eps = (nll_batch.mean(dim=1) - h).abs()
    return TypicalityTestResult(epsilon=eps, threshold=threshold, reject=eps > threshold, entropy=h, bootstrap=boot)

"""HVAE scores (Havtorn et al. 2021; the family README, "The bounds"), all **higher = more OOD**, all read from one pass:

=================== ====================================== ========================= ======================
name                score                                  reads                     paper
=================== ====================================== ========================= ======================
``neg_elbo``        −L(x)                                  ``elbo``                  the likelihood baseline
``neg_elbo_gt{k}``  −L^{>k}(x)                             ``elbo_gt{k}``            "L^{>k}" rows
``llr_gt{k}``       LLR^{>k}(x) = L(x) − L^{>k}(x)          ``elbo``, ``elbo_gt{k}``  the proposed score
=================== ====================================== ========================= ======================

LLR^{>k} is large when the lower latents explain x much better than the upper ones predict, i.e. when x
has in-distribution low-level statistics but out-of-distribution semantics. k is fixed in the model's
config (``skip_k``), never chosen on test OOD data.
"""

from __future__ import annotations

import torch

from genood.scoring.base import Outputs, Scorer, model_output


def _get(outputs: Outputs, key: str, scorer: str) -> torch.Tensor:
    return model_output(outputs, key, scorer, hint=" (an HVAE bound in nats, shape [N]). Is k in the model's skip_k?")


class NegELBO(Scorer):
    """−ELBO in nats (the plain likelihood score; fails on low-complexity OOD data)."""

    name = "neg_elbo"
    requires = ("elbo",)

    def score(self, outputs: Outputs) -> torch.Tensor:
        return -_get(outputs, "elbo", self.name)


class NegSkipELBO(Scorer):
    """−L^{>k}: the bound with the k lowest latents decoded from the conditional prior."""

    def __init__(self, k: int):
        self.k = int(k)
        self.name = f"neg_elbo_gt{self.k}"
        self.requires = (f"elbo_gt{self.k}",)

    def score(self, outputs: Outputs) -> torch.Tensor:
        return -_get(outputs, f"elbo_gt{self.k}", self.name)


class LLR(Scorer):
    """LLR^{>k}(x) = L(x) − L^{>k}(x) (Havtorn et al. 2021; the family README, "The bounds")."""

    def __init__(self, k: int):
        self.k = int(k)
        self.name = f"llr_gt{self.k}"
        self.requires = ("elbo", f"elbo_gt{self.k}")

    def score(self, outputs: Outputs) -> torch.Tensor:
        return _get(outputs, "elbo", self.name) - _get(outputs, f"elbo_gt{self.k}", self.name)


def hvae_scorers(skip_k) -> list[Scorer]:
    """``neg_elbo``, then ``neg_elbo_gt{k}`` and ``llr_gt{k}`` for every k in ``skip_k``."""
    return [NegELBO(), *[NegSkipELBO(k) for k in skip_k], *[LLR(k) for k in skip_k]]

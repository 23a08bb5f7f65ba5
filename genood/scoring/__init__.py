"""The unified scoring layer: every scorer returns one float per sample, higher = more OOD.

Likelihood family (the README, "Models and scorers"), for any model whose ``score_outputs`` returns ``log_prob`` (nats, [B]):

=================== ============================================ =========================================
name                score                                        class
=================== ============================================ =========================================
``nll``             −log p(x)                                    :class:`NegLogLikelihood`
``bpd``             −log p(x) / (D ln 2)                          :class:`BitsPerDim`
``complexity``      ℓ_M(x) − L_PNG(x)  (Serrà et al. 2020)       :class:`InputComplexity`
``typicality``      |−log p(x) − Ĥ|  (Nalisnick et al. 2019b)    :class:`Typicality`
``likelihood_ratio`` −[log p_θ(x) − log p_θ0(x)]  (Ren et al. 2019) :class:`LikelihoodRatio`
=================== ============================================ =========================================
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

from genood.scoring.base import Outputs, Scorer, check_scores, select_scorers
from genood.scoring.complexity import InputComplexity, png_bits_per_dim
from genood.scoring.likelihood import BitsPerDim, NegLogLikelihood
from genood.scoring.ratio import (LikelihoodRatio, PerturbedDataset, PerturbInputs, Ratio, load_generative_model,
                                  perturb_inputs)
from genood.scoring.typicality import Typicality, TypicalityTestResult, typicality_batch_test


def is_image_shape(input_shape: Optional[Sequence[int]]) -> bool:
    """Whether one sample of this shape is an image PNG can encode: ``(C, H, W)`` with C in 1/3/4, or ``(H, W)``."""
    if input_shape is None:
        return False
    shape = tuple(input_shape)
    return len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3, 4))


def likelihood_scorers(background_ckpt: Optional[str] = None, *, input_shape: Optional[Sequence[int]] = None,
                       num_dims: Optional[int] = None, background_model_class: Union[type, str, None] = None,
                       log_prob_offset_bits_per_dim: float = 0.0,
                       data_range: Sequence[float] = (0.0, 1.0)) -> list[Scorer]:
    """The likelihood-family scorers for a model exposing ``log_prob``: nll, bpd, typicality, plus
    complexity when the inputs are images (``input_shape`` image-like, or unknown), plus likelihood_ratio
    when a background checkpoint is given. ``num_dims`` (D) is only needed when the model does not return
    ``num_dims`` itself."""
    scorers: list[Scorer] = [NegLogLikelihood(), BitsPerDim(num_dims=num_dims), Typicality()]
    if input_shape is None or is_image_shape(input_shape):
        scorers.append(InputComplexity(log_prob_offset_bits_per_dim=log_prob_offset_bits_per_dim,
                                       data_range=data_range, num_dims=num_dims))
    if background_ckpt is not None:
        scorers.append(LikelihoodRatio(background_ckpt=background_ckpt, model_class=background_model_class))
    return scorers


__all__ = [
    "Outputs", "Scorer", "check_scores", "select_scorers",
    "NegLogLikelihood", "BitsPerDim", "InputComplexity", "png_bits_per_dim", "Typicality", "TypicalityTestResult",
    "typicality_batch_test", "Ratio", "LikelihoodRatio", "load_generative_model", "perturb_inputs",
    "PerturbedDataset", "PerturbInputs", "likelihood_scorers", "is_image_shape",
]

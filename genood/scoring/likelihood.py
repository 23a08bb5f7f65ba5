"""Plain likelihood scores (Nalisnick et al. 2019a, "Do deep generative models know what they don't know?").

Both read the model's per-sample ``log_prob`` (log p_θ(x) in nats, shape ``[N]``) and flip it so that
**higher = more OOD**:

* ``nll``: −log p_θ(x) in nats;
* ``bpd``: bits per dimension, −log p_θ(x) / (D ln 2). D comes from the outputs' ``num_dims``
  (a ``[N]`` tensor or a scalar) or from the constructor. Within one model it ranks samples exactly as
  ``nll`` does (a positive constant factor); it is kept as its own scorer because bits/dim is the unit
  papers report and the one that is comparable across input sizes.

No dequantization correction is applied here: a continuous density on data in [0, 1] gives bits/dim of
the continuous density. To convert to the discrete likelihood of the 8-bit image add 8 bits/dim
(subtract D·log 256 nats from log p); the shift is the same for every sample, so rankings do not change.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from genood.scoring.base import Outputs, Scorer


def get_log_prob(outputs: Outputs, key: str = "log_prob", scorer: str = "scorer") -> torch.Tensor:
    """``outputs[key]`` as a float ``[N]`` tensor, with a clear error when it is missing or misshapen."""
    if key not in outputs:
        raise ValueError(f"scorer {scorer!r} needs the model output {key!r} (a per-sample log-likelihood in nats, "
                         f"shape [N]); the outputs only have {sorted(outputs)}")
    lp = outputs[key]
    if not torch.is_tensor(lp) or lp.ndim != 1:
        shape = tuple(lp.shape) if torch.is_tensor(lp) else type(lp).__name__
        raise ValueError(f"scorer {scorer!r}: output {key!r} must be a 1-D tensor [N] of log-likelihoods in nats, "
                         f"got {shape}")
    return lp.float()


def get_num_dims(outputs: Outputs, n: int, num_dims: Optional[int], scorer: str) -> torch.Tensor:
    """The data dimensionality D per sample (a float ``[n]`` tensor, or a 0-d tensor broadcasting to it).

    A ``num_dims`` given to the scorer's constructor wins; otherwise the outputs' ``num_dims`` (``[N]`` or
    scalar) is used. D must be positive.
    """
    if num_dims is not None:
        d = torch.tensor(float(num_dims))
    elif "num_dims" in outputs:
        d = torch.as_tensor(outputs["num_dims"]).float()
        if d.ndim > 1 or (d.ndim == 1 and d.shape[0] != n):
            raise ValueError(f"scorer {scorer!r}: output 'num_dims' must be a scalar or have shape [{n}], "
                             f"got {tuple(d.shape)}")
    else:
        raise ValueError(f"scorer {scorer!r} needs the data dimensionality D: have the model return 'num_dims' "
                         "in score_outputs, or pass num_dims=<D> to the scorer")
    if (d <= 0).any():
        raise ValueError(f"scorer {scorer!r}: num_dims must be positive, got {d.min().item()}")
    return d


class NegLogLikelihood(Scorer):
    """−log p_θ(x) in nats (higher = less likely = more OOD)."""

    name = "nll"
    requires = ("log_prob",)

    def __init__(self, key: str = "log_prob", name: str = "nll"):
        self.key, self.name, self.requires = key, name, (key,)

    def score(self, outputs: Outputs) -> torch.Tensor:
        return -get_log_prob(outputs, self.key, self.name)


class BitsPerDim(Scorer):
    """Bits per dimension b(x) = −log p_θ(x) / (D ln 2); ranks exactly as ``nll``."""

    name = "bpd"
    requires = ("log_prob",)

    def __init__(self, num_dims: Optional[int] = None, key: str = "log_prob", name: str = "bpd"):
        if num_dims is not None and int(num_dims) <= 0:
            raise ValueError(f"BitsPerDim: num_dims must be a positive int, got {num_dims}")
        self.num_dims, self.key, self.name, self.requires = num_dims, key, name, (key,)

    def score(self, outputs: Outputs) -> torch.Tensor:
        lp = get_log_prob(outputs, self.key, self.name)
        d = get_num_dims(outputs, lp.shape[0], self.num_dims, self.name).to(lp.device)
        return -lp / (d * math.log(2.0))

"""Dropout with the mask drawn from ``rand_like``: ``nn.Dropout``'s function at about half its CPU cost.

``nn.Dropout(p)`` in training zeroes each element with probability p and scales the others by 1/(1 − p);
its mask comes from ``bernoulli_``, which on CPU costs about four times ``rand_like`` (64 x 512 floats, one
thread: 0.60 ms against 0.15 ms; the whole dropout 0.64 ms against 0.34 ms). In DTE's MLP that was a fifth
of a training step. ``u >= p`` with u ~ U[0, 1) is the same Bernoulli(1 − p) mask, so the layer below is
the same random function; only the stream of random numbers differs. In eval mode it is the identity.
"""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout(p)`` (same semantics and ``state_dict``; the mask is ``rand_like(x) >= p``)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must lie in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        mask = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))  # in place: a bool mask's cast costs more
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"

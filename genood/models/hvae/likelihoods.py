"""Observation models p(x | z_1) of the HVAE: log-likelihoods in nats, one value per sample.

* :class:`BernoulliLikelihood`: binarized grey images, logits from a 3x3 convolution (as the reference code's
  ``BernoulliLikelihoodConv2d``).
* :class:`DiscretizedLogisticMixtureLikelihood`: 8-bit images (colour or grey), the discretized mixture of
  logistics of PixelCNN++ (Salimans et al. 2017, eq. 2 and §2.2) with K = 10 components and 256 bins from a
  1x1 convolution (as ``DiscretizedLogisticMixLikelihoodConv2d``). Channel c's mean is shifted linearly by the
  channels before it (3 coefficients for RGB, none for grey), so colour pixels are modelled jointly.

Both expect x in [0, 1]; the mixture treats x as one of ``n_bins`` levels ``k / (n_bins - 1)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import Conv, Shape, make_activation


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Σ_d log Bernoulli(x_d; sigmoid(logits_d)) per sample ``[B]`` (x in {0, 1})."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def mixture_param_count(channels: int, n_mix: int) -> int:
    """Outputs per pixel: K mixture logits + K·C means + K·C log-scales + K·C(C-1)/2 channel coefficients."""
    return n_mix * (1 + 2 * channels + channels * (channels - 1) // 2)


def split_mixture_params(params: torch.Tensor, channels: int, n_mix: int):
    """``[B, P, H, W]`` -> logit_pi ``[B, K, H, W]``, means / log_scales ``[B, K, C, H, W]``, coeffs
    ``[B, K, C(C-1)/2, H, W]`` (tanh-squashed, as PixelCNN++)."""
    b, _, h, w = params.shape
    n_coef = channels * (channels - 1) // 2
    logit_pi, means, log_scales, coeffs = params.split([n_mix, n_mix * channels, n_mix * channels, n_mix * n_coef], 1)
    means = means.view(b, n_mix, channels, h, w)
    log_scales = log_scales.view(b, n_mix, channels, h, w).clamp(min=-7.0)
    coeffs = torch.tanh(coeffs.view(b, n_mix, n_coef, h, w))
    return logit_pi, means, log_scales, coeffs


def discretized_logistic_mixture_log_prob(x: torch.Tensor, logit_pi: torch.Tensor, means: torch.Tensor,
                                          log_scales: torch.Tensor, coeffs: torch.Tensor,
                                          n_bins: int = 256) -> torch.Tensor:
    """log p(x) per sample ``[B]`` under the discretized logistic mixture (PixelCNN++ eq. 2).

    x ``[B, C, H, W]`` in [0, 1] is rescaled to [-1, 1]; each level is a bin of width 2/(n_bins-1). The
    lowest and highest bins extend to -inf and +inf, so the n_bins probabilities of a pixel sum to 1.
    Channel c's mean is ``means[c] + Σ_{j<c} coeffs[c, j] · x_j`` (the coefficients in row order of the
    strictly lower triangle).
    """
    b, c, h, w = x.shape
    x = (2.0 * x - 1.0).unsqueeze(1)                                        # [B, 1, C, H, W]
    mean_list, t = [], 0
    for ch in range(c):                                                    # loop over channels (1 or 3)
        m = means[:, :, ch]
        for j in range(ch):
            m = m + coeffs[:, :, t] * x[:, :, j]
            t += 1
        mean_list.append(m)
    mu = torch.stack(mean_list, 2)                                         # [B, K, C, H, W]
    half = 1.0 / (n_bins - 1)
    centered = x - mu
    inv_s = torch.exp(-log_scales)
    plus_in = inv_s * (centered + half)
    min_in = inv_s * (centered - half)
    log_cdf_plus = plus_in - F.softplus(plus_in)                           # log sigmoid(plus_in): lowest bin
    log_one_minus_cdf_min = -F.softplus(min_in)                            # log(1 - sigmoid(min_in)): top bin
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)           # for bins too narrow to difference
    log_mid = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)),
                          log_pdf_mid - math.log((n_bins - 1) / 2.0))
    log_probs = torch.where(x < -1.0 + half, log_cdf_plus, torch.where(x > 1.0 - half, log_one_minus_cdf_min, log_mid))
    log_probs = log_probs.sum(2) + torch.log_softmax(logit_pi, dim=1)      # [B, K, H, W]
    return torch.logsumexp(log_probs, dim=1).flatten(1).sum(1)


class BernoulliLikelihood(nn.Module):
    """p(x | d) = Π Bernoulli(x; sigmoid(conv3x3(act(d))))."""

    def __init__(self, in_shape: Shape, out_shape: Shape, activation: str = "relu", weightnorm: bool = True):
        super().__init__()
        self.act = make_activation(activation)
        self.head = Conv(in_shape, out_shape[0], 3, 1, False, weightnorm)

    def log_prob(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return bernoulli_log_prob(self.head(self.act(d)), x)

    def mean(self, d: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.act(d)))


class DiscretizedLogisticMixtureLikelihood(nn.Module):
    """p(x | d): discretized mixture of ``n_mix`` logistics with ``n_bins`` levels, parameters from a 1x1
    convolution of act(d)."""

    def __init__(self, in_shape: Shape, out_shape: Shape, n_mix: int = 10, n_bins: int = 256,
                 activation: str = "relu", weightnorm: bool = True):
        super().__init__()
        if n_mix < 1 or n_bins < 2:
            raise ValueError(f"need n_mix >= 1 and n_bins >= 2, got n_mix={n_mix}, n_bins={n_bins}")
        self.channels, self.n_mix, self.n_bins = out_shape[0], n_mix, n_bins
        self.act = make_activation(activation)
        self.head = Conv(in_shape, mixture_param_count(self.channels, n_mix), 1, 1, False, weightnorm)

    def params(self, d: torch.Tensor):
        return split_mixture_params(self.head(self.act(d)), self.channels, self.n_mix)

    def log_prob(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return discretized_logistic_mixture_log_prob(x, *self.params(d), n_bins=self.n_bins)

    def mean(self, d: torch.Tensor) -> torch.Tensor:
        """The mixture's component means weighted by π, ignoring the channel coupling (for inspection)."""
        logit_pi, means, _, _ = self.params(d)
        return ((torch.softmax(logit_pi, 1).unsqueeze(2) * means).sum(1).clamp(-1, 1) + 1) / 2


LIKELIHOODS = {"bernoulli": BernoulliLikelihood, "discretized_logistic_mixture": DiscretizedLogisticMixtureLikelihood}

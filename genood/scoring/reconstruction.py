"""The reconstruction-error family: a distance between x and each of its reconstructions, aggregated.

A model that reconstructs returns ``x`` ``[N, ...]`` and ``x_hat`` ``[N, r, ...]`` (r attempts or samples,
in the same scale as ``x``). A :class:`ReconstructionScorer` turns them into one distance per attempt,
``[N, r]``, and aggregates over r; every score is **higher = more OOD**:

==========  ===============================================================  =================================
distance    d(x, x̂_j)                                                        notes
==========  ===============================================================  =================================
``mse``     mean over all elements of (x − x̂_j)²                             in the data's own scale
``ssim``    1 − SSIM(x, x̂_j) (Wang et al. 2004), torchmetrics                uniform 7×7 window, data range 1
``lpips``   LPIPS(x, x̂_j) (Zhang et al. 2018, v0.1, AlexNet), :class:`LPIPSDistance`  weights from files
==========  ===============================================================  =================================

Aggregation ``median`` (LMD, Liu et al. 2023: the median over r = 10 inpainting attempts; for even r the
mean of the two middle values, as ``numpy.median``) or ``mean``.

Per-batch reduction: reconstructions are large (``[N, r, C, H, W]``), so a model may reduce each batch to
its per-attempt distances while scoring (:meth:`ReconstructionScorer.batch_distances`, stored under the
scorer's ``distance_key``); :meth:`ReconstructionScorer.score` reads those when present and otherwise
computes them from ``x`` and ``x_hat``. A precomputed ``[N]`` tensor counts as one attempt.

LPIPS offline: torchmetrics' and lpips' constructors download the AlexNet backbone at run time.
:class:`LPIPSDistance` instead builds torchmetrics' LPIPS network with downloads off and loads the backbone
from a torchvision AlexNet state dict on disk (``alexnet-owt-7be5be79.pth``) and the linear heads from
lpips' v0.1 head file (default: the copy torchmetrics ships, byte-identical to lpips 0.1.4's
``weights/v0.1/alex.pth``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch

from genood.checkpoint_io import read_weights_file
from genood.scoring.base import Outputs, Scorer

DISTANCES = ("mse", "ssim", "lpips")
AGGREGATES = ("median", "mean")
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_HINT = ("download it once where there is internet, e.g. python -c \"import torchvision; "
                "torchvision.models.alexnet(weights='IMAGENET1K_V1')\" writes ~/.cache/torch/hub/checkpoints/"
                f"{ALEXNET_FILE} (or fetch https://download.pytorch.org/models/{ALEXNET_FILE})")


def _check_pair(x: torch.Tensor, x_hat: torch.Tensor, what: str = "reconstruction") -> None:
    if not torch.is_tensor(x) or not torch.is_tensor(x_hat):
        raise ValueError(f"{what}: x and x_hat must be tensors")
    if x_hat.ndim != x.ndim + 1 or x_hat.shape[0] != x.shape[0] or x_hat.shape[2:] != x.shape[1:]:
        raise ValueError(f"{what}: x_hat must have shape [N, r, *x.shape[1:]] = [{x.shape[0]}, r, "
                         f"{', '.join(map(str, x.shape[1:]))}], got x {tuple(x.shape)} and x_hat {tuple(x_hat.shape)}")


def _pairs(x: torch.Tensor, x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """x repeated per attempt and x̂, both ``[N·r, ...]`` (row i·r + j = sample i, attempt j), and r."""
    r = x_hat.shape[1]
    return x.unsqueeze(1).expand_as(x_hat).reshape(-1, *x.shape[1:]), x_hat.reshape(-1, *x.shape[1:]), r


def mse_distance(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean squared error per attempt, ``[N, r]``: mean over every element of (x − x̂_j)²."""
    _check_pair(x, x_hat, "mse")
    return (x_hat.float() - x.float().unsqueeze(1)).pow(2).flatten(2).mean(2)


def ssim_distance(x: torch.Tensor, x_hat: torch.Tensor, data_range: float = 1.0, kernel_size: int = 7,
                  gaussian_kernel: bool = False) -> torch.Tensor:
    """1 − SSIM per attempt, ``[N, r]``: torchmetrics' SSIM map averaged over the window positions inside the
    image and over channels (as scikit-image does). The defaults are LMD's released settings (scikit-image
    ``structural_similarity`` with a uniform 7×7 window, ``data_range=1``); torchmetrics uses population
    (co)variances where scikit-image's default uses sample ones (a factor 49/48), so values differ slightly
    from the released ones."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(x, x_hat, "ssim")
    if min(x.shape[-2:]) < kernel_size:
        raise ValueError(f"ssim: images of {tuple(x.shape[-2:])} pixels are smaller than the {kernel_size}x{kernel_size} "
                         "window; lower kernel_size or use larger images")
    xr, xh, r = _pairs(x.float(), x_hat.float())
    _, full = structural_similarity_index_measure(xh, xr, gaussian_kernel=gaussian_kernel, kernel_size=kernel_size,
                                                  data_range=data_range, reduction="none", return_full_image=True)
    # torchmetrics averages its SSIM map over every pixel, border windows of the reflect-padded image included;
    # scikit-image (the released code) averages only the windows that lie inside the image: crop to those
    p = (kernel_size - 1) // 2 if not gaussian_kernel else 5  # torchmetrics' Gaussian window is 11 wide at sigma 1.5
    s = full[..., p:full.shape[-2] - p, p:full.shape[-1] - p].flatten(1).mean(1)
    return (1.0 - s).view(-1, r)


class LPIPSDistance(torch.nn.Module):
    """LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018, Eq. 1), weights read from files.

    d(x, x̂) = Σ_l mean_{h,w} ‖ w_l ⊙ (ŷ_l − ŷ'_l) ‖², with ŷ_l the channel-normalised AlexNet activations after
    ReLU l = 1..5 of the inputs mapped to [−1, 1] and shifted/scaled by LPIPS' fixed ScalingLayer. The network
    is torchmetrics' (``_LPIPS``, built with ``pnet_rand=True`` so nothing is downloaded).

    Args:
        backbone_path: torchvision AlexNet ``state_dict`` file (``alexnet-owt-7be5be79.pth``: torchvision's
            ``IMAGENET1K_V1``, the weights lpips loads). Required.
        heads_path: lpips' linear-head file (keys ``lin0.model.1.weight`` ... ``lin4.model.1.weight``); None =
            the v0.1 heads that torchmetrics ships.
        input_range: the value range of the images given (LMD: [0, 1], mapped to [−1, 1] as the released
            ``detect.py`` does). Grey images are repeated to 3 channels; sides must be at least 32 pixels.
    """

    MIN_SIDE = 32  # AlexNet's second max-pool needs 3x3 inputs: smaller images give an empty feature map

    def __init__(self, backbone_path: Optional[str] = None, heads_path: Optional[str] = None,
                 input_range: Sequence[float] = (0.0, 1.0)):
        super().__init__()
        if not backbone_path:
            raise ValueError("LPIPS needs the AlexNet backbone weights from a file (downloading at run time is not "
                             f"supported): set the LPIPS backbone path (lpips_backbone: .../{ALEXNET_FILE}); "
                             + ALEXNET_HINT)
        try:
            from torchmetrics.functional.image.lpips import _LPIPS
        except ImportError as e:  # a private torchmetrics class; name what to do when it moves
            raise ImportError(f"LPIPS needs torchmetrics' LPIPS network (torchmetrics.functional.image.lpips._LPIPS, "
                              f"checked with torchmetrics 1.9): {e}") from None
        self.input_range = (float(input_range[0]), float(input_range[1]))
        net = _LPIPS(pretrained=False, net="alex", pnet_rand=True, use_dropout=True, eval_mode=True)
        self._load_backbone(net, Path(backbone_path).expanduser())
        if heads_path is None:
            import torchmetrics.functional.image.lpips as tm_lpips

            heads_path = str(Path(tm_lpips.__file__).parent / "lpips_models" / "alex.pth")
        self._load_heads(net, Path(heads_path).expanduser())
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net.eval()

    @staticmethod
    def _read(path: Path, what: str) -> dict:
        hint = f"; {ALEXNET_HINT}" if what == "backbone" else ""
        return read_weights_file(path, f"LPIPS {what} weights", missing_hint=hint, weights_only=True,
                                 plural=True)

    def _load_backbone(self, net: torch.nn.Module, path: Path) -> None:
        """torchvision's ``features.{i}.*`` keys go to torchmetrics' ``slice{k}.{i}.*`` (the same layers)."""
        sd = self._read(path, "backbone")
        target = net.net.state_dict()
        where = {key.split(".", 1)[1]: key for key in target}  # "0.weight" -> "slice1.0.weight"
        mapped = {}
        for key, value in sd.items():
            if key.startswith("features.") and key[len("features."):] in where:
                mapped[where[key[len("features."):]]] = value
        missing = sorted(set(target) - set(mapped))
        bad = [k for k in mapped if mapped[k].shape != target[k].shape]
        if missing or bad:
            raise RuntimeError(f"LPIPS backbone weights {path} are not a torchvision AlexNet state dict "
                               f"(features.* keys): missing {missing[:4]}, wrong shapes {bad[:4]}; expected "
                               f"{ALEXNET_FILE}")
        net.net.load_state_dict(mapped)

    @staticmethod
    def _load_heads(net: torch.nn.Module, path: Path) -> None:
        sd = LPIPSDistance._read(path, "linear-head")
        # torchmetrics registers each head twice (lin{l} and lins.{l}, the same module): match lpips' lin{l} keys
        target = {k: v for k, v in net.state_dict().items() if re.match(r"lin\d+\.", k)}
        if set(sd) != set(target) or any(sd[k].shape != target[k].shape for k in target):
            raise RuntimeError(f"LPIPS linear-head weights {path} do not match lpips' v0.1 AlexNet head file: expected "
                               f"keys {sorted(target)}, got {sorted(sd)[:6]}")
        net.load_state_dict(sd, strict=False)  # the heads only; the backbone was loaded above

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """LPIPS per attempt, ``[N, r]``, for images ``x`` ``[N, C, H, W]`` and ``x_hat`` ``[N, r, C, H, W]``."""
        _check_pair(x, x_hat, "lpips")
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"lpips: needs images [N, 1 or 3, H, W], got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.MIN_SIDE:
            raise ValueError(f"lpips: AlexNet needs images of at least {self.MIN_SIDE}x{self.MIN_SIDE} pixels, got "
                             f"{tuple(x.shape[-2:])}; resize the data (e.g. image_size: 32) or use mse / ssim")
        xr, xh, r = _pairs(x.float(), x_hat.float())
        lo, hi = self.input_range
        xr, xh = (2 * (xr - lo) / (hi - lo) - 1), (2 * (xh - lo) / (hi - lo) - 1)
        if xr.shape[1] == 1:
            xr, xh = xr.expand(-1, 3, -1, -1), xh.expand(-1, 3, -1, -1)
        self.net.to(xr.device)
        return self.net(xr, xh).reshape(-1, r)


def aggregate(d: torch.Tensor, how: str = "median") -> torch.Tensor:
    """``[N, r]`` -> ``[N]``: the median over attempts (the mean of the two middle values for even r, as
    ``numpy.median``) or the mean."""
    if how == "median":
        return torch.quantile(d.double(), 0.5, dim=1, interpolation="linear").to(d.dtype)
    if how == "mean":
        return d.mean(1)
    raise ValueError(f"aggregate must be one of {AGGREGATES}, got {how!r}")


class ReconstructionScorer(Scorer):
    """Distance between x and each reconstruction, aggregated over the r attempts (module docstring).

    Args:
        name: the scorer's name (e.g. ``lmd_lpips``, ``ddpm_recon``).
        distance: "mse", "ssim", or "lpips" (then ``distance_fn`` is the :class:`LPIPSDistance`), or any
            callable ``(x [N, ...], x_hat [N, r, ...]) -> [N, r]``.
        aggregate: "median" (LMD) or "mean".
        distance_fn: the callable for ``distance="lpips"`` (or a custom name).
        x_key, x_hat_key: where the model's outputs hold x and x̂.
        distance_key: where per-batch distances are stored (default ``<name>_distances``).
        ssim_kernel_size, data_range: SSIM window and the data's value range.
    """

    def __init__(self, name: str, distance: Union[str, Callable] = "mse", aggregate: str = "median",
                 distance_fn: Optional[Callable] = None, x_key: str = "x", x_hat_key: str = "x_hat",
                 distance_key: Optional[str] = None, ssim_kernel_size: int = 7, data_range: float = 1.0):
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
        if callable(distance):
            distance_fn, distance = distance, getattr(distance, "__name__", type(distance).__name__)
        elif distance == "lpips" and distance_fn is None:
            raise ValueError(f"scorer {name!r}: distance 'lpips' needs distance_fn=LPIPSDistance(backbone_path=...)")
        elif distance not in DISTANCES and distance_fn is None:
            raise ValueError(f"scorer {name!r}: distance must be one of {DISTANCES} or a callable, got {distance!r}")
        self.name, self.distance, self.how = name, distance, aggregate
        self.distance_fn = distance_fn
        self.x_key, self.x_hat_key = x_key, x_hat_key
        self.distance_key = distance_key or f"{name}_distances"
        self.ssim_kernel_size, self.data_range = ssim_kernel_size, data_range
        self.requires = (x_key, x_hat_key)

    def applies_to(self, available: set[str]) -> bool:
        return self.distance_key in available or {self.x_key, self.x_hat_key} <= set(available)

    def compute(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Distances ``[N, r]`` between ``x`` and every attempt in ``x_hat``."""
        if self.distance_fn is not None:
            d = self.distance_fn(x, x_hat)
        elif self.distance == "mse":
            d = mse_distance(x, x_hat)
        else:
            d = ssim_distance(x, x_hat, data_range=self.data_range, kernel_size=self.ssim_kernel_size)
        if d.shape != x_hat.shape[:2]:
            raise ValueError(f"scorer {self.name!r}: the distance returned shape {tuple(d.shape)}, expected "
                             f"{tuple(x_hat.shape[:2])} (one value per sample and attempt)")
        return d

    def distances(self, outputs: Outputs) -> torch.Tensor:
        """Per-attempt distances ``[N, r]``: the precomputed ones when present, else from x and x̂."""
        if self.distance_key in outputs:
            d = outputs[self.distance_key]
            if not torch.is_tensor(d) or d.ndim not in (1, 2):
                raise ValueError(f"scorer {self.name!r}: output {self.distance_key!r} must be [N] or [N, r] distances, "
                                 f"got {tuple(d.shape) if torch.is_tensor(d) else type(d).__name__}")
            return (d.unsqueeze(1) if d.ndim == 1 else d).float()
        missing = [k for k in (self.x_key, self.x_hat_key) if k not in outputs]
        if missing:
            raise ValueError(f"scorer {self.name!r} needs the model outputs {self.x_key!r} [N, ...] and {self.x_hat_key!r} "
                             f"[N, r, ...] (or precomputed {self.distance_key!r}); the outputs only have {sorted(outputs)}")
        _check_pair(outputs[self.x_key], outputs[self.x_hat_key], f"scorer {self.name!r}")
        return self.compute(outputs[self.x_key], outputs[self.x_hat_key])

    def batch_distances(self, outputs: Outputs) -> dict[str, torch.Tensor]:
        """``{distance_key: [B, r]}`` for one batch's outputs (a model's per-batch reduction)."""
        return {self.distance_key: self.distances(outputs)}

    def score(self, outputs: Outputs) -> torch.Tensor:
        return aggregate(self.distances(outputs), self.how)


def reduce_to_distances(scorers: Sequence[Scorer], outputs: Outputs) -> dict[str, torch.Tensor]:
    """The per-attempt distances of every reconstruction scorer in ``scorers`` for one batch, ``[B, r]`` each;
    the other outputs are kept, except the reconstruction scorers' ``x`` / ``x_hat``. What a model's test step
    returns instead of the (large) reconstructions."""
    recon = [s for s in scorers if isinstance(s, ReconstructionScorer)]
    dropped = {k for s in recon for k in (s.x_key, s.x_hat_key)}
    out = {k: v for k, v in outputs.items() if k not in dropped}
    for s in recon:
        out.update(s.batch_distances(outputs))
    return out

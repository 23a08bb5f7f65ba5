"""Input complexity (Serrà et al. 2020, "Input complexity and out-of-distribution detection with
likelihood-based generative models", ICLR 2020, eq. 2).

    S(x) = ℓ_M(x) − L(x),    ℓ_M(x) = −log₂ p_M(x) / D   (the model's bits/dim),
                             L(x)   = 8 · len(PNG(x_uint8)) / D   (a lossless compressor's bits/dim).

S(x) = log₂[p_0(x) / p_M(x)] / D with the compressor as a universal reference model p_0: a sample the
model explains much worse than a generic compressor does is OOD. **Higher = more OOD** (the sign of the
paper and of the ThanosM97/OOD-detection reimplementation).

Caveats:

* **Dequantization.** L(x) is the code length of the discrete 8-bit image, so ℓ_M should be the model's
  *discrete* bits/dim of that image too. A continuous density fitted on data in [0, 1] with uniform
  dequantization has −log₂ P(x_int)/D = −log₂ p(x)/D + 8; pass ``log_prob_offset_bits_per_dim=8`` for such a
  model (or the offset matching your scaling: log₂ of the number of bins per unit). A discrete model (or a
  model whose ``log_prob`` already is the discrete likelihood) uses the default 0. The offset is the same
  for every sample, so it moves S but does not change AUROC; it matters when S is read as a number
  (S < 0: the model beats PNG).
* **PNG's fixed overhead.** ``len(PNG)`` includes about 57 bytes of signature/IHDR/IDAT/IEND framing, which
  dominates tiny images (8·57/64 ≈ 7 bits/dim on an 8×8 digit). It is constant for a fixed image shape, so
  it shifts S uniformly and leaves rankings intact.
* PNG is encoded per image with Pillow at ``compress_level=9`` (the paper also uses PNG, JPEG2000 or FLIF;
  PNG is the one available everywhere). The compressor is inherently per-image, so this is the one place
  a Python loop over samples remains; it runs on the CPU inside the evaluation pass.
"""

from __future__ import annotations

import io
import math
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from genood.scoring.base import Outputs, Scorer
from genood.scoring.likelihood import get_log_prob, get_num_dims

_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def to_uint8_images(x: torch.Tensor, data_range: Sequence[float] = (0.0, 1.0)) -> np.ndarray:
    """Map a float batch ``[B, C, H, W]`` (C in 1, 3, 4) or ``[B, H, W]`` with values in ``data_range`` to
    uint8 images ``[B, H, W]`` / ``[B, H, W, C]`` by round(255 · (x − lo)/(hi − lo)).

    Values outside the range (beyond 1e-4 of its width) raise a ValueError: they mean the data are scaled
    differently from what the scorer was told (set ``data_range``).
    """
    lo, hi = float(data_range[0]), float(data_range[1])
    if not hi > lo:
        raise ValueError(f"data_range must be (low, high) with high > low, got {tuple(data_range)}")
    if x.ndim == 4:
        c = x.shape[1]
        if c not in _PIL_MODES:
            raise ValueError(f"input complexity needs images with 1, 3 or 4 channels ([B, C, H, W]); got "
                             f"{c} channels in shape {tuple(x.shape)}")
    elif x.ndim != 3:
        raise ValueError(f"input complexity needs image batches [B, C, H, W] or [B, H, W]; got shape "
                         f"{tuple(x.shape)} (it does not apply to vector/tabular data)")
    x = x.detach().float().cpu()
    tol = 1e-4 * (hi - lo)
    if x.numel() and (x.min() < lo - tol or x.max() > hi + tol):
        raise ValueError(f"input complexity: x has values in [{x.min().item():.4g}, {x.max().item():.4g}], outside "
                         f"data_range=({lo}, {hi}); pass the range your data module produces (e.g. (-1, 1))")
    u8 = torch.round((x - lo) / (hi - lo) * 255.0).clamp_(0, 255).to(torch.uint8)
    if u8.ndim == 4:
        u8 = u8.permute(0, 2, 3, 1)
        if u8.shape[-1] == 1:
            u8 = u8[..., 0]
    return u8.numpy()


def png_num_bytes(image: np.ndarray, compress_level: int = 9) -> int:
    """Size in bytes of one uint8 image (``[H, W]`` or ``[H, W, C]``) encoded as PNG by Pillow."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=compress_level)
    return buf.tell()


def png_bits_per_dim(x: torch.Tensor, data_range: Sequence[float] = (0.0, 1.0), compress_level: int = 9) -> torch.Tensor:
    """L(x) = 8 · len(PNG(x_uint8)) / D for each image of a batch (D = C·H·W): a float ``[B]`` tensor."""
    images = to_uint8_images(x, data_range)
    d = math.prod(x.shape[1:])
    sizes = [png_num_bytes(im, compress_level) for im in images]  # the compressor is per image
    return torch.tensor(sizes, dtype=torch.float32) * 8.0 / d


class InputComplexity(Scorer):
    """S(x) = ℓ_M(x) − L(x) in bits/dim (Serrà et al. 2020, eq. 2); higher = more OOD.

    ``batch_outputs`` computes ``complexity_bits`` = L(x) in **bits per dimension** (and ``complexity_num_dims``,
    D of the image) from the raw ``batch["x"]``; ``score`` combines it with the model's ``log_prob``.
    D for ℓ_M is the constructor's ``num_dims``, else the model's ``num_dims`` output, else the image's.
    ``log_prob_offset_bits_per_dim`` is added to ℓ_M (8 for a continuous density on [0, 1] data; see the
    module docstring).
    """

    name = "complexity"
    requires = ("log_prob",)

    def __init__(self, log_prob_offset_bits_per_dim: float = 0.0, data_range: Sequence[float] = (0.0, 1.0),
                 compress_level: int = 9, num_dims: Optional[int] = None, name: str = "complexity"):
        if not 0 <= int(compress_level) <= 9:
            raise ValueError(f"compress_level must be in 0..9 (PNG/zlib), got {compress_level}")
        self.offset = float(log_prob_offset_bits_per_dim)
        self.data_range = tuple(float(v) for v in data_range)
        if len(self.data_range) != 2 or not self.data_range[1] > self.data_range[0]:
            raise ValueError(f"data_range must be (low, high) with high > low, got {data_range}")
        self.compress_level = int(compress_level)
        self.num_dims = num_dims
        self.name = name

    def batch_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["x"]
        bits = png_bits_per_dim(x, self.data_range, self.compress_level).to(x.device)
        d = torch.full_like(bits, float(math.prod(x.shape[1:])))
        return {"complexity_bits": bits, "complexity_num_dims": d}

    def score(self, outputs: Outputs) -> torch.Tensor:
        lp = get_log_prob(outputs, "log_prob", self.name)
        if "complexity_bits" not in outputs:
            raise ValueError(f"scorer {self.name!r} needs 'complexity_bits' from its batch_outputs(batch) (the "
                             "evaluator merges them into the outputs); it is missing")
        comp = outputs["complexity_bits"].float().to(lp.device)
        if self.num_dims is None and "num_dims" not in outputs and "complexity_num_dims" in outputs:
            d = outputs["complexity_num_dims"].float().to(lp.device)
        else:
            d = get_num_dims(outputs, lp.shape[0], self.num_dims, self.name).to(lp.device)
        model_bits = -lp / (d * math.log(2.0)) + self.offset
        return model_bits - comp

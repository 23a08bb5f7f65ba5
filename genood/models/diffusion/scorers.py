"""LMD's detect step (Liu et al. 2023, §3.3): a distance between x and each inpainted x̂_j, median over j.

=============  ==========================================  ====================================================
name           score (higher = more OOD)                   notes
=============  ==========================================  ====================================================
``lmd_lpips``  median_j LPIPS(x, x̂_j)                      the paper's; AlexNet v0.1, weights from files
``lmd_mse``    median_j mean (x − x̂_j)²                    in [0, 1] scale, as the released ``detect.py``
``lmd_ssim``   median_j (1 − SSIM(x, x̂_j))                 uniform 7×7 window, data range 1
=============  ==========================================  ====================================================

All are :class:`~genood.scoring.reconstruction.ReconstructionScorer`\\ s reading the model's ``x`` /
``x_hat`` (or the per-batch distances ``lmd_<d>_distances`` [N, r] its test loop stores).
"""

from __future__ import annotations

from typing import Optional, Sequence

from genood.scoring.reconstruction import DISTANCES, LPIPSDistance, ReconstructionScorer


def lmd_scorers(distances: Optional[Sequence[str]] = None, lpips_backbone: Optional[str] = None,
                lpips_heads: Optional[str] = None, aggregate: str = "median") -> list[ReconstructionScorer]:
    """``lmd_<distance>`` scorers; ``distances=None`` means lpips (only when ``lpips_backbone`` is set), mse, ssim.
    Asking for lpips without a backbone path is a ValueError saying where to get the weights."""
    if distances is None:
        distances = ["lpips", "mse", "ssim"] if lpips_backbone else ["mse", "ssim"]
    distances = list(distances)
    unknown = [d for d in distances if d not in DISTANCES]
    if unknown or not distances or len(set(distances)) != len(distances):
        raise ValueError(f"distances must be distinct names from {DISTANCES}, got {distances}")
    out = []
    for d in distances:
        fn = LPIPSDistance(lpips_backbone, lpips_heads, input_range=(0.0, 1.0)) if d == "lpips" else None
        out.append(ReconstructionScorer(f"lmd_{d}", d, aggregate=aggregate, distance_fn=fn))
    return out

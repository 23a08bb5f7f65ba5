"""LMD's map step: the replacement inpainter (Song et al. 2021, App. I.2; the released ``get_pc_inpainter``
with predictor ``euler_maruyama`` and corrector ``none``; Liu et al. 2023, §3.2). Not RePaint: no resampling.

For data x (in the model's [−1, 1] scale), a mask M (1 = known) and the process' N times t_0 > … > t_{N−1}:

1. x ← M ⊙ x + (1 − M) ⊙ z_prior,
2. for k = 0 … N − 1:
   known pixels ← a(t_k) x + s(t_k) z_k  (a fresh forward-diffused copy; a, s: the perturbation kernel),
   (x̄, x) ← reverse step from t_k with the network's ε_θ(x, t_k) and noise z'_k,
3. return (1 − M) ⊙ x + M ⊙ a(t_{N−1}) x_data  (``final="released"``: the released code's "x_mean" takes the
   unknown pixels from the last *noisy* sample, because the replacement overwrites its predictor mean) or
   (1 − M) ⊙ x̄ + M ⊙ a x_data (``final="mean"``: the noise-free mean of the last step, what its docstring says).
   The two differ by the last step's noise, g(ε)√(1/N) ≈ 1.5e-4 at N = 1000 (≈ 2e-3 at N = 10).

(The released loop also overwrites the known pixels once more after every predictor step, at the step's own
time; the next step's replacement discards that draw, so only the last one, whose mean is returned, matters.)

Batching: the r attempts of every sample are stacked into the batch (row i·r + j = sample i, attempt j), so
one step is **one** UNet call for all B·r rows; ``attempts_per_call`` splits the attempts into groups run one
after another (1 = the per-attempt loop of the released ``recon.py``), for memory or for comparison.
Noise: every z is :func:`~genood.models.counter_noise.counter_normal` keyed by (seed, sample index, attempt,
stream), with stream 0 for the prior, 1 + 2k for the known pixels of step k and 2 + 2k for its
Euler–Maruyama noise: a reconstruction does not depend on the batch, the DDP rank or the grouping.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from genood.models.counter_noise import counter_normal

FINALS = ("released", "mean")


class ReplacementInpainter:
    """Inpaints every sample r times with the masks given (module docstring); counts UNet calls.

    Args:
        process: :class:`~genood.models.diffusion.sde.SubVPSDE` or :class:`~genood.models.diffusion.ddpm.DiscreteDDPM`.
        steps: N, the number of reverse steps (paper: 1000).
        final: "released" or "mean" (module docstring).
        seed: the noise seed.
        attempts_per_call: attempts per UNet call (None = all r: one call per step).
    """

    def __init__(self, process, steps: int = 1000, final: str = "released", seed: int = 0,
                 attempts_per_call: Optional[int] = None):
        if final not in FINALS:
            raise ValueError(f"final must be one of {FINALS}, got {final!r}")
        if attempts_per_call is not None and attempts_per_call < 1:
            raise ValueError(f"attempts_per_call must be >= 1 or None, got {attempts_per_call}")
        self.process, self.steps, self.final, self.seed = process, int(steps), final, int(seed)
        self.grid = process.grid(self.steps)
        self.attempts_per_call = attempts_per_call
        self.unet_calls = 0  # UNet forward calls made (the NFE count of a batch)
        self.unet_rows = 0   # images passed through the UNet in total

    def __call__(self, eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                 masks: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``[B, r, C, H, W]`` of ``x`` ``[B, C, H, W]`` (model scale) with ``masks``
        ``[B, r, 1 or C, H, W]`` (1 = known); ``index`` ``[B]`` keys the noise; ``eps_fn(x, t)`` is the network."""
        B, r = masks.shape[:2]
        group = r if self.attempts_per_call is None else min(self.attempts_per_call, r)
        parts = []
        for start in range(0, r, group):
            att = torch.arange(start, min(start + group, r), device=x.device)
            parts.append(self._run(eps_fn, x, masks[:, att], index, att))
        return torch.cat(parts, dim=1)

    def _run(self, eps_fn, x: torch.Tensor, masks: torch.Tensor, index: torch.Tensor,
             attempts: torch.Tensor) -> torch.Tensor:
        B, r = masks.shape[:2]
        shape = x.shape[1:]
        rows_index = torch.as_tensor(index, device=x.device).long().repeat_interleave(r)
        rows_attempt = attempts.repeat(B)
        data = x.unsqueeze(1).expand(B, r, *shape).reshape(B * r, *shape)
        m = masks.reshape(B * r, *masks.shape[2:]).to(x.dtype)

        def noise(stream: int) -> torch.Tensor:
            return counter_normal(self.seed, rows_index, rows_attempt, stream, shape, x.dtype)

        cur = m * data + (1 - m) * noise(0)
        mean = cur
        for k, t in enumerate(self.grid):
            a, s = self.process.known_at(k, self.grid)
            cur = m * (a * data + s * noise(1 + 2 * k)) + (1 - m) * cur
            t_net = torch.full((B * r,), self.process.net_time(t), device=x.device, dtype=torch.float32)
            eps = eps_fn(cur, t_net)
            self.unet_calls += 1
            self.unet_rows += B * r
            mean, cur = self.process.reverse_step(cur, eps, k, self.grid, noise(2 + 2 * k))
        a, _ = self.process.last_known(len(self.grid) - 1, self.grid)
        out = (1 - m) * (cur if self.final == "released" else mean) + m * (a * data)
        return out.view(B, r, *shape)

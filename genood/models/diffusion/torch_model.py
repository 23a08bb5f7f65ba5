"""The ε-network: diffusers' ``UNet2DModel``, built from a preset or keyword arguments, or loaded from disk.

Presets (``sample_size``, ``in_channels`` and ``out_channels`` always come from the data's shape):

=========  ==========================================================================================
``paper``  the DDPM U-Net of LMD's sub-VP models (Song et al.'s ``ddpm`` config, as in Ho et al. 2020):
           128 base channels, multipliers (1, 2, 2, 2), 2 residual blocks per level, single-head
           self-attention at the 16 × 16 level (32-pixel inputs) and in the middle, GroupNorm (32 groups,
           eps 1e-6), SiLU, dropout 0.1, sinusoidal time embedding → 4 × 128. About 35.7M parameters.
``small``  for the 8 × 8 digits: channels (32, 64), 1 residual block per level, attention only in the
           middle, GroupNorm with 8 groups, dropout 0.1. About 0.65M parameters.
=========  ==========================================================================================

diffusers' blocks differ from Song's in small details (attention after every residual block of an attention
level, not once per level); the channel widths, depths and attention placement are the paper's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from genood.checkpoint_io import read_weights_file

PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(block_out_channels=(128, 256, 256, 256), layers_per_block=2,
                  down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                  attention_head_dim=None, norm_num_groups=32, norm_eps=1e-6, dropout=0.1, act_fn="silu"),
    "small": dict(block_out_channels=(32, 64), layers_per_block=1,
                  down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                  attention_head_dim=None, norm_num_groups=8, norm_eps=1e-6, dropout=0.1, act_fn="silu"),
}


def unet_kwargs(unet: Union[str, dict], input_shape: Sequence[int]) -> dict[str, Any]:
    """``UNet2DModel`` keyword arguments for a preset name or a dict (a dict may name a ``preset`` to start
    from and override any argument)."""
    if isinstance(unet, str):
        unet = {"preset": unet}
    kw = dict(unet)
    preset = kw.pop("preset", None)
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown UNet preset {preset!r}; valid: {sorted(PRESETS)} (or a dict of UNet2DModel "
                             "arguments)")
        kw = {**PRESETS[preset], **kw}
    c, h, w = input_shape
    for key in ("down_block_types", "up_block_types", "block_out_channels"):
        if key in kw:
            kw[key] = tuple(kw[key])
    levels = len(kw.get("block_out_channels", ()))
    if levels and h % 2 ** (levels - 1):
        raise ValueError(f"a UNet with {levels} levels halves the image {levels - 1} times: the side {h} must be "
                         f"divisible by {2 ** (levels - 1)}")
    return {**kw, "sample_size": h, "in_channels": c, "out_channels": c}


def build_unet(unet: Union[str, dict], input_shape: Sequence[int]):
    from diffusers import UNet2DModel

    return UNet2DModel(**unet_kwargs(unet, input_shape))


def _check_shape(model, input_shape: Sequence[int], source: str) -> None:
    c, h, _ = input_shape
    cfg = model.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else (cfg.sample_size or [h])[0]
    if cfg.in_channels != c or cfg.out_channels != c or (size is not None and size != h):
        raise ValueError(f"the pretrained UNet {source} takes {cfg.in_channels}x{size}x{size} images, but the data are "
                         f"{c}x{h}x{h}; set the datamodule's channels / image_size to match")


def _unet_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The UNet weights inside a loaded file: a genood Lightning checkpoint (its EMA network when present),
    or a plain state dict."""
    if isinstance(obj, dict) and "state_dict" in obj:
        sd = obj["state_dict"]
        for prefix in ("ema_net.", "net."):
            sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            if sub:
                return sub
        raise RuntimeError(f"checkpoint {source} has no 'ema_net.*' or 'net.*' weights (not an ImageDiffusion checkpoint)")
    if isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
        return obj
    raise RuntimeError(f"{source} is neither a genood checkpoint nor a UNet2DModel state dict")


def load_unet(path: str, input_shape: Sequence[int], unet: Union[str, dict] = "paper"):
    """A pretrained ``UNet2DModel`` from ``path``: a diffusers folder (``config.json`` +
    ``diffusion_pytorch_model.*``, or a pipeline folder with a ``unet/`` subfolder), or a file: a genood
    ``ImageDiffusion`` checkpoint (its EMA weights), a ``UNet2DModel`` state dict (``.pt``/``.pth``/``.bin``)
    or a ``.safetensors`` file; files are loaded into the UNet that ``unet`` describes."""
    from diffusers import UNet2DModel

    p = Path(path).expanduser()
    if p.is_dir():
        sub = None if (p / "config.json").exists() else "unet" if (p / "unet" / "config.json").exists() else False
        if sub is False:
            raise FileNotFoundError(f"pretrained UNet folder {p} has no config.json (nor unet/config.json): not a diffusers "
                                    "model folder")
        model = UNet2DModel.from_pretrained(str(p), subfolder=sub)
        _check_shape(model, input_shape, str(p))
        return model
    obj = read_weights_file(p, "pretrained UNet", missing_hint=" (a diffusers folder or a checkpoint file)",
                            expect_dict=False)
    sd = _unet_state_dict(obj, str(p))
    model = build_unet(unet, input_shape)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    wrong = [k for k in sd if k not in own or own[k].shape != sd[k].shape]
    if missing or wrong:
        raise RuntimeError(f"pretrained UNet {p} does not match the UNet built from unet={unet!r} for inputs "
                           f"{tuple(input_shape)}: missing {missing[:4]}, unexpected or mis-shaped {wrong[:4]}")
    model.load_state_dict(sd)
    return model


def count_parameters(model: Optional[torch.nn.Module]) -> int:
    return 0 if model is None else sum(p.numel() for p in model.parameters())

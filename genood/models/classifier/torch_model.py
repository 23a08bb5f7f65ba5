"""Supervised image classifiers whose penultimate features feed the post-hoc OOD scorers and FlowCon.

:class:`ClassifierNet` = input normalisation → backbone → linear head. The backbone returns two pooled
feature vectors per image:

* ``penultimate``: the vector the linear head reads (what MSP / energy / Mahalanobis / kNN use);
* ``last_stage``: the global-average-pooled output of the last residual stage, the vector FlowCon's flow
  reads (Aathreya & Canavan, ECCV 2024, Sec. 4.1 and their released ``intermediate_forward``). For the
  ResNet-18 and the digits CNN it *is* the penultimate vector; for the WRN-40-2 it is taken before the
  final BN-ReLU (D = 128), as the released code does.

Backbones (``backbone=``):

==============  ===========================================================================  =====
name            network                                                                      D
==============  ===========================================================================  =====
``digits_cnn``  3×3 conv 32 → 3×3 conv 64 → 2×2 max-pool → 3×3 conv 64 (BN-ReLU each), GAP    64
``resnet18``    torchvision's ``resnet18`` with the CIFAR stem: 3×3 stride-1 conv, no max-pool  512
``wrn40_2``     WRN-40-2 (Zagoruyko & Komodakis 2016), pre-activation blocks, dropout 0.3     128
==============  ===========================================================================  =====

The WRN is written here (torchvision ships no CIFAR-sized WRN) with the layer names of the Heatmap-OOD /
FlowCon classifiers (``meliketoy/wide-resnet.pytorch`` layout: the stride on the block's second conv, a
biased 1×1 shortcut conv), so their released ``net_state_dict`` files load unchanged; see
:func:`load_classifier_state`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genood.checkpoint_io import read_weights_file

BACKBONES = ("digits_cnn", "resnet18", "wrn40_2")


class DigitsCNN(nn.Module):
    """A small CNN for 8×8 (or larger) grey digits; pooled 64-d features."""

    def __init__(self, in_channels: int = 1, width: int = 32):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(in_channels, width), *block(width, 2 * width), nn.MaxPool2d(2),
                                  *block(2 * width, 2 * width))
        self.dim = self.last_stage_dim = 2 * width

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x).mean(dim=(2, 3))
        return f, f


class CifarResNet18(nn.Module):
    """torchvision ``resnet18`` with a 32×32 stem (3×3 stride-1 conv, max-pool removed); pooled ``layer4``
    output (512-d) is both the penultimate and the last-stage vector."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()  # the head lives in ClassifierNet
        self.net = net
        self.dim = self.last_stage_dim = 512

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.net
        h = n.relu(n.bn1(n.conv1(x)))
        h = n.layer4(n.layer3(n.layer2(n.layer1(h))))
        f = h.mean(dim=(2, 3))
        return f, f


class WideBasic(nn.Module):
    """Pre-activation wide block: BN-ReLU-conv3×3-dropout-BN-ReLU-conv3×3(stride) + shortcut."""

    def __init__(self, cin: int, cout: int, dropout: float, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=dropout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    """WRN-depth-k for 32×32 inputs: stages of (depth − 4)/6 wide blocks with 16k, 32k, 64k channels.
    ``last_stage`` = pooled ``layer3`` output before the final BN-ReLU; ``penultimate`` = after it."""

    def __init__(self, depth: int = 40, widen_factor: int = 2, dropout: float = 0.3, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n + 4 (e.g. 16, 28, 40), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=True)
        cin = widths[0]
        stages = []
        for w, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(WideBasic(cin, w, dropout, s))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.dim = self.last_stage_dim = widths[3]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        last = h.mean(dim=(2, 3))
        pen = F.relu(self.bn1(h)).mean(dim=(2, 3))
        return pen, last


def build_backbone(name: str, in_channels: int, wrn_dropout: float = 0.3) -> nn.Module:
    if name == "digits_cnn":
        return DigitsCNN(in_channels)
    if name == "resnet18":
        return CifarResNet18(in_channels)
    if name == "wrn40_2":
        return WideResNet(40, 2, wrn_dropout, in_channels)
    raise ValueError(f"unknown classifier backbone {name!r}; choose one of {BACKBONES}")


class ClassifierNet(nn.Module):
    """``(x - mean) / std`` → backbone → ``Linear(D, num_classes)``.

    ``forward(x)`` gives logits; :meth:`embed` gives ``(penultimate, last_stage)`` pooled features.
    ``input_mean`` / ``input_std`` default to 0.5 / 0.5, the normalisation of the FlowCon / Heatmap-OOD
    CIFAR classifiers (inputs in [0, 1] map to [−1, 1]).
    """

    def __init__(self, backbone: str = "digits_cnn", num_classes: int = 10, in_channels: int = 1,
                 input_mean: float = 0.5, input_std: float = 0.5, wrn_dropout: float = 0.3):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs num_classes >= 2, got {num_classes}")
        if input_std <= 0:
            raise ValueError(f"input_std must be positive, got {input_std}")
        self.backbone_name = backbone
        self.backbone = build_backbone(backbone, in_channels, wrn_dropout)
        self.head = nn.Linear(self.backbone.dim, num_classes)
        self.num_classes, self.in_channels = num_classes, in_channels
        self.input_mean, self.input_std = float(input_mean), float(input_std)

    @property
    def feature_dim(self) -> int:
        return self.backbone.dim

    @property
    def last_stage_dim(self) -> int:
        return self.backbone.last_stage_dim

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone((x - self.input_mean) / self.input_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x)[0])


# ---- loading weights from a path --------------------------------------------------------------------

def _released_to_ours(net_sd: dict, cls_sd: dict, backbone: str) -> dict:
    """Key map from a Heatmap-OOD / FlowCon release file (``net_state_dict`` + ``cls_state_dict``, the
    kuangliu ResNet-18 and meliketoy WRN layouts) to :class:`ClassifierNet`'s names."""
    out = {}
    for k, v in net_sd.items():
        if backbone == "resnet18":
            k = "net." + k.replace(".shortcut.", ".downsample.")
        out["backbone." + k] = v
    for k, v in cls_sd.items():
        out["head." + k.removeprefix("linear.")] = v
    return out


def classifier_state_from_file(path: str | Path, backbone: str) -> dict:
    """The :class:`ClassifierNet` state dict stored in ``path``. Accepted files:

    * a genood ``Classifier`` checkpoint (Lightning; keys ``net.*``) or ``FlowCon`` checkpoint (``classifier.*``);
    * a Heatmap-OOD / FlowCon release classifier (``{"net_state_dict", "cls_state_dict"}``);
    * a plain ``ClassifierNet.state_dict()``.
    """
    ckpt = read_weights_file(path, "classifier checkpoint",
                             missing_hint="; train one with `python -m genood.train --config "
                                          "configs/classifier/<dataset>.yaml` and pass its <run>/last.ckpt")
    if "net_state_dict" in ckpt:
        return _released_to_ours(ckpt["net_state_dict"], ckpt.get("cls_state_dict", {}), backbone)
    sd = ckpt.get("state_dict", ckpt)
    for prefix in ("net.", "classifier."):
        sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if sub:
            return sub
    return sd


def load_classifier_state(net: ClassifierNet, path: str | Path) -> None:
    """Load :func:`classifier_state_from_file` into ``net``; a mismatch names the keys and shapes."""
    sd = classifier_state_from_file(path, net.backbone_name)
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    bad = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    unexpected = [k for k in sd if k not in own]
    if missing or bad or unexpected:
        raise RuntimeError(f"classifier checkpoint {str(path)!r} does not match backbone={net.backbone_name!r} with "
                           f"{net.num_classes} classes: missing {missing[:5]}, shape mismatches {bad[:5]}, unexpected "
                           f"{unexpected[:5]}. Use the backbone / num_classes of the run that wrote it.")
    net.load_state_dict(sd)


def classifier_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> ClassifierNet:
    """Rebuild a :class:`ClassifierNet` from a genood ``Classifier`` or ``FlowCon`` checkpoint (its
    hyper-parameters name the backbone, classes and input shape) and load its weights."""
    path = Path(path)
    state = classifier_state_from_file(path, "")  # raises on a missing / unreadable file
    hp = torch.load(path, map_location="cpu", weights_only=False).get("hyper_parameters", {})
    need = ("backbone", "num_classes", "input_shape")
    if any(k not in hp for k in need):
        raise RuntimeError(f"{str(path)!r} is not a genood Classifier/FlowCon checkpoint (its hyper-parameters lack "
                           f"{[k for k in need if k not in hp]}); pass a checkpoint written by `python -m genood.train`")
    shape: Sequence[int] = hp["input_shape"]
    net = ClassifierNet(hp["backbone"], hp["num_classes"], int(shape[0]), hp.get("input_mean", 0.5),
                        hp.get("input_std", 0.5), hp.get("wrn_dropout", 0.3))
    missing = [k for k in net.state_dict() if k not in state]
    if missing:
        raise RuntimeError(f"{str(path)!r}: classifier weights missing {missing[:5]}")
    net.load_state_dict({k: state[k] for k in net.state_dict()})
    return net.to(map_location)


def crop_flip(x: torch.Tensor, padding: int = 4, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The CIFAR training augmentation (torchvision ``RandomCrop(size, padding=4)`` + ``RandomHorizontalFlip``)
    on a whole batch at once, on ``x``'s device: zero-pad by ``padding``, take one random crop of the
    original size per image, flip half of the images left-right."""
    b, c, h, w = x.shape
    dev = x.device
    xp = F.pad(x, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (b,), device=dev, generator=generator)
    left = torch.randint(0, 2 * padding + 1, (b,), device=dev, generator=generator)
    rows = (top[:, None] + torch.arange(h, device=dev))[:, None, :, None]        # [b, 1, h, 1]
    cols = (left[:, None] + torch.arange(w, device=dev))[:, None, None, :]       # [b, 1, 1, w]
    flip = torch.rand(b, device=dev, generator=generator) < 0.5
    cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return xp[bi, ci, rows, cols]

"""The standard image sets genood reads through torchvision, and how each is found, loaded and grouped.

=============  ===========  ==========  =========================================  ======================
name           torchvision  native      files looked for (under ``root``)          splits (train / test)
=============  ===========  ==========  =========================================  ======================
mnist          MNIST        1x28x28     ``MNIST/raw/{train,t10k}-{images-idx3,``    train=True / False
                                        ``labels-idx1}-ubyte``
fashionmnist   FashionMNIST 1x28x28     ``FashionMNIST/raw/...`` (same names)       train=True / False
kmnist         KMNIST       1x28x28     ``KMNIST/raw/...`` (same names)             train=True / False
cifar10        CIFAR10      3x32x32     ``cifar-10-batches-py/{data_batch_1..5,``   train=True / False
                                        ``test_batch,batches.meta}``
cifar100       CIFAR100     3x32x32     ``cifar-100-python/{train,test,meta}``      train=True / False
svhn           SVHN         3x32x32     ``SVHN/{train,test,extra}_32x32.mat``       "train" / "test"
=============  ===========  ==========  =========================================  ======================

SVHN is kept in its own ``SVHN/`` folder (torchvision's SVHN class puts its ``.mat`` files straight into the
root it is given; genood gives it ``<root>/SVHN``). SVHN labels digit 0 as 10 in the files; torchvision maps
it to 0.

**Checksums.** torchvision checks only that the MNIST-family files exist, but checks the md5 of every
CIFAR/SVHN file each time a split is opened. ``verify_checksums=True`` keeps that check; with ``False``,
files that are present are trusted (integrity is still checked by torchvision when it downloads them), which
skips hashing hundreds of MB at every start and allows hand-made or re-packed files.

**Groups** (near/far OOD relative to the ID set), the field's usual reading: CIFAR10 <-> CIFAR100 is near-OOD
(OpenOOD v1.5's CIFAR benchmarks); CIFAR <-> SVHN is far (OpenOOD; the HVAE/likelihood-failure papers);
MNIST / FashionMNIST / KMNIST pairs are read as far here (different content, the Nalisnick et al. 2019 /
HVAE "FashionMNIST -> MNIST" pair); note OpenOOD's MNIST benchmark instead lists FashionMNIST as near-OOD
for MNIST, so pass ``ood_groups`` to follow it. Grey <-> colour pairs and any pair not in the table are far.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

DOWNLOAD_FLAG = "--data.init_args.download=true"
CHECKSUM_FLAG = "--data.init_args.verify_checksums=false"


@dataclass(frozen=True)
class VisionSetSpec:
    """One torchvision dataset: its class name, native ``(C, H, W)``, the folder under ``root`` that
    torchvision reads, and the file names that must be there."""

    tv_class: str
    shape: tuple[int, int, int]
    folder: str
    files: tuple[str, ...]


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

VISION_SETS: dict[str, VisionSetSpec] = {
    "mnist": VisionSetSpec("MNIST", (1, 28, 28), os.path.join("MNIST", "raw"), _MNIST_FILES),
    "fashionmnist": VisionSetSpec("FashionMNIST", (1, 28, 28), os.path.join("FashionMNIST", "raw"), _MNIST_FILES),
    "kmnist": VisionSetSpec("KMNIST", (1, 28, 28), os.path.join("KMNIST", "raw"), _MNIST_FILES),
    "cifar10": VisionSetSpec("CIFAR10", (3, 32, 32), "cifar-10-batches-py",
                             tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")),
    "cifar100": VisionSetSpec("CIFAR100", (3, 32, 32), "cifar-100-python", ("train", "test", "meta")),
    "svhn": VisionSetSpec("SVHN", (3, 32, 32), "SVHN", ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat")),
}

SPLITS = ("train", "test", "extra")  # "extra" exists for SVHN only

# near-OOD pairs (symmetric); every other pair is far
NEAR_PAIRS = {frozenset(("cifar10", "cifar100"))}

# OOD sets evaluated when the user names none: the other sets of the same modality
DEFAULT_OOD = {
    "mnist": ["fashionmnist", "kmnist"],
    "fashionmnist": ["mnist", "kmnist"],
    "kmnist": ["mnist", "fashionmnist"],
    "cifar10": ["svhn", "cifar100"],
    "cifar100": ["svhn", "cifar10"],
    "svhn": ["cifar10", "cifar100"],
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing (download off) or could not be downloaded or verified."""


def canonical_name(name: str) -> str:
    """The table key for ``name`` (case-insensitive); ValueError listing the valid names otherwise."""
    key = str(name).lower()
    if key not in VISION_SETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(VISION_SETS)}")
    return key


def ood_group(id_name: str, ood_name: str) -> str:
    """"near" or "far" for OOD set ``ood_name`` relative to ID set ``id_name`` (see the module docstring)."""
    return "near" if frozenset((id_name, ood_name)) in NEAR_PAIRS else "far"


def dataset_dir(name: str, root: str) -> str:
    """The folder torchvision looks in for ``name``'s files."""
    return os.path.join(root, VISION_SETS[name].folder)


def _presence_only(cls):
    """A subclass of torchvision's CIFAR10/CIFAR100/SVHN that checks that its files exist but does not hash
    them (torchvision still verifies the md5 when it downloads)."""

    def _check_integrity(self) -> bool:
        if hasattr(self, "base_folder"):  # CIFAR
            names = [f for f, _ in self.train_list + self.test_list]
            return all(os.path.isfile(os.path.join(self.root, self.base_folder, f)) for f in names)
        return os.path.isfile(os.path.join(self.root, self.filename))  # SVHN

    def _load_meta(self) -> None:  # CIFAR's meta loader hashes its file too
        import pickle

        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        if not os.path.isfile(path):
            raise RuntimeError("Dataset metadata file not found")
        with open(path, "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def download(self) -> None:  # SVHN's download hashes a present file and re-downloads on mismatch
        if not self._check_integrity():
            cls.download(self)

    body = {"_check_integrity": _check_integrity, "download": download, "__module__": __name__}
    if hasattr(cls, "_load_meta"):
        body["_load_meta"] = _load_meta
    return type(f"Trusted{cls.__name__}", (cls,), body)


def _torchvision_split(name: str, root: str, split: str, download: bool, verify_checksums: bool):
    import torchvision.datasets as tvd

    spec = VISION_SETS[name]
    cls = getattr(tvd, spec.tv_class)
    if name == "svhn":
        if not verify_checksums:
            cls = _presence_only(cls)
        return cls(os.path.join(root, spec.folder), split=split, download=download)
    if split not in ("train", "test"):
        raise ValueError(f"{name} has splits 'train' and 'test', got {split!r} ('extra' exists for svhn only)")
    if name.startswith("cifar") and not verify_checksums:
        cls = _presence_only(cls)
    return cls(root, train=split == "train", download=download)


def open_split(name: str, root: str, split: str, download: bool = False, verify_checksums: bool = True):
    """The torchvision dataset object for one split (downloading it first when ``download``).

    Any failure to find, download or verify the files becomes one :class:`DatasetNotFoundError` naming the
    dataset, the folder looked in, and the flag that downloads it.
    """
    name = canonical_name(name)
    spec = VISION_SETS[name]
    where = dataset_dir(name, root)
    try:
        return _torchvision_split(name, root, split, download, verify_checksums)
    except (RuntimeError, OSError) as e:
        needed = _needed_files(name, split)
        if download:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
            msg = (f"{spec.tv_class} ({name}) could not be downloaded into {where} ({type(e).__name__}: {reason}); "
                   f"place the files there by hand, or rerun with {DOWNLOAD_FLAG} where the internet is reachable.")
        elif all(os.path.isfile(os.path.join(where, f)) for f in needed):
            msg = (f"{spec.tv_class} ({name}) files in {where} failed torchvision's check ({str(e).strip()}): "
                   f"they may be corrupted or not the official files; delete them and rerun with {DOWNLOAD_FLAG}, "
                   f"or trust them with {CHECKSUM_FLAG}.")
        else:
            missing = [f for f in needed if not os.path.isfile(os.path.join(where, f))]
            msg = (f"{spec.tv_class} ({name}) not found: looked in {where} for {', '.join(missing)} (download is "
                   f"off); rerun with {DOWNLOAD_FLAG} to download it, or point --data.init_args.root at a "
                   f"folder that holds it.")
        raise DatasetNotFoundError(msg) from None


def load_split(name: str, root: str, split: str, download: bool = False,
               verify_checksums: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of a torchvision dataset as ``uint8 [N, C, H, W]`` images and ``int64 [N]`` labels
    (errors as :func:`open_split`)."""
    name = canonical_name(name)
    ds = open_split(name, root, split, download, verify_checksums)
    if name == "svhn":
        x = torch.from_numpy(np.ascontiguousarray(ds.data))                        # already [N, 3, H, W]
        y = torch.as_tensor(np.asarray(ds.labels), dtype=torch.long)
    elif name.startswith("cifar"):
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))  # HWC -> CHW
        y = torch.as_tensor(ds.targets, dtype=torch.long)
    else:
        x = ds.data.unsqueeze(1).contiguous()                                      # [N, 28, 28] -> [N, 1, 28, 28]
        y = torch.as_tensor(ds.targets, dtype=torch.long)
    return x, y


def _needed_files(name: str, split: str) -> list[str]:
    """The files torchvision requires to open ``split`` of ``name``."""
    files = VISION_SETS[name].files
    if name == "svhn":
        return [f"{split}_32x32.mat"]
    return list(files)  # MNIST-family and CIFAR classes require all their files whichever split is opened


class ImageConverter:
    """Maps one ``uint8 [C, H, W]`` image to a float ``[channels, size, size]`` tensor in [0, 1].

    Colour -> grey uses ITU-R 601-2 luma (torchvision's ``rgb_to_grayscale``, as PIL's ``convert("L")``);
    grey -> colour repeats the channel; resizing is bilinear with antialiasing (torchvision ``resize``).
    """

    def __init__(self, channels: int, size: Optional[tuple[int, int]] = None):
        self.channels = channels
        self.size = size

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import functional as TF

        x = img.to(torch.float32) / 255.0
        if self.channels == 1 and x.shape[0] == 3:
            x = TF.rgb_to_grayscale(x, num_output_channels=1)
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = TF.resize(x, list(self.size), interpolation=TF.InterpolationMode.BILINEAR, antialias=True).clamp(0, 1)
        if self.channels == 3 and x.shape[0] == 1:
            x = x.expand(3, -1, -1).contiguous()
        return x

    def __repr__(self) -> str:
        return f"ImageConverter(channels={self.channels}, size={self.size})"

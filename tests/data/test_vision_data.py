"""VisionDataModule on tiny files written in each dataset's real on-disk format (no internet)."""

from __future__ import annotations

import os
import pickle
import struct
from urllib.error import URLError

import numpy as np
import pytest
import scipy.io
import torch

from genood.data.vision import VisionDataModule
from genood.data.vision_sets import DOWNLOAD_FLAG, DatasetNotFoundError


# ---------------------------------------------------------------- writers of the real formats
def _mnist_images(n: int, seed: int) -> np.ndarray:
    """Images whose pixel [0, 0] is the sample number (so each is identifiable), the rest random."""
    img = np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    img[:, 0, 0] = np.arange(n)
    return img


def write_mnist_family(root, folder: str, n_train: int, n_test: int, seed: int = 0):
    """Uncompressed idx files as torchvision's MNIST reads them: ``<root>/<folder>/raw/...``
    (magic 2051 for idx3 images, 2049 for idx1 labels, big-endian dims)."""
    raw = os.path.join(root, folder, "raw")
    os.makedirs(raw, exist_ok=True)
    out = {}
    for prefix, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        img = _mnist_images(n, s)
        lab = (np.arange(n) % 10).astype(np.uint8)
        with open(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + img.tobytes())
        with open(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", 2049, n) + lab.tobytes())
        out[prefix] = (img, lab)
    return out


def _cifar_rows(n: int, seed: int) -> np.ndarray:
    """``[n, 3072]`` rows (R plane, G plane, B plane, each 32x32 row-major) with red [0, 0] = sample number."""
    rows = np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)
    rows[:, 0] = np.arange(n)
    return rows


def write_cifar10(root, per_batch: int = 4, n_test: int = 10):
    d = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(d, exist_ok=True)
    train = _cifar_rows(5 * per_batch, 10)
    for i in range(5):
        part = train[i * per_batch:(i + 1) * per_batch]
        with open(os.path.join(d, f"data_batch_{i + 1}"), "wb") as f:
            pickle.dump({"data": part, "labels": [int(v) % 10 for v in part[:, 0]]}, f)
    test = _cifar_rows(n_test, 11)
    with open(os.path.join(d, "test_batch"), "wb") as f:
        pickle.dump({"data": test, "labels": [i % 10 for i in range(n_test)]}, f)
    with open(os.path.join(d, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return train, test


def write_cifar100(root, n_train: int = 20, n_test: int = 6):
    d = os.path.join(root, "cifar-100-python")
    os.makedirs(d, exist_ok=True)
    for name, n, s in (("train", n_train, 20), ("test", n_test, 21)):
        with open(os.path.join(d, name), "wb") as f:
            pickle.dump({"data": _cifar_rows(n, s), "fine_labels": [i % 100 for i in range(n)],
                         "coarse_labels": [i % 20 for i in range(n)]}, f)
    with open(os.path.join(d, "meta"), "wb") as f:
        pickle.dump({"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": []}, f)


def write_svhn(root, sizes=(("train", 20), ("test", 9))):
    """``<root>/SVHN/<split>_32x32.mat`` with X: 32x32x3xN uint8 and y: Nx1 (digit 0 stored as 10)."""
    d = os.path.join(root, "SVHN")
    os.makedirs(d, exist_ok=True)
    out = {}
    for k, (split, n) in enumerate(sizes):
        X = np.random.default_rng(30 + k).integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        X[0, 0, 0, :] = np.arange(n)
        digits = np.arange(n) % 10
        y = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]
        scipy.io.savemat(os.path.join(d, f"{split}_32x32.mat"), {"X": X, "y": y})
        out[split] = (X, digits)
    return out


def dm(root, **kw) -> VisionDataModule:
    kw.setdefault("verify_checksums", False)
    m = VisionDataModule(root=str(root), **kw)
    m.setup("fit")
    return m


def _all(ds):
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([it["x"] for it in items]), torch.tensor([it["y"] for it in items]), [it["index"] for it in items]


# ---------------------------------------------------------------- tests
def test_mnist_family_values_splits_and_index(tmp_path):
    fm = write_mnist_family(tmp_path, "FashionMNIST", 20, 8)
    mn = write_mnist_family(tmp_path, "MNIST", 12, 10, seed=5)
    write_mnist_family(tmp_path, "KMNIST", 12, 12, seed=9)
    m = dm(tmp_path, id_dataset="FashionMNIST", ood_datasets=["mnist", "KMNIST"], equal_size=False,
           val_fraction=0.25)
    assert m.input_shape == (1, 28, 28) == tuple(m.train_set[0]["x"].shape)
    # split sizes: val 5 of 20, train = fit = the other 15, together exactly the 20 train images
    assert (len(m.train_set), len(m.val_set), len(m.fit_set)) == (15, 5, 15)
    tr_x, tr_y, tr_i = _all(m.train_set)
    va_x, va_y, va_i = _all(m.val_set)
    assert tr_i == list(range(15)) and va_i == list(range(5))
    ids = sorted((tr_x[:, 0, 0, 0] * 255).round().long().tolist() + (va_x[:, 0, 0, 0] * 255).round().long().tolist())
    assert ids == list(range(20))
    img, lab = fm["train"]
    k = (va_x[:, 0, 0, 0] * 255).round().long()
    assert torch.equal(va_x[:, 0], torch.from_numpy(img[k.numpy()]).float() / 255)
    assert torch.equal(va_y, torch.from_numpy(lab[k.numpy()]).long())
    # eval sets: ID test first, exact pixels and labels, index = position
    names = [(s.name, s.group, len(s.dataset)) for s in m.test_sets()]
    assert names == [("fashionmnist", "id", 8), ("mnist", "far", 10), ("kmnist", "far", 12)]
    x, y, idx = _all(m.eval_sets[1].dataset)
    assert x.dtype == torch.float32 and x.shape == (10, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x[:, 0], torch.from_numpy(mn["t10k"][0]).float() / 255)
    assert y.tolist() == mn["t10k"][1].tolist() and idx == list(range(10))
    # a different seed holds out a different validation part
    other = dm(tmp_path, id_dataset="fashionmnist", ood_datasets=[], val_fraction=0.25, seed=1)
    assert not torch.equal(_all(other.val_set)[0], va_x)


def test_equal_size_capping_is_seeded_subset(tmp_path):
    write_mnist_family(tmp_path, "FashionMNIST", 10, 8)
    mn = write_mnist_family(tmp_path, "MNIST", 10, 30, seed=5)
    write_mnist_family(tmp_path, "KMNIST", 10, 12, seed=9)
    kw = dict(id_dataset="fashionmnist", ood_datasets=["mnist", "kmnist"], val_fraction=0.1)
    a = dm(tmp_path, **kw)
    assert [len(s.dataset) for s in a.eval_sets] == [8, 8, 8]
    x, y, idx = _all(a.eval_sets[1].dataset)
    src = (x[:, 0, 0, 0] * 255).round().long()        # which MNIST test images were kept
    assert len(set(src.tolist())) == 8 and idx == list(range(8))
    assert torch.equal(x[:, 0], torch.from_numpy(mn["t10k"][0][src.numpy()]).float() / 255)
    assert y.tolist() == mn["t10k"][1][src.numpy()].tolist()
    assert src.tolist() != list(range(8))              # a random subset, not the first 8
    assert torch.equal(_all(dm(tmp_path, **kw).eval_sets[1].dataset)[0], x)  # same seed -> same subset
    assert not torch.equal(_all(dm(tmp_path, seed=3, **kw).eval_sets[1].dataset)[0], x)
    assert [len(s.dataset) for s in dm(tmp_path, max_per_set=3, **kw).eval_sets] == [3, 3, 3]
    assert [len(s.dataset) for s in dm(tmp_path, equal_size=False, max_per_set=10, **kw).eval_sets] == [8, 10, 10]


def test_cifar_svhn_loading_groups_and_grey_to_colour(tmp_path):
    train, test = write_cifar10(tmp_path)
    write_cifar100(tmp_path)
    sv = write_svhn(tmp_path)
    mn = write_mnist_family(tmp_path, "MNIST", 10, 10, seed=5)
    m = dm(tmp_path, id_dataset="cifar10", ood_datasets=["cifar100", "svhn", "mnist"], val_fraction=0.1)
    assert m.input_shape == (3, 32, 32) == tuple(m.train_set[0]["x"].shape)
    assert (len(m.train_set), len(m.val_set)) == (18, 2)
    assert [(s.name, s.group, len(s.dataset)) for s in m.eval_sets] == [
        ("cifar10", "id", 6), ("cifar100", "near", 6), ("svhn", "far", 6), ("mnist", "far", 6)]
    # CIFAR rows: R plane then G then B, each row-major
    x, y, _ = _all(m.eval_sets[0].dataset)
    k = (x[:, 0, 0, 0] * 255).round().long().numpy()
    assert torch.equal(x, torch.from_numpy(test[k].reshape(-1, 3, 32, 32)).float() / 255)
    assert y.tolist() == (k % 10).tolist()
    # SVHN: X[h, w, c, n] -> x[c, h, w]; label 10 -> digit 0
    x, y, _ = _all(m.eval_sets[2].dataset)
    k = (x[:, 0, 0, 0] * 255).round().long().numpy()
    X, digits = sv["test"]
    assert torch.equal(x, torch.from_numpy(X[..., k].transpose(3, 2, 0, 1)).float() / 255)
    assert y.tolist() == digits[k].tolist() and 10 not in y.tolist()
    # MNIST into a CIFAR model: 3x32x32, channels repeated, bilinear resize of the grey image
    x, _, _ = _all(m.eval_sets[3].dataset)
    assert x.shape == (6, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    grey = torch.from_numpy(mn["t10k"][0]).float()[:, None] / 255
    ref = torch.nn.functional.interpolate(grey, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    src = [int(i) for i in _mnist_source(x[:, :1], ref)]
    assert len(set(src)) == 6
    # group overrides
    g = VisionDataModule(id_dataset="cifar10", ood_datasets=["cifar100", "svhn"], ood_groups={"SVHN": "near",
                         "cifar100": "far"}, root=str(tmp_path))
    assert g.groups == {"cifar100": "far", "svhn": "near"}
    with pytest.raises(ValueError, match="ood_groups"):
        VisionDataModule(id_dataset="cifar10", ood_datasets=["svhn"], ood_groups={"mnist": "near"})
    with pytest.raises(ValueError, match="near"):
        VisionDataModule(id_dataset="cifar10", ood_datasets=["svhn"], ood_groups={"svhn": "medium"})


def _mnist_source(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """For each converted image, the index of the resized reference it equals (asserting a close match)."""
    d = torch.cdist(x.flatten(1), ref.flatten(1))
    best = d.argmin(1)
    assert torch.all(d.min(1).values < 1e-3)
    return best


def test_colour_to_grey_and_resize(tmp_path):
    write_mnist_family(tmp_path, "MNIST", 10, 10)
    train, test = write_cifar10(tmp_path, n_test=5)
    m = dm(tmp_path, id_dataset="mnist", ood_datasets=["cifar10"], equal_size=False)
    x, _, _ = _all(m.eval_sets[1].dataset)
    assert x.shape == (5, 1, 28, 28)
    rgb = torch.from_numpy(test.reshape(-1, 3, 32, 32)).float() / 255
    luma = (0.2989 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])[:, None]
    ref = torch.nn.functional.interpolate(luma, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    assert torch.allclose(x, ref, atol=1e-4)
    # an explicit target shape applies to the ID set too
    big = dm(tmp_path, id_dataset="mnist", ood_datasets=["cifar10"], image_size=32, channels=3)
    assert big.input_shape == (3, 32, 32)
    assert all(tuple(s.dataset[0]["x"].shape) == (3, 32, 32) for s in big.eval_sets)
    assert tuple(big.train_set[0]["x"].shape) == (3, 32, 32)


def test_binarization_modes(tmp_path):
    write_mnist_family(tmp_path, "FashionMNIST", 20, 8)
    write_mnist_family(tmp_path, "MNIST", 10, 10, seed=5)
    m = dm(tmp_path, id_dataset="fashionmnist", ood_datasets=["mnist"], binarize="dynamic")
    for ds in [m.val_set, m.fit_set] + [s.dataset for s in m.eval_sets]:
        a, b = ds[1]["x"], ds[1]["x"]
        assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    a, b = m.train_set[3]["x"], m.train_set[3]["x"]
    assert set(a.unique().tolist()) <= {0.0, 1.0} and not torch.equal(a, b)  # fresh draws (784 pixels)
    # the static draw follows the intensities: mean over many pixels close to the grey image's
    grey = dm(tmp_path, id_dataset="fashionmnist", ood_datasets=["mnist"])
    xb, xg = _all(m.eval_sets[0].dataset)[0], _all(grey.eval_sets[0].dataset)[0]
    assert abs(xb.mean() - xg.mean()) < 0.03
    s = dm(tmp_path, id_dataset="fashionmnist", ood_datasets=["mnist"], binarize="static")
    assert torch.equal(s.train_set[3]["x"], s.train_set[3]["x"])
    with pytest.raises(ValueError, match="1-channel"):
        VisionDataModule(id_dataset="cifar10", binarize="dynamic")
    VisionDataModule(id_dataset="cifar10", binarize="dynamic", channels=1)  # grey CIFAR is fine


def test_svhn_id_splits_and_extra(tmp_path):
    write_svhn(tmp_path, sizes=(("train", 20), ("test", 9), ("extra", 15)))
    write_cifar10(tmp_path)
    m = dm(tmp_path, id_dataset="svhn", ood_datasets=["cifar10"], equal_size=False)
    assert (len(m.train_set) + len(m.val_set), len(m.eval_sets[0].dataset)) == (20, 9)
    e = dm(tmp_path, id_dataset="svhn", ood_datasets=["cifar10"], equal_size=False, svhn_id_eval_split="extra")
    assert len(e.eval_sets[0].dataset) == 15 and e.eval_sets[0].group == "id"
    with pytest.raises(ValueError, match="extra"):
        VisionDataModule(id_dataset="svhn", svhn_id_eval_split="valid")
    # download=True with trusted files present downloads nothing (no internet here; a download would fail)
    d = VisionDataModule(id_dataset="svhn", ood_datasets=["cifar10"], root=str(tmp_path), download=True,
                         verify_checksums=False)
    d.prepare_data()
    d.setup("fit")
    assert len(d.eval_sets[0].dataset) == 9


def test_dataloaders_batches(tmp_path):
    write_mnist_family(tmp_path, "KMNIST", 20, 8)
    write_mnist_family(tmp_path, "MNIST", 10, 10, seed=5)
    m = dm(tmp_path, id_dataset="kmnist", ood_datasets=["mnist"], batch_size=4, eval_batch_size=5)
    b = next(iter(m.train_dataloader()))
    assert b["x"].shape == (4, 1, 28, 28) and b["y"].shape == (4,) and b["index"].shape == (4,)
    loaders = m.test_dataloader()
    assert len(loaders) == 2 and next(iter(loaders[1]))["x"].shape == (5, 1, 28, 28)


def test_unknown_name_and_bad_arguments():
    with pytest.raises(ValueError) as e:
        VisionDataModule(id_dataset="imagenet")
    for valid in ("mnist", "fashionmnist", "kmnist", "cifar10", "cifar100", "svhn"):
        assert valid in str(e.value)
    with pytest.raises(ValueError, match="valid: .*svhn or the synthetic sets .*uniform_noise"):
        VisionDataModule(id_dataset="mnist", ood_datasets=["notmnist"])
    with pytest.raises(ValueError, match="ID dataset"):
        VisionDataModule(id_dataset="mnist", ood_datasets=["MNIST"])
    with pytest.raises(ValueError, match="channels"):
        VisionDataModule(id_dataset="mnist", channels=2)
    with pytest.raises(ValueError, match="val_fraction"):
        VisionDataModule(id_dataset="mnist", val_fraction=1.0)


def test_lazy_and_missing_files_error(tmp_path):
    root = tmp_path / "nowhere"
    m = VisionDataModule(id_dataset="mnist", ood_datasets=["svhn"], root=str(root))  # reads nothing yet
    assert m.input_shape == (1, 28, 28) and m.train_set is None and not root.exists()
    with pytest.raises(DatasetNotFoundError) as e:
        m.setup("fit")
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError) and "\n" not in msg
    assert "MNIST" in msg and os.path.join(str(root), "MNIST", "raw") in msg and DOWNLOAD_FLAG in msg
    # ID present, an OOD set missing: the error names that set and its folder
    write_mnist_family(root, "MNIST", 10, 10)
    with pytest.raises(DatasetNotFoundError) as e:
        VisionDataModule(id_dataset="mnist", ood_datasets=["svhn"], root=str(root)).setup("fit")
    assert "svhn" in str(e.value) and os.path.join(str(root), "SVHN") in str(e.value)
    assert "test_32x32.mat" in str(e.value) and DOWNLOAD_FLAG in str(e.value)


def test_checksums_kept_by_default_and_download_failure(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    # hand-made CIFAR files are present but are not the official ones: torchvision's md5 check rejects them
    with pytest.raises(DatasetNotFoundError) as e:
        VisionDataModule(id_dataset="cifar10", ood_datasets=[], root=str(tmp_path)).setup("fit")
    assert "cifar-10-batches-py" in str(e.value) and "verify_checksums=false" in str(e.value)
    # download failing (offline) is rewrapped too, naming the dataset and folder
    import torchvision.datasets as tvd

    def offline(self):
        raise URLError("no route to host")

    monkeypatch.setattr(tvd.KMNIST, "download", offline)
    m = VisionDataModule(id_dataset="kmnist", ood_datasets=[], root=str(tmp_path), download=True)
    with pytest.raises(DatasetNotFoundError) as e:
        m.prepare_data()
    assert "KMNIST" in str(e.value) and "no route to host" in str(e.value)
    assert os.path.join(str(tmp_path), "KMNIST", "raw") in str(e.value)


def test_synthetic_ood_sets_at_the_id_shape(tmp_path):
    """FashionMNIST -> MNIST + the paper's noise sets: generated at the ID shape, capped like the others."""
    write_mnist_family(tmp_path, "FashionMNIST", 20, 8)
    write_mnist_family(tmp_path, "MNIST", 12, 10, seed=5)
    m = dm(tmp_path, id_dataset="fashionmnist", ood_datasets=["mnist", "uniform_noise", "constant", "black"],
           binarize="dynamic")
    sets = m.test_sets()
    assert [(s.name, s.group, len(s.dataset)) for s in sets] == [
        ("fashionmnist", "id", 8), ("mnist", "far", 8), ("uniform_noise", "far", 8), ("constant", "far", 8),
        ("black", "far", 8)]
    noise_x, noise_y, _ = _all(sets[2].dataset)
    assert noise_x.shape == (8, 1, 28, 28) and (noise_y == -1).all()
    assert set(noise_x.unique().tolist()) <= {0.0, 1.0}          # binarized (static) like every eval set
    assert float(_all(sets[4].dataset)[0].abs().sum()) == 0.0      # black stays black
    again = dm(tmp_path, id_dataset="fashionmnist", ood_datasets=["uniform_noise"], binarize="dynamic")
    assert torch.equal(_all(again.test_sets()[1].dataset)[0], noise_x)  # seeded: the same images every time
    colour = dm(tmp_path, id_dataset="fashionmnist", ood_datasets=["gaussian_noise"], channels=3, image_size=32)
    assert _all(colour.test_sets()[1].dataset)[0].shape == (8, 3, 32, 32)


def test_a_set_depends_only_on_seed_and_name_not_on_the_requested_list(tmp_path):
    """A subset of the OOD sets in another order gives each set (real or synthetic) the same capped subset,
    pixels, binarization draws and indices as the full list, while the cap is unchanged (issue 17, bug 1)."""
    write_mnist_family(tmp_path, "FashionMNIST", 20, 8)
    write_mnist_family(tmp_path, "MNIST", 12, 10, seed=5)
    write_mnist_family(tmp_path, "KMNIST", 12, 12, seed=9)
    kw = dict(id_dataset="fashionmnist", binarize="dynamic", seed=4)
    full = {s.name: _all(s.dataset) for s in dm(tmp_path, ood_datasets=["mnist", "kmnist", "uniform_noise",
                                                                          "blank", "constant"], **kw).test_sets()}
    part = {s.name: _all(s.dataset) for s in dm(tmp_path, ood_datasets=["constant", "kmnist", "uniform_noise"],
                                                 **kw).test_sets()}
    assert list(part) == ["fashionmnist", "constant", "kmnist", "uniform_noise"]
    for name, (x, y, index) in part.items():
        assert len(x) == 8 and torch.equal(x, full[name][0]) and torch.equal(y, full[name][1]), name
        assert index == full[name][2] == list(range(8)), name

"""Classifier backbones (shapes, the 32×32 ResNet stem, WRN-40-2's size), loading weights from the released
Heatmap-OOD / FlowCon format, the batched crop + flip augmentation, and clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genood.models.classifier import Classifier, ClassifierNet, load_classifier_state
from genood.models.classifier.torch_model import crop_flip

pytestmark = pytest.mark.usefixtures("one_thread")


def test_digits_cnn_and_resnet18_features():
    net = ClassifierNet("digits_cnn", 10, 1).eval()
    x = torch.rand(3, 1, 8, 8)
    pen, last = net.embed(x)
    assert pen.shape == (3, 64) and torch.equal(pen, last)
    torch.testing.assert_close(net(x), net.head(pen))

    r = ClassifierNet("resnet18", 10, 3).eval()
    conv1 = r.backbone.net.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1) and isinstance(r.backbone.net.maxpool, torch.nn.Identity)
    with torch.no_grad():
        pen, last = r.embed(torch.rand(2, 3, 32, 32))
    assert pen.shape == (2, 512) and torch.equal(pen, last)


def test_wrn40_2_size_and_pre_activation_features():
    net = ClassifierNet("wrn40_2", 10, 3).eval()
    body = net.backbone
    n_params = sum(p.numel() for p in body.parameters()) + sum(p.numel() for p in net.head.parameters())
    assert 2.2e6 < n_params < 2.3e6  # WRN-40-2: 2.2M parameters (Zagoruyko & Komodakis 2016, Table 1)
    assert len(body.layer1) == len(body.layer2) == len(body.layer3) == 6  # (40 - 4) / 6 blocks per stage
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        pen, last = net.embed(x)
        h = body.layer3(body.layer2(body.layer1(body.conv1((x - 0.5) / 0.5))))
    assert pen.shape == last.shape == (2, 128)
    torch.testing.assert_close(last, h.mean(dim=(2, 3)))                    # before the final BN-ReLU
    torch.testing.assert_close(pen, F.relu(body.bn1(h)).mean(dim=(2, 3)))   # after it: what the head reads


@pytest.mark.parametrize("backbone,channels,size", [("resnet18", 3, 32), ("wrn40_2", 3, 32)])
def test_loads_the_released_classifier_format(tmp_path, backbone, channels, size):
    """Heatmap-OOD / FlowCon save {"net_state_dict": encoder, "cls_state_dict": {"linear.*"}}; the ResNet-18
    encoder uses kuangliu's names (``layerK.0.shortcut.{0,1}``, no ``net.`` prefix)."""
    torch.manual_seed(0)
    src = ClassifierNet(backbone, 10, channels).eval()
    enc = {}
    for k, v in src.backbone.state_dict().items():
        if backbone == "resnet18":
            k = k.removeprefix("net.").replace(".downsample.", ".shortcut.")
        enc[k] = v
    if backbone == "resnet18":
        assert "layer2.0.shortcut.0.weight" in enc and "conv1.weight" in enc
    else:
        assert "layer2.0.shortcut.0.bias" in enc and "bn1.running_var" in enc
    path = tmp_path / "released.pt"
    torch.save({"net_state_dict": enc, "cls_state_dict": {"linear.weight": src.head.weight,
                                                          "linear.bias": src.head.bias}}, path)
    torch.manual_seed(1)
    dst = ClassifierNet(backbone, 10, channels).eval()
    load_classifier_state(dst, path)
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x))


def test_mismatched_or_missing_weights_are_clear_errors(tmp_path):
    net = ClassifierNet("digits_cnn", 10, 1)
    torch.save(ClassifierNet("digits_cnn", 5, 1).state_dict(), tmp_path / "five.pt")
    with pytest.raises(RuntimeError, match="does not match backbone='digits_cnn' with 10 classes"):
        load_classifier_state(net, tmp_path / "five.pt")
    with pytest.raises(FileNotFoundError, match="configs/classifier"):
        load_classifier_state(net, tmp_path / "nothing.ckpt")
    with pytest.raises(ValueError, match="unknown classifier backbone"):
        ClassifierNet("vgg", 10, 3)
    with pytest.raises(ValueError, match="class labels must lie in"):
        Classifier(input_shape=(1, 8, 8), num_classes=10).loss({"x": torch.rand(2, 1, 8, 8), "y": torch.tensor([3, -1])})


def test_crop_flip_is_a_padded_crop_or_its_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 6, 6, generator=g)
    out = crop_flip(x, padding=2, generator=g)
    assert out.shape == x.shape
    padded = F.pad(x, (2, 2, 2, 2))
    flips = 0
    for i in range(16):  # brute force: some offset (and maybe a flip) reproduces each image exactly
        found = [(t, l, f) for t in range(5) for l in range(5) for f in (False, True)
                 if torch.equal(out[i], (lambda c: c.flip(-1) if f else c)(padded[i, :, t:t + 6, l:l + 6]))]
        assert found, i
        flips += all(f for _, _, f in found)
    assert 0 < flips < 16

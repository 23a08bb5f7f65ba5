"""The reconstruction-error family: distances per attempt (MSE, 1 - SSIM, LPIPS from files), median / mean."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genood.evaluation.metrics import ood_metrics
from genood.scoring.reconstruction import (LPIPSDistance, ReconstructionScorer, aggregate, mse_distance,
                                           reduce_to_distances, ssim_distance)


def test_mse_per_attempt_matches_a_loop_and_checks_shapes():
    g = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(4, 2, 5, 5, generator=g), torch.rand(4, 3, 2, 5, 5, generator=g)
    d = mse_distance(x, x_hat)
    for i in range(4):
        for j in range(3):
            assert d[i, j].item() == pytest.approx(((x[i] - x_hat[i, j]) ** 2).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"x_hat must have shape \[N, r"):
        mse_distance(x, x_hat[:, 0])


def _ssim_by_hand(a: np.ndarray, b: np.ndarray, win: int = 7, data_range: float = 1.0) -> float:
    """Wang et al. 2004 Eq. 13 with a uniform win x win window over every window position fully inside the
    image (population statistics), averaged over positions and channels."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    vals = []
    for c in range(a.shape[0]):
        for i in range(a.shape[1] - win + 1):
            for j in range(a.shape[2] - win + 1):
                p, q = a[c, i:i + win, j:j + win], b[c, i:i + win, j:j + win]
                mp, mq = p.mean(), q.mean()
                vp, vq, cov = p.var(), q.var(), ((p - mp) * (q - mq)).mean()
                vals.append(((2 * mp * mq + c1) * (2 * cov + c2)) / ((mp ** 2 + mq ** 2 + c1) * (vp + vq + c2)))
    return float(np.mean(vals))


def test_one_minus_ssim_matches_the_formula_with_the_released_window():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 8, 8, generator=g)
    x_hat = (x.unsqueeze(1) + 0.2 * torch.randn(2, 2, 1, 8, 8, generator=g)).clamp(0, 1)
    d = ssim_distance(x, x_hat)
    assert d.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            ref = 1 - _ssim_by_hand(x[i].double().numpy(), x_hat[i, j].double().numpy())
            assert d[i, j].item() == pytest.approx(ref, abs=1e-5)
    assert torch.allclose(ssim_distance(x, x.unsqueeze(1)), torch.zeros(2, 1), atol=1e-6)


def test_median_matches_numpy_and_r1_is_the_value():
    g = torch.Generator().manual_seed(2)
    for r in (1, 4, 5, 10):
        d = torch.rand(7, r, generator=g)
        np.testing.assert_allclose(aggregate(d, "median").numpy(), np.median(d.numpy(), axis=1), rtol=1e-6)
        np.testing.assert_allclose(aggregate(d, "mean").numpy(), d.numpy().mean(1), rtol=1e-6)
    d1 = torch.rand(6, 1, generator=g)
    assert torch.equal(aggregate(d1, "median"), d1[:, 0])
    with pytest.raises(ValueError, match="aggregate"):
        aggregate(d1, "max")


def test_scorer_reads_precomputed_distances_or_computes_them():
    g = torch.Generator().manual_seed(3)
    x, x_hat = torch.rand(5, 1, 8, 8, generator=g), torch.rand(5, 3, 1, 8, 8, generator=g)
    s = ReconstructionScorer("recon_mse", "mse", aggregate="median")
    direct = s.score({"x": x, "x_hat": x_hat})
    reduced = reduce_to_distances([s], {"x": x, "x_hat": x_hat, "other": torch.ones(5)})
    assert set(reduced) == {"recon_mse_distances", "other"}            # the reconstructions are dropped
    torch.testing.assert_close(s.score(reduced), direct)
    torch.testing.assert_close(direct, torch.from_numpy(np.median(mse_distance(x, x_hat).numpy(), 1)))
    one = ReconstructionScorer("r1", "mse", aggregate="mean", distance_key="r1_mse")
    v = torch.rand(5, generator=g)
    assert torch.equal(one.score({"r1_mse": v}), v)                    # a [N] distance is one attempt
    with pytest.raises(ValueError, match="needs the model outputs 'x'"):
        s.score({"log_prob": torch.zeros(5)})
    with pytest.raises(ValueError, match="distance 'lpips' needs distance_fn"):
        ReconstructionScorer("lpips", "lpips")


def test_identity_reconstructions_give_zero_distances_and_auroc_one_half():
    """The identity 'inpainter' (x_hat = x): every distance is 0, so ID and OOD tie (AUROC 0.5)."""
    g = torch.Generator().manual_seed(4)
    id_x, ood_x = torch.rand(20, 1, 8, 8, generator=g), torch.rand(30, 1, 8, 8, generator=g)
    for dist in ("mse", "ssim"):
        for r in (1, 10):
            s = ReconstructionScorer(f"lmd_{dist}", dist)
            sid = s.score({"x": id_x, "x_hat": id_x.unsqueeze(1).repeat(1, r, 1, 1, 1)})
            sood = s.score({"x": ood_x, "x_hat": ood_x.unsqueeze(1).repeat(1, r, 1, 1, 1)})
            assert sid.abs().max() < 1e-6 and sood.abs().max() < 1e-6
            assert ood_metrics(sid.round(decimals=5).numpy(), sood.round(decimals=5).numpy())["auroc"] == 0.5


# ---- LPIPS from files ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    """Weights in the real on-disk formats, written here: torchvision's AlexNet state dict (every key of
    torchvision.models.alexnet(); the classifier tensors are stride-0 views of one number, so the file stays
    small) and lpips' v0.1 linear-head file (lin{l}.model.1.weight, non-negative as trained heads are)."""
    import torchvision

    d = tmp_path_factory.mktemp("lpips")
    torch.manual_seed(0)
    net = torchvision.models.alexnet(weights=None)
    sd = {k: (v.clone() if k.startswith("features.") else torch.zeros(1).expand(v.shape))
          for k, v in net.state_dict().items()}
    torch.save(sd, d / "alexnet-owt-7be5be79.pth")
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(heads, d / "alex.pth")
    return d / "alexnet-owt-7be5be79.pth", d / "alex.pth", sd, heads


def _lpips_by_hand(x, y, sd, heads):
    """LPIPS v0.1 (Zhang et al. 2018 Eq. 1, the lpips package's steps): inputs in [-1, 1], ScalingLayer,
    AlexNet ReLU outputs 1..5, unit-normalise channels, squared difference, 1x1 head, spatial mean, sum."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    convs = [(0, 4, 2, True), (3, 1, 2, True), (6, 1, 1, False), (8, 1, 1, False), (10, 1, 1, False)]

    def feats(v):
        h, out = (v - shift) / scale, []
        for k, (i, stride, pad, pool_before_next) in enumerate(convs):
            h = F.relu(F.conv2d(h, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], stride=stride, padding=pad))
            out.append(h)
            if pool_before_next:
                h = F.max_pool2d(h, 3, 2)
        return out

    total = 0
    for k, (a, b) in enumerate(zip(feats(x), feats(y))):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + F.conv2d((a - b) ** 2, heads[f"lin{k}.model.1.weight"]).mean((2, 3))
    return total.view(-1)


def test_lpips_loads_weights_from_files_and_matches_the_formula(lpips_files):
    backbone, head_file, sd, heads = lpips_files
    lp = LPIPSDistance(str(backbone), str(head_file), input_range=(0.0, 1.0))
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 3, 32, 32, generator=g)
    x_hat = (x.unsqueeze(1) + 0.1 * torch.randn(3, 2, 3, 32, 32, generator=g)).clamp(0, 1)
    d = lp(x, x_hat)
    assert d.shape == (3, 2) and (d > 0).all()
    for j in range(2):
        ref = _lpips_by_hand(x * 2 - 1, x_hat[:, j] * 2 - 1, sd, heads)
        torch.testing.assert_close(d[:, j], ref, rtol=1e-4, atol=1e-6)
    assert lp(x, x.unsqueeze(1)).abs().max() < 1e-6                     # the identity has distance 0
    grey = x[:, :1]                                                      # grey images are tiled to 3 channels
    torch.testing.assert_close(lp(grey, grey.unsqueeze(1) * 0.5), lp(grey.expand(-1, 3, -1, -1),
                                                                    grey.expand(-1, 3, -1, -1).unsqueeze(1) * 0.5))
    s = ReconstructionScorer("lmd_lpips", "lpips", distance_fn=lp)
    torch.testing.assert_close(s.score({"x": x, "x_hat": x_hat}), torch.from_numpy(np.median(d.numpy(), 1)))


def test_lpips_default_heads_are_lpips_v01_and_errors_are_clear(lpips_files, tmp_path):
    backbone, head_file, _, _ = lpips_files
    LPIPSDistance(str(backbone))                                         # heads: the copy torchmetrics ships
    with pytest.raises(ValueError, match="AlexNet backbone weights from a file.*lpips_backbone"):
        LPIPSDistance(None)
    with pytest.raises(FileNotFoundError, match="do not exist.*IMAGENET1K_V1"):
        LPIPSDistance(str(tmp_path / "nothing.pth"))
    with pytest.raises(RuntimeError, match="not a torchvision AlexNet state dict"):
        LPIPSDistance(str(head_file))                                    # the head file passed as backbone
    with pytest.raises(RuntimeError, match="do not match lpips' v0.1 AlexNet head file"):
        LPIPSDistance(str(backbone), str(backbone))
    lp = LPIPSDistance(str(backbone), str(head_file))
    with pytest.raises(ValueError, match="at least 32x32"):
        lp(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 1, 8, 8))

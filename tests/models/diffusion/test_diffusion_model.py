"""ImageDiffusion: EMA, pretrained UNets from disk, input checks, and a short digits training that separates
ID digits from uniform noise by LMD's inpainting error."""

import pytest
import torch

from genood.models.diffusion import ImageDiffusion
from genood.models.diffusion.torch_model import load_unet

pytestmark = pytest.mark.usefixtures("one_thread")


def _small(**kw):
    return ImageDiffusion(**{**dict(input_shape=(1, 8, 8), unet="small", steps=3, attempts=2), **kw})


def test_ema_follows_the_released_decay_schedule():
    torch.manual_seed(0)
    m = _small(ema_decay=0.9)
    p0 = next(m.net.parameters())
    ref = p0.detach().clone()
    for n in range(1, 31):
        with torch.no_grad():
            p0.add_(torch.randn_like(p0))
        decay = m.update_ema()
        expected = min(0.9, (1 + n) / (10 + n))
        assert decay == pytest.approx(expected)
        ref = expected * ref + (1 - expected) * p0.detach()
    torch.testing.assert_close(next(m.ema_net.parameters()), ref, rtol=1e-5, atol=1e-6)
    assert int(m.ema_updates) == 30


def test_pretrained_unet_from_a_checkpoint_a_state_dict_and_a_diffusers_folder(tmp_path):
    torch.manual_seed(1)
    src = _small()
    with torch.no_grad():
        for p in src.ema_net.parameters():
            p.add_(0.5)                                     # EMA weights differ from the raw ones
    torch.save({"state_dict": src.state_dict()}, tmp_path / "run.ckpt")
    torch.save(src.net.state_dict(), tmp_path / "unet.pt")
    src.net.save_pretrained(tmp_path / "folder")
    want_ema, want_net = src.ema_net.state_dict(), src.net.state_dict()
    for path, want in (("run.ckpt", want_ema), ("unet.pt", want_net), ("folder", want_net)):
        m = _small(pretrained=str(tmp_path / path))
        for k, v in want.items():
            assert torch.equal(m.net.state_dict()[k], v) and torch.equal(m.ema_net.state_dict()[k], v), (path, k)
    with pytest.raises(RuntimeError, match="does not match the UNet built from unet"):
        load_unet(str(tmp_path / "unet.pt"), (1, 8, 8), {"preset": "small", "block_out_channels": (16, 32)})
    with pytest.raises(ValueError, match="takes 1x8x8 images, but the data are 3x8x8"):
        load_unet(str(tmp_path / "folder"), (3, 8, 8))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_unet(str(tmp_path / "missing.ckpt"), (1, 8, 8))


def test_bad_inputs_and_options_are_clear_errors():
    m = _small()
    with pytest.raises(ValueError, match="built for inputs of shape"):
        m.score_outputs(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"images in \[0, 1\]"):
        m.loss({"x": torch.rand(2, 1, 8, 8) * 2})
    with pytest.raises(ValueError, match="divisible by mask_blocks"):
        _small(mask_blocks=3)
    with pytest.raises(ValueError, match="AlexNet backbone weights from a file"):
        _small(distances=["lpips", "mse"])
    with pytest.raises(ValueError, match="square images"):
        ImageDiffusion(input_shape=(1, 8, 6), unet="small")
    assert [s.name for s in _small().scorers()] == ["lmd_mse", "lmd_ssim"]


def test_short_digits_training_separates_id_digits_from_uniform_noise():
    """After 100 steps on the 8x8 digits, ID test digits inpaint much closer than uniform noise (an untrained
    network gives AUROC about 0.5)."""
    from genood.data.digits import DigitsDataModule
    from genood.evaluation.metrics import ood_metrics

    torch.manual_seed(0)
    dm = DigitsDataModule(held_out_classes=[8, 9], ood_sets=["uniform_noise"], batch_size=32, ood_size=100)
    dm.setup()
    m = _small(lr=2e-3, warmup_steps=20, ema_decay=0.99, random_flip=False, steps=10, attempts=2)
    opt = torch.optim.Adam(m.net.parameters(), lr=2e-3)
    m.train()
    for step, batch in enumerate(_cycle(dm.train_dataloader(), 100)):
        for group in opt.param_groups:
            group["lr"] = 2e-3 * min(1.0, (step + 1) / 20)
        opt.zero_grad()
        m.loss(batch).backward()
        torch.nn.utils.clip_grad_norm_(m.net.parameters(), 1.0)
        opt.step()
        m.update_ema()
    m.eval()
    sets = {s.name: s.dataset for s in dm.test_sets()}
    scores = {}
    with torch.inference_mode():
        for name in ("digits", "uniform_noise"):
            x = torch.stack([sets[name][i]["x"] for i in range(100)])
            out = m.test_step({"x": x, "index": torch.arange(100)}, 0)
            scores[name] = {s.name: s.score(out).numpy() for s in m.scorers()}
    for scorer in ("lmd_mse", "lmd_ssim"):
        auroc = ood_metrics(scores["digits"][scorer], scores["uniform_noise"][scorer])["auroc"]
        assert auroc > 0.9, (scorer, auroc)


def _cycle(loader, n):
    k = 0
    while True:
        for batch in loader:
            if k == n:
                return
            yield batch
            k += 1


@pytest.mark.gpu
def test_cuda_inpainting_matches_cpu_and_trains():
    torch.manual_seed(0)
    m = _small(steps=3, attempts=3).eval()
    x, idx = torch.rand(4, 1, 8, 8), torch.arange(4)
    with torch.inference_mode():
        cpu = m.inpaint(x, idx)
        m.cuda()
        gpu = m.inpaint(x.cuda(), idx.cuda())
        out = m.test_step({"x": x.cuda(), "index": idx.cuda()}, 0)
    assert gpu.device.type == "cuda" and out["lmd_mse_distances"].device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)  # counter noise is the same on every device
    m.train()
    loss = m.loss({"x": x.cuda()})
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in m.net.parameters() if p.requires_grad)

"""MSMA under a Lightning Trainer: trains (images and vectors), reloads from a checkpoint, augments only in
training, validates deterministically; the CUDA path (gpu marker)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from genood.data.digits import DigitsDataModule
from genood.data.tabular import TabularDataModule
from genood.models.msma import MSMA

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_UNET = dict(network="unet", channels=(8, 16), layers_per_block=1, mid_attention=False)


def _trainer(epochs: int) -> L.Trainer:
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)


def test_digits_fit_and_reload(tmp_path):
    L.seed_everything(0)
    dm = DigitsDataModule(held_out_classes=[8, 9], batch_size=128, ood_sets=["uniform_noise"])
    model = MSMA(input_shape=dm.input_shape, num_levels=4, **TINY_UNET)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _trainer(2)
    trainer.fit(model, datamodule=dm)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    again = MSMA.load_from_checkpoint(path).eval()
    model.eval()
    x = torch.stack([dm.test_sets()[0].dataset[i]["x"] for i in range(5)])
    with torch.inference_mode():
        torch.testing.assert_close(again.score_outputs(x)["score_norms"], model.score_outputs(x)["score_norms"])


def test_mlp_learns_on_wdbc():
    """A few hundred DSM steps on standardised WDBC rows lower the (deterministic) validation loss well below
    that of the zero score, ½ E‖ε‖² = d/2 (an untrained network sits near it)."""
    L.seed_everything(0)
    dm = TabularDataModule("wdbc", batch_size=64)
    dm.setup()
    model = MSMA(input_shape=dm.input_shape, channels=(64, 64), lr=3e-3)
    batch = next(iter(dm.val_dataloader()))
    model.eval()
    with torch.no_grad():
        start = model.loss(batch).item()
    model.train()
    _trainer(100).fit(model, datamodule=dm)
    model.eval()
    with torch.no_grad():
        end = model.loss(batch).item()
    d = dm.input_shape[0]
    assert start > 0.9 * d / 2 and end < 0.8 * d / 2


def test_flips_only_in_training_and_per_example():
    torch.manual_seed(0)
    model = MSMA(input_shape=(1, 8, 8), hflip=True, **TINY_UNET)
    x = torch.rand(64, 1, 8, 8)
    out = model._augment(x)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped | kept).all()) and 10 < int(flipped.sum()) < 54
    seen = []
    model._augment = lambda v: seen.append(True) or v  # noqa: E731
    batch = {"x": x, "index": torch.arange(64)}
    model.eval()
    with torch.no_grad():
        model.loss(batch)
    assert not seen
    model.train()
    model.loss(batch)
    assert seen == [True]


def test_validation_draws_are_keyed_by_index():
    """Validation level and noise come from each example's index: the loss does not depend on the batch."""
    torch.manual_seed(0)
    model = MSMA(input_shape=(5,), channels=(16,)).eval()
    x, idx = torch.randn(12, 5), torch.arange(100, 112)
    with torch.no_grad():
        whole = model.loss({"x": x, "index": idx}).item()
        perm = torch.randperm(12)
        shuffled = model.loss({"x": x[perm], "index": idx[perm]}).item()
        halves = 0.5 * (model.loss({"x": x[:6], "index": idx[:6]}) + model.loss({"x": x[6:], "index": idx[6:]})).item()
        other = model.loss({"x": x, "index": idx + 1}).item()
    assert shuffled == pytest.approx(whole, rel=1e-6) and halves == pytest.approx(whole, rel=1e-6)
    assert other != pytest.approx(whole, rel=1e-3)
    level, _ = model._val_draws(x, torch.arange(5000))
    counts = torch.bincount(level, minlength=10)
    assert counts.min() > 400  # every level drawn, roughly uniformly


@pytest.mark.gpu
def test_cuda_training_step_and_scoring():
    model = MSMA(input_shape=(3, 16, 16), channels=(32, 64), layers_per_block=1).cuda()
    x = torch.rand(8, 3, 16, 16, device="cuda")
    loss = model.loss({"x": x, "index": torch.arange(8, device="cuda")})
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    with torch.inference_mode():
        n = model.score_outputs(x)["score_norms"]
    assert n.device.type == "cuda" and n.shape == (8, 10) and torch.isfinite(n).all()
    cpu = MSMA(input_shape=(3, 16, 16), channels=(32, 64), layers_per_block=1)
    cpu.load_state_dict(model.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(cpu.eval().score_outputs(x.cpu())["score_norms"], n.cpu(), rtol=1e-3, atol=1e-3)

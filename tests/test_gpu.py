"""The CUDA path (``@pytest.mark.gpu``: skipped where torch sees no CUDA device, run on a GPU machine).

A training step of HVAE, DTE and the tabular DDPM on CUDA; HVAE and DDPM scoring with counter-based noise on
CUDA equal to CPU scoring (the noise is a function of the sample index, computed on the tensors' device);
the gather on CUDA tensors; a run resumed from last.ckpt on the GPU equal to an uninterrupted one, which
needs the CUDA RNG state in the checkpoint (DTE draws its t and ε on the GPU).
"""

from __future__ import annotations

import pytest
import torch

from conftest import REPO, run_folders

pytestmark = pytest.mark.gpu

HVAE_STAGES = [{"channels": 8, "blocks": 1, "stride": 2, "latent": "conv", "latent_features": 2},
               {"channels": 8, "blocks": 1, "stride": 2, "latent": "dense", "latent_features": 6},
               {"channels": 8, "blocks": 1, "stride": 1, "latent": "dense", "latent_features": 4}]
GPU_FLAGS = ["--trainer.accelerator=gpu", "--trainer.devices=1", "--trainer.enable_progress_bar=false",
             "--trainer.enable_model_summary=false", "--evaluation.print_table=false", "--evaluation.plots=false"]


def _train_step(model, batch: dict) -> torch.Tensor:
    model = model.cuda().train()
    opt = model.configure_optimizers()
    opt = opt[0] if isinstance(opt, (list, tuple)) else opt
    before = [p.detach().clone() for p in model.parameters()]
    loss = model.loss({k: v.cuda() for k, v in batch.items()})
    loss.backward()
    opt.step()
    assert loss.is_cuda and torch.isfinite(loss)
    assert all(p.is_cuda for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the step moved the weights
    return loss


def test_hvae_dte_and_ddpm_training_steps_on_cuda():
    from genood.models.dte import DTE, TabularDDPM
    from genood.models.hvae import HVAE

    torch.manual_seed(0)
    x_img = torch.bernoulli(torch.rand(16, 1, 8, 8))
    _train_step(HVAE((1, 8, 8), stages=HVAE_STAGES, warmup_epochs=2, free_nats=2.0), {"x": x_img})
    x_vec = torch.randn(32, 10)
    _train_step(DTE(input_shape=(10,), hidden_sizes=(32, 32)), {"x": x_vec})
    _train_step(DTE(input_shape=(10,), hidden_sizes=(32, 32), c_loss="logits"), {"x": x_vec})
    _train_step(TabularDDPM(input_shape=(10,), d_main=32, d_hidden=64), {"x": x_vec})


def test_hvae_scoring_with_counter_noise_on_cuda_equals_cpu():
    from genood.models.hvae import HVAE

    torch.manual_seed(0)
    model = HVAE((1, 8, 8), stages=HVAE_STAGES, skip_k=[1, 2], score_samples=8).eval()
    x, index = torch.bernoulli(torch.rand(20, 1, 8, 8)), torch.arange(100, 120)
    with torch.inference_mode():
        cpu = model.score_outputs(x, index=index)
        model.cuda()
        gpu = model.score_outputs(x.cuda(), index=index.cuda())
    assert set(cpu) == set(gpu)
    for key in cpu:
        assert gpu[key].is_cuda
        torch.testing.assert_close(gpu[key].cpu(), cpu[key], rtol=1e-4, atol=1e-3)


def test_ddpm_scoring_with_counter_noise_on_cuda_equals_cpu():
    from genood.models.dte import TabularDDPM

    torch.manual_seed(0)
    model = TabularDDPM(input_shape=(6,), recon_t=30).eval()
    x, index = torch.randn(12, 6), torch.arange(12)
    with torch.inference_mode():
        cpu = model.score_outputs(x, index)["ddpm_recon_mse"]
        model.cuda()
        gpu = model.score_outputs(x.cuda(), index.cuda())["ddpm_recon_mse"]
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-6)


def test_gather_on_cuda_tensors():
    from genood.evaluation.gather import gather_unique

    index = torch.tensor([4, 0, 2, 0, 1, 3, 4], device="cuda")
    out = {"s": index.double() * 10, "v": torch.stack([index, -index], 1), "b": index % 2 == 0}
    idx, got = gather_unique(index, out)
    assert idx.is_cuda and idx.tolist() == [0, 1, 2, 3, 4]
    assert got["s"].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0] and got["v"][:, 1].tolist() == [0, -1, -2, -3, -4]
    assert got["b"].tolist() == [True, False, True, False, True]


def test_checkpoint_carries_the_cuda_rng_state_and_resume_is_exact(tmp_path):
    from genood.train import main

    config = ["--config", str(REPO / "configs/dte/wdbc.yaml"), *GPU_FLAGS, "--model.init_args.lr=1e-3",
              "--model.init_args.hidden_sizes=[32,32]", "--trainer.check_val_every_n_epoch=1"]
    full = main([*config, f"--output_root={tmp_path / 'full'}", "--trainer.max_epochs=4"])
    main([*config, f"--output_root={tmp_path / 'part'}", "--trainer.max_epochs=2"])
    (part,) = run_folders(tmp_path / "part", "dte_wdbc")
    saved = torch.load(part / "last.ckpt", map_location="cpu", weights_only=False)
    assert "cuda" in saved["genood_rng"] and saved["genood_rng"]["cuda"].dtype == torch.uint8
    resumed = main([*config, f"--output_root={tmp_path / 'part'}", "--trainer.max_epochs=4",
                    f"--ckpt_path={part / 'last.ckpt'}"])
    (full_run,) = run_folders(tmp_path / "full", "dte_wdbc")
    resumed_run = run_folders(tmp_path / "part", "dte_wdbc")[-1]
    a = torch.load(full_run / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(resumed_run / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    assert [(r["scorer"], r["ood_set"]) for r in full] == [(r["scorer"], r["ood_set"]) for r in resumed]
    for x, y in zip(full, resumed):
        assert x["auroc"] == pytest.approx(y["auroc"], abs=1e-6), x["scorer"]

"""FlowCon's CUDA path (skipped without a CUDA device): both training phases step on the GPU with the CIFAR
backbones and augmentation, and scoring on CUDA matches the CPU per sample."""

from __future__ import annotations

import pytest
import torch

from genood.models.flowcon import FlowCon

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("backbone,dim", [("resnet18", 512), ("wrn40_2", 128)])
def test_cuda_training_steps_and_scoring(backbone, dim):
    torch.manual_seed(0)
    model = FlowCon(input_shape=(3, 32, 32), backbone=backbone, classifier_epochs=1, augment="crop_flip").cuda()
    assert model.dim == dim
    batch = {"x": torch.rand(16, 3, 32, 32, device="cuda"), "y": torch.arange(16, device="cuda") % 10,
             "index": torch.arange(16, device="cuda")}
    model.train()
    for phase_epoch in (0, 1):  # classifier phase, then flow phase
        model.flow_start_epoch = 1 - phase_epoch  # current_epoch is 0 without a trainer
        params = model.classifier.parameters() if phase_epoch == 0 else model.flow.parameters()
        opt = torch.optim.SGD(params, lr=1e-3)
        loss = model.loss(batch)
        assert loss.is_cuda and torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.inference_mode():
        gpu = model.score_outputs(batch["x"])
        cpu = model.cpu().score_outputs(batch["x"].cpu())
    for k in ("flow_log_p", "flow_logdet", "logits"):
        torch.testing.assert_close(gpu[k].cpu(), cpu[k], rtol=1e-3, atol=1e-3)

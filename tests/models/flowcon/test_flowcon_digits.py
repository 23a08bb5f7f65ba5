"""FlowCon end to end on the embedded digits (one command: classifier phase, then the frozen-backbone flow
phase): one table with the backbone's baselines; class-conditional accuracy close to the backbone's; a
sample's score independent of its batch, of shuffling and of 2-process DDP (training under DDP too); the
backbone really frozen in the flow phase."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
import torch

from conftest import REPO, run_folders
from genood.data.digits import DigitsDataModule
from genood.models.flowcon import FlowCon, FlowConClassScorer
from genood.scoring.base import LABELS_KEY

FLAGS = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
         "--evaluation.print_table=false", "--evaluation.plots=false"]
SETS = "--data.init_args.ood_sets=[black,uniform_noise,flipped]"
SCORERS = {"flowcon", "flowcon_class", "flowcon_full", "msp", "energy", "mahalanobis", "knn_feature"}


@pytest.fixture(scope="module")
def flowcon_run(tmp_path_factory):
    """configs/flowcon/digits.yaml shortened: 10 classifier epochs + 8 flow epochs (lr 1e-3, as the config)."""
    from genood.train import main

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("flowcon")
    rows = main(["--config", str(REPO / "configs/flowcon/digits.yaml"), f"--output_root={root}", *FLAGS, SETS,
                 "--model.init_args.classifier_epochs=10", "--trainer.max_epochs=18"])
    (run,) = run_folders(root, "flowcon_digits")
    return run, rows


def _outputs(model, dataset):
    x = torch.stack([dataset[i]["x"] for i in range(len(dataset))])
    y = torch.tensor([dataset[i]["y"] for i in range(len(dataset))])
    with torch.inference_mode():
        return model.score_outputs(x), y


def test_one_run_gives_flowcon_beside_the_backbone_baselines(flowcon_run):
    _, rows = flowcon_run
    assert {r["scorer"] for r in rows} == SCORERS
    by = {(r["scorer"], r["ood_set"]): r["auroc"] for r in rows}
    assert by[("flowcon", "black")] > 0.9 and by[("mahalanobis", "black")] > 0.9


def test_class_conditional_accuracy_is_within_5_points_of_the_backbone(flowcon_run):
    run, _ = flowcon_run
    model = FlowCon.load_from_checkpoint(run / "last.ckpt", map_location="cpu").eval()
    dm = DigitsDataModule(seed=0)
    dm.setup()
    fit, fit_y = _outputs(model, dm.fit_set)
    test, test_y = _outputs(model, dm.eval_sets[0].dataset)
    scorer = FlowConClassScorer()
    scorer.fit({**fit, LABELS_KEY: fit_y})
    acc_backbone = (test["logits"].argmax(1) == test_y).float().mean().item()
    acc_flow = (scorer.predict(test) == test_y).float().mean().item()
    assert acc_backbone > 0.9
    assert abs(acc_flow - acc_backbone) <= 0.05, (acc_flow, acc_backbone)


def test_score_is_independent_of_batch_and_order(flowcon_run):
    run, _ = flowcon_run
    model = FlowCon.load_from_checkpoint(run / "last.ckpt", map_location="cpu").eval()
    dm = DigitsDataModule(seed=0)
    dm.setup()
    ds = dm.eval_sets[0].dataset
    x = torch.stack([ds[i]["x"] for i in range(48)])
    perm = torch.randperm(48, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        batch = model.score_outputs(x)["flow_log_p"]
        shuffled = model.score_outputs(x[perm])["flow_log_p"]
        alone = torch.cat([model.score_outputs(x[i:i + 1])["flow_log_p"] for i in range(0, 48, 7)])
    torch.testing.assert_close(shuffled, batch[perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alone, batch[::7], rtol=1e-5, atol=1e-5)
    # and the evaluator's per-sample scores are these, negated (flowcon = −bits/dim)
    saved = np.load(run / "scores.npz")
    np.testing.assert_allclose(saved["score/flowcon/digits"][:48], -batch.double().numpy(), rtol=1e-5, atol=1e-6)


def test_ddp_training_and_two_process_scores_equal_one_process(tmp_path):
    """Train under 2-process DDP (gloo; the two phases leave parameters unused, which FlowCon declares to DDP),
    then the DDP run's per-sample scores equal a one-process evaluation of its checkpoint."""
    from genood.evaluate import main as evaluate

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("GENOOD_RUN_DIR", None)
    cmd = [sys.executable, "-m", "genood.train", "--config", str(REPO / "configs/flowcon/digits.yaml"), *FLAGS, SETS,
           "--model.init_args.classifier_epochs=1", "--trainer.max_epochs=2", "--trainer.strategy=ddp",
           "--trainer.devices=2", f"--output_root={tmp_path}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_folders(tmp_path, "flowcon_digits")
    ddp = np.load(run / "scores.npz")
    single_rows = evaluate(["--ckpt_path", str(run / "last.ckpt"), *FLAGS, "--trainer.strategy=auto",
                            "--trainer.devices=1", f"--output_root={tmp_path / 'single'}"])
    assert {r["n_id"] for r in single_rows} == {540}
    (single_run,) = run_folders(tmp_path / "single", "flowcon_digits")
    single = np.load(single_run / "scores.npz")
    for scorer in ("flowcon", "flowcon_class", "flowcon_full", "mahalanobis", "knn_feature"):
        for s in ("digits", "black", "uniform_noise", "flipped"):
            key = f"score/{scorer}/{s}"
            assert ddp[key].shape == single[key].shape  # every sample once, no padded repeats
            np.testing.assert_allclose(ddp[key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)
            np.testing.assert_array_equal(ddp[f"index/{s}"], single[f"index/{s}"])


class _Snapshot(L.Callback):
    def __init__(self, epoch):
        self.epoch, self.state = epoch, None

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            self.state = {k: v.clone() for k, v in pl_module.classifier.state_dict().items()}
            self.flow = {k: v.clone() for k, v in pl_module.flow.state_dict().items()}


def test_backbone_is_frozen_in_the_flow_phase(one_thread):
    L.seed_everything(0)
    dm = DigitsDataModule(batch_size=64, ood_sets=["black"])
    model = FlowCon(input_shape=dm.input_shape, classifier_epochs=1, lr=1e-3)
    init = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    snap = _Snapshot(epoch=1)
    trainer = L.Trainer(max_epochs=3, limit_train_batches=4, limit_val_batches=2, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[snap])
    trainer.fit(model, datamodule=dm)
    assert any(not torch.equal(init[k], v) for k, v in snap.state.items())       # phase 1 trained it
    for k, v in model.classifier.state_dict().items():                          # phase 2 left it alone,
        assert torch.equal(snap.state[k], v), k                                  # BN running stats included
    assert any(not torch.equal(snap.flow[k], v) for k, v in model.flow.state_dict().items())
    assert not model.classifier.training  # eval mode in the flow phase


def test_backbone_checkpoint_skips_the_classifier_phase(tmp_path):
    from genood.models.classifier import ClassifierNet

    net = ClassifierNet("digits_cnn", 10, 1)
    path = tmp_path / "clf.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)  # a Classifier checkpoint
    model = FlowCon(input_shape=(1, 8, 8), backbone_ckpt=str(path))
    assert model.flow_start_epoch == 0 and not model.in_classifier_phase
    for k, v in net.state_dict().items():
        assert torch.equal(model.classifier.state_dict()[k], v)
    with pytest.raises(ValueError, match="needs a trained classifier"):
        FlowCon(input_shape=(1, 8, 8), classifier_epochs=0)

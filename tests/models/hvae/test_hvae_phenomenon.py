"""The paper's phenomenon on embedded data (Havtorn et al. 2021, §4): an HVAE trained on digits gives
low-complexity / partly blank inputs a *higher* ELBO than its own test digits (−ELBO AUROC < 0.5), while
LLR^{>k} = L − L^{>k} detects them (AUROC > 0.9).

The inputs are the digits datamodule's "black" (all-zero images) and "half_masked" (ID test digits with the
right half set to black: every local feature is in-distribution, the semantics are not). The datamodule's own ``blank`` adds N(0, 0.05²) speckle at off-grid grey levels, which the
17-level discretized likelihood already punishes (−ELBO AUROC ≈ 0.99), so it does not show the failure.
Trained once per module (~30-60 s on 2 CPU cores) with the digits config's model at 60 epochs.
"""

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from genood.data.digits import DigitsDataModule
from genood.models.hvae import HVAE

STAGES = [{"channels": 16, "blocks": 1, "kernel_size": 3, "stride": 2, "latent": "conv", "latent_features": 4},
          {"channels": 16, "blocks": 1, "kernel_size": 3, "stride": 2, "latent": "dense", "latent_features": 16},
          {"channels": 16, "blocks": 1, "kernel_size": 3, "stride": 1, "latent": "dense", "latent_features": 8}]


def _stack(dataset) -> torch.Tensor:
    return torch.stack([dataset[i]["x"] for i in range(len(dataset))])


@pytest.fixture(scope="module")
def scored():
    L.seed_everything(0, verbose=False)
    dm = DigitsDataModule(binarize="none", batch_size=32, eval_batch_size=256,
                          ood_sets=["uniform_noise", "black", "half_masked"])
    model = HVAE(dm.input_shape, lr=2e-3, stages=STAGES, likelihood="discretized_logistic_mixture", n_bins=17,
                 warmup_epochs=10, free_nats=8.0, free_nats_constant_epochs=20, free_nats_anneal_epochs=20)
    trainer = L.Trainer(max_epochs=60, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    model.eval()
    sets = {s.name: _stack(s.dataset) for s in dm.test_sets()}
    with torch.inference_mode():
        outs = {name: model.score_outputs(x, index=torch.arange(len(x))) for name, x in sets.items()}
    scores = {name: {s.name: s.score(o).numpy() for s in model.scorers()} for name, o in outs.items()}
    return scores


def _auroc(scores, ood, scorer):
    a, b = scores["digits"][scorer], scores[ood][scorer]
    return roc_auc_score(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b])


@pytest.mark.parametrize("ood, llr_scorers", [("black", ("llr_gt1", "llr_gt2")), ("half_masked", ("llr_gt1",))])
def test_elbo_fails_where_llr_succeeds(scored, ood, llr_scorers):
    """k = 1 (the config's first k) on both sets; on half_masked LLR^{>2} lands near 0.9 (0.89-0.99 over
    seeds at this 60-epoch budget), so it is reported by the default run rather than asserted here."""
    aurocs = {s: _auroc(scored, ood, s) for s in ("neg_elbo", "llr_gt1", "llr_gt2")}
    assert aurocs["neg_elbo"] < 0.5, aurocs      # the likelihood prefers the OOD inputs
    for scorer in llr_scorers:
        assert aurocs[scorer] > 0.9, aurocs


def test_elbo_detects_noise(scored):
    assert _auroc(scored, "uniform_noise", "neg_elbo") > 0.95

"""End to end on the embedded WDBC task (semi protocol): DTE-NP, DTE-C, kNN through the scorer API."""

import pytest
import torch
from sklearn.metrics import roc_auc_score

from genood.data.tabular import TabularDataModule
from genood.models.dte import DTE


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster


def _stack(ds):
    return torch.stack([ds[i]["x"] for i in range(len(ds))])


def _aurocs(model, dm):
    model.eval()
    sets = dm.test_sets()
    with torch.no_grad():
        fit = model.score_outputs(_stack(dm.fit_set))
        outs = [model.score_outputs(_stack(s.dataset)) for s in sets]
    res = {}
    for sc in model.scorers():
        if sc.needs_fit:
            sc.fit(fit)
        s_id, s_ood = sc.score(outs[0]), sc.score(outs[1])
        res[sc.name] = roc_auc_score([0] * len(s_id) + [1] * len(s_ood), torch.cat([s_id, s_ood]).numpy())
    return res


def test_wdbc_semi_dte_np_dte_c_and_knn():
    torch.manual_seed(0)
    dm = TabularDataModule("wdbc", protocol="semi", seed=0)
    dm.setup()
    # the paper recipe with lr 1e-3 instead of 1e-4 and 150 instead of 400 epochs, to fit a CPU test (~5 s)
    model = DTE(input_shape=dm.input_shape, lr=1e-3)
    opt = model.configure_optimizers()
    loader = dm.train_dataloader()
    for epoch in range(150):
        loader.sampler.set_epoch(epoch)
        model.train()
        for batch in loader:
            opt.zero_grad()
            model.loss(batch).backward()
            opt.step()
    r = _aurocs(model, dm)
    assert r["dte_np"] >= 0.85, r                      # faithful (saturating) grid
    assert r["dte_c"] >= 0.85, r
    assert r["dte_np_data"] >= 0.90, r                 # unsaturated grid
    # mean-of-5 vs 5th-neighbour distance differ slightly; the saturated grid loses ~0.04 to kNN here
    assert r["dte_np_data"] >= r["knn"] - 0.01, r
    assert r["dte_np_data"] > r["dte_np"] + 0.01, r

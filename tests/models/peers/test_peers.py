"""Classical peers: kNN against scikit-learn on the run's own split, ECOD against PyOD and a brute-force
loop, Isolation Forest against PyOD, and nothing trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import REPO
from genood.models.peers import ClassicalPeers, ECODScorer, IsolationForestScorer

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--trainer.accelerator=cpu", "--evaluation.print_table=false", "--evaluation.plots=false",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def _stack(ds) -> np.ndarray:
    return torch.stack([ds[i]["x"] for i in range(len(ds))]).flatten(1).double().numpy()


@pytest.mark.parametrize("config,data_args", [
    ("configs/dte/wine.yaml", ["--data.init_args.seed=3"]),
    ("configs/baseline/digits.yaml", ["--data.init_args.ood_sets=[heldout,black]", "--data.init_args.seed=1"]),
])
def test_knn_row_equals_sklearn_nearest_neighbors_on_the_same_split(config, data_args, tmp_path):
    """The peers' kNN (run through the CLI on a config's data) = scikit-learn's NearestNeighbors distance to
    the 5th nearest point of the same ID fit split, for every evaluated sample, hence the same AUROC."""
    import yaml
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    from genood.evaluation.report import read_rows
    from genood.train import main

    rows = main(["--config", str(REPO / config), "--config", str(REPO / "configs/peers/overlay.yaml"),
                 f"--output_root={tmp_path}", *FAST, *data_args])
    run = next(tmp_path.rglob("results.json")).parent
    scores = np.load(run / "scores.npz")
    cfg = yaml.safe_load((run / "config.yaml").read_text())["data"]  # the run's resolved datamodule
    module, name = cfg["class_path"].rsplit(".", 1)
    dm = getattr(__import__(module, fromlist=[name]), name)(**cfg["init_args"])
    dm.setup()
    nn = NearestNeighbors(n_neighbors=5).fit(_stack(dm.fit_set))
    sets = dm.test_sets()
    ref = {s.name: nn.kneighbors(_stack(s.dataset))[0][:, 4] for s in sets}
    for s in sets:
        ours = scores[f"score/knn/{s.name}"]
        np.testing.assert_allclose(ours, ref[s.name], rtol=1e-5, atol=1e-5)
        assert (np.argsort(ours, kind="stable") == np.argsort(ref[s.name], kind="stable")).mean() > 0.99
    id_name = sets[0].name
    for s in sets[1:]:
        y = np.r_[np.zeros(len(ref[id_name])), np.ones(len(ref[s.name]))]
        expected = roc_auc_score(y, np.r_[ref[id_name], ref[s.name]])
        got = next(r["auroc"] for r in read_rows(run) if r["scorer"] == "knn" and r["ood_set"] == s.name)
        assert got == pytest.approx(expected, abs=1e-9)
    assert {r["scorer"] for r in rows} == {"knn", "iforest", "ecod_inductive"}


def _ecod_brute(train: np.ndarray, x: np.ndarray) -> float:
    """ECOD of one point appended to the training data, from the definitions (per-feature empirical CDF over
    the n + 1 points, -log tails, skewness-chosen tail, per-feature maximum, sum), one feature at a time."""
    from scipy.stats import skew

    n = len(train)
    total = 0.0
    for j in range(train.shape[1]):
        col = train[:, j]
        left = (np.sum(col <= x[j]) + 1) / (n + 1)
        right = (np.sum(col >= x[j]) + 1) / (n + 1)
        u_l, u_r = -np.log(left), -np.log(right)
        g = np.sign(skew(col))
        u_s = u_l if g < 0 else u_r if g > 0 else u_l + u_r
        total += max(u_l, u_r, u_s)
    return total


def test_ecod_matches_pyod_one_point_at_a_time_and_a_brute_force_loop():
    g = np.random.default_rng(0)
    train = np.c_[g.normal(size=(300, 3)), g.exponential(size=(300, 2)), -g.exponential(size=(300, 1))]
    train[:20, 0] = np.round(train[:20, 0], 1)  # some ties
    test = np.r_[g.normal(size=(25, 6)) * 1.5, train[:5], np.full((1, 6), 9.0)]
    ecod = ECODScorer()
    ecod.fit({"features": torch.from_numpy(train)})
    ours = ecod.score({"features": torch.from_numpy(test)}).numpy()
    brute = np.array([_ecod_brute(train, x) for x in test])
    np.testing.assert_allclose(ours, brute, rtol=1e-6)
    pyod = pytest.importorskip("pyod.models.ecod")
    ref = pyod.ECOD().fit(train)
    single = np.array([ref.decision_function(x[None])[0] for x in test])  # PyOD with a one-row batch
    np.testing.assert_allclose(ours, single, rtol=1e-6)
    # PyOD scores a batch against train + the whole batch, so a point's score depends on its neighbours in
    # the call; ours does not: any split of the queries gives the same scores
    parts = np.concatenate([ecod.score({"features": torch.from_numpy(test[i:i + 4])}).numpy() for i in range(0, len(test), 4)])
    np.testing.assert_array_equal(parts, ours)
    assert ours[-1] == ours.max()  # the far point is the most outlying


def test_isolation_forest_ranks_as_pyod_iforest():
    from scipy.stats import spearmanr

    g = np.random.default_rng(1)
    train, test = g.normal(size=(400, 5)), np.r_[g.normal(size=(60, 5)), g.normal(size=(20, 5)) * 4]
    ours = IsolationForestScorer(random_state=7)
    ours.fit({"features": torch.from_numpy(train)})
    s = ours.score({"features": torch.from_numpy(test)}).numpy()
    y = np.r_[np.zeros(60), np.ones(20)]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, s) > 0.9  # higher = more OOD
    pyod = pytest.importorskip("pyod.models.iforest")
    ref = pyod.IForest(random_state=7).fit(train).decision_function(test)
    assert spearmanr(s, ref).statistic == pytest.approx(1.0)


def test_peers_train_nothing_and_seed_the_forest_from_the_run():
    import lightning as L

    from genood.data.tabular import TabularDataModule

    L.seed_everything(5, verbose=False)
    model = ClassicalPeers(input_shape=(13,))
    assert model.iforest_seed == 5 and ClassicalPeers(input_shape=(13,), iforest_seed=2).iforest_seed == 2
    dm = TabularDataModule("wine")
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 0 and not list(model.parameters())
    out = model.score_outputs(torch.ones(4, 13))
    assert out["features"].shape == (4, 13)
    with pytest.raises(ValueError, match="knn_neighbors"):
        ClassicalPeers(input_shape=(13,), knn_neighbors=0)


@pytest.mark.gpu
def test_peers_score_on_cuda_as_on_the_cpu():
    from genood.scoring.knn import KNNScorer

    g = torch.Generator().manual_seed(0)
    train, query = torch.randn(600, 8, generator=g), torch.randn(80, 8, generator=g) * 2
    for make in (ECODScorer, lambda: KNNScorer(k=5), lambda: IsolationForestScorer(random_state=0)):
        cpu, gpu = make(), make()
        cpu.fit({"features": train})
        gpu.fit({"features": train.cuda()})
        s_gpu = gpu.score({"features": query.cuda()})
        assert s_gpu.device.type == "cuda"
        torch.testing.assert_close(s_gpu.cpu().double(), cpu.score({"features": query}).double(), rtol=1e-5, atol=1e-5)

"""DTE and TabularDDPM train under a Lightning Trainer on a TabularDataModule and reload from checkpoints."""

import json

import lightning as L
import pytest
import torch

from genood.data.tabular import TabularDataModule
from genood.models.dte import DTE, TabularDDPM


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster


@pytest.mark.parametrize("cls,kw", [(DTE, {"hidden_sizes": (32, 32)}), (TabularDDPM, {"d_main": 16, "d_hidden": 32, "recon_t": 5})])
def test_fit_and_reload(tmp_path, cls, kw):
    L.seed_everything(0)
    dm = TabularDataModule("wine", batch_size=32)
    model = cls(input_shape=dm.input_shape, **kw)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.fit(model, datamodule=dm)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())   # it trained
    if cls is TabularDDPM:
        assert len(model.epoch_losses) == 2 and all(l > 0 for l in model.epoch_losses)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    again = cls.load_from_checkpoint(path).eval()
    model.eval()
    x = torch.stack([dm.test_sets()[1].dataset[i]["x"] for i in range(4)])
    with torch.no_grad():
        a, b = model.score_outputs(x), again.score_outputs(x)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def _cli_args(root, *extra):
    from conftest import REPO

    return ["--config", str(REPO / "configs/dte/wine.yaml"), f"--output_root={root}", "--trainer.max_epochs=2",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            "--evaluation.print_table=false", "--evaluation.plots=false", "--model.init_args.hidden_sizes=[16,16]",
            *extra]


def test_only_the_heads_the_scorers_read_are_trained(tmp_path):
    """--evaluation.scorers=[dte_c] builds and trains DTE-C alone (as the released DTECategorical); DTE-NP and kNN
    alone train nothing; re-scoring the DTE-C checkpoint with the run's own config reproduces its scores."""
    from conftest import assert_same_scores_by_index
    from genood.evaluate import main as evaluate
    from genood.train import main as train

    rows = train(_cli_args(tmp_path / "c", "--evaluation.scorers=[dte_c]"))
    assert {r["scorer"] for r in rows} == {"dte_c"}
    run = next((tmp_path / "c").glob("*/version_0"))
    state = torch.load(run / "last.ckpt", weights_only=False)["state_dict"]
    assert any(k.startswith("c_net.") for k in state) and not any(k.startswith("ig_net.") for k in state)
    assert int(torch.load(run / "last.ckpt", weights_only=False)["global_step"]) > 0
    evaluate(["--ckpt_path", str(run / "last.ckpt"), f"--output_root={tmp_path / 'c'}"])
    again = sorted((tmp_path / "c").glob("*/version_*"))[-1]
    assert_same_scores_by_index(run / "scores.npz", again / "scores.npz")

    rows = train(_cli_args(tmp_path / "np", "--evaluation.scorers=[dte_np,knn]"))
    assert {r["scorer"] for r in rows} == {"dte_np", "knn"}
    run = next((tmp_path / "np").glob("*/version_0"))
    assert json.loads((run / "results.json").read_text())["metadata"]["weights"]["global_step"] == 0  # no training
    assert int(torch.load(run / "last.ckpt", weights_only=False)["global_step"]) == 0  # still re-scorable

    model = DTE(input_shape=(13,), hidden_sizes=(8,), heads=["ig"])
    model.select_outputs([])  # explicit heads are kept whatever the scorers
    assert model.heads == ["ig"] and {s.name for s in model.scorers()} >= {"dte_ig", "dte_ig_released"}
    assert "dte_c" not in {s.name for s in model.scorers()}

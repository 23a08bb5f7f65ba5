"""DTE and TabularDDPM train under a Lightning Trainer on a TabularDataModule and reload from checkpoints."""

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

"""The likelihood trap on embedded data (Nalisnick et al. 2019a; Serrà et al. 2020): a flow trained on digits
gives all-black images a *higher* likelihood than its own test digits (nll AUROC < 0.5), while input
complexity (Serrà et al.) and the typicality test (Nalisnick et al. 2019b) flag them.

Setting: digits bilinearly upsampled to 16x16 and quantized to 8 bits (n_bins = 256), the usual 8-bit
convention, where the phenomenon is as in the papers: every black pixel sits in the one bin the model is
surest about (the background), and 256 bins make that certainty worth up to log 256 nats per pixel. On the
native 8x8 / 17-level digits a fully trained flow ranks black images as unlikely (genood/models/flow/README.md
has both measured tables). A small Glow, 15 epochs, trained once per module (~10-20 s on 2 CPU cores).
"""

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from genood.data.digits import DigitsDataModule
from genood.models.flow import ImageFlow


@pytest.fixture(scope="module")
def scored():
    L.seed_everything(0, verbose=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dm = DigitsDataModule(held_out_classes=[8, 9], image_size=16, batch_size=64, eval_batch_size=512,
                              ood_sets=["black", "uniform_noise"])
        model = ImageFlow(dm.input_shape, architecture="glow", levels=2, steps=2, hidden_channels=16, n_bins=256,
                          warmup_steps=50)
        trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            num_sanity_val_steps=0)
        trainer.fit(model, datamodule=dm)
        model.eval()
        scorers = {s.name: s for s in model.scorers()}

        def outputs(ds):
            x = torch.stack([ds[i]["x"] for i in range(len(ds))])
            index = torch.arange(len(ds))
            with torch.inference_mode():
                out = dict(model.score_outputs(x, index=index))
            for s in scorers.values():
                out.update(s.batch_outputs({"x": x, "index": index}))
            return out

        scorers["typicality"].fit(outputs(dm.fit_set))
        outs = {s.name: outputs(s.dataset) for s in dm.test_sets()}
        return {name: {k: s.score(o).numpy() for k, s in scorers.items()} for name, o in outs.items()}
    finally:
        torch.set_num_threads(threads)


def _auroc(scored, ood, scorer):
    a, b = scored["digits"][scorer], scored[ood][scorer]
    return roc_auc_score(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b])


def test_likelihood_prefers_black_images_and_complexity_and_typicality_flag_them(scored):
    aurocs = {s: _auroc(scored, "black", s) for s in ("nll", "bpd", "typicality", "complexity")}
    assert aurocs["nll"] < 0.5, aurocs        # the trap: black images are more likely than test digits
    assert aurocs["bpd"] == aurocs["nll"]     # a positive rescaling of nll
    assert aurocs["complexity"] > 0.8, aurocs
    assert aurocs["typicality"] > 0.8, aurocs


def test_the_flow_is_a_working_density_model(scored):
    """Uniform noise is far less likely than digits; test digits cost fewer bits than a uniform 8-bit model."""
    assert _auroc(scored, "uniform_noise", "nll") > 0.95
    assert scored["digits"]["bpd"].mean() < 8.0

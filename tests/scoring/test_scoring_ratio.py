import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader

import lightning as L

from genood.data.base import IndexedDataset
from genood.models.base import GenerativeModel
from genood.models.baseline import PPCA
from genood.scoring import LikelihoodRatio, PerturbedDataset, PerturbInputs, Ratio, likelihood_scorers, perturb_inputs


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster


class Gaussian(GenerativeModel):
    """An isotropic Gaussian on vectors, a hand-built density for the ratio tests."""

    def __init__(self, loc: float, scale: float, dim: int = 2):
        super().__init__(input_shape=(dim,))
        self.loc = torch.nn.Parameter(torch.full((dim,), float(loc)))
        self.scale = scale

    def score_outputs(self, x):
        return {"log_prob": torch.distributions.Normal(self.loc, self.scale).log_prob(x).sum(-1)}


def test_ratio_sign_with_two_gaussians():
    g = torch.Generator().manual_seed(0)
    main, background = Gaussian(0.0, 1.0), Gaussian(0.0, 4.0)
    x_id = torch.randn(500, 2, generator=g)
    x_ood = torch.randn(500, 2, generator=g) + 4.0
    lr = LikelihoodRatio(background=background)
    scores = {}
    for name, x in (("id", x_id), ("ood", x_ood)):
        with torch.no_grad():
            out = {**main.score_outputs(x), **lr.batch_outputs({"x": x})}
        scores[name] = lr.score(out)
        # by hand: -[log N(x; 0, 1) - log N(x; 0, 16)]
        hand = -(torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1)
                 - torch.distributions.Normal(0.0, 4.0).log_prob(x).sum(-1))
        torch.testing.assert_close(scores[name], hand)
    y = [0] * 500 + [1] * 500
    assert roc_auc_score(y, torch.cat([scores["id"], scores["ood"]]).numpy()) > 0.95


def test_generic_ratio_combinator():
    r = Ratio("log_prob", "ref_log_prob", name="my_ratio")
    assert r.requires == ("log_prob", "ref_log_prob")
    s = r.score({"log_prob": torch.tensor([-1.0, -5.0]), "ref_log_prob": torch.tensor([-2.0, -2.0])})
    torch.testing.assert_close(s, torch.tensor([-1.0, 3.0]))   # b - a: worse than the reference = OOD
    with pytest.raises(ValueError, match="exactly one"):
        LikelihoodRatio()


def test_perturb_inputs_replaces_mu_fraction():
    g = torch.Generator().manual_seed(0)
    x = torch.full((200_000,), 2.0)                 # outside [0, 1): every replaced entry is visible
    for mu in (0.0, 0.1, 0.3):
        y = perturb_inputs(x, mu, generator=g)
        changed = y != x
        assert changed.float().mean().item() == pytest.approx(mu, abs=0.005)
        if mu > 0:
            vals = y[changed]
            assert vals.min() >= 0 and vals.max() < 1
            assert vals.mean().item() == pytest.approx(0.5, abs=0.01)
    y = perturb_inputs(torch.zeros(10_000), 1.0, low=-1.0, high=1.0, generator=g)
    assert y.min() >= -1 and y.max() < 1 and y.min() < -0.9
    with pytest.raises(ValueError, match="mu"):
        perturb_inputs(x, 1.5)


def test_perturbed_dataset_and_callback():
    base = IndexedDataset(torch.full((20, 1, 8, 8), 2.0), torch.arange(20))
    fixed = PerturbedDataset(base, mu=0.25, seed=3)
    a, b = fixed[5], fixed[5]
    assert torch.equal(a["x"], b["x"]) and a["y"] == 5 and a["index"] == 5
    assert 0 < (a["x"] != 2.0).float().mean() < 0.6
    fresh = PerturbedDataset(base, mu=0.25)
    assert not torch.equal(fresh[5]["x"], fresh[5]["x"])
    batch = {"x": torch.full((64, 1, 8, 8), 2.0), "y": torch.zeros(64), "index": torch.arange(64)}
    PerturbInputs(mu=0.2).on_train_batch_start(None, None, batch, 0)
    assert (batch["x"] != 2.0).float().mean().item() == pytest.approx(0.2, abs=0.02)


def _fit_ppca(data, path, callbacks=()):
    L.seed_everything(0, verbose=False)
    model = PPCA(input_shape=(1, 4, 4), latent_dim=2, lr=5e-2)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks))
    trainer.fit(model, DataLoader(data, batch_size=64))
    trainer.save_checkpoint(path)
    return model


def test_likelihood_ratio_loads_background_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(256, 1, 4, 4, generator=g) * 0.5 + torch.linspace(0, 0.5, 16).reshape(1, 1, 4, 4))
    data = IndexedDataset(x, torch.zeros(256, dtype=torch.long))
    main = _fit_ppca(data, tmp_path / "main.ckpt")
    background = _fit_ppca(data, tmp_path / "bg.ckpt", callbacks=[PerturbInputs(mu=0.3)])
    assert not torch.allclose(main.net.loc, background.net.loc)      # the perturbation changed the fit

    batch = {"x": x[:10]}
    main.eval(), background.eval()
    with torch.no_grad():
        expected = background.score_outputs(batch["x"])["log_prob"] - main.score_outputs(batch["x"])["log_prob"]
        main_out = main.score_outputs(batch["x"])

    # class given explicitly
    lr = LikelihoodRatio(background_ckpt=str(tmp_path / "bg.ckpt"), model_class="genood.models.baseline.PPCA")
    torch.testing.assert_close(lr.score({**main_out, **lr.batch_outputs(batch)}), expected)

    # class read from the checkpoint, as LightningCLI records it (_class_path + _instantiator)
    ckpt = torch.load(tmp_path / "bg.ckpt", weights_only=False)
    ckpt["hyper_parameters"]["_class_path"] = "genood.models.baseline.PPCA"
    ckpt["hyper_parameters"]["_instantiator"] = "lightning.pytorch.cli.instantiate_module"
    torch.save(ckpt, tmp_path / "bg_cli.ckpt")
    lr2 = LikelihoodRatio(background_ckpt=str(tmp_path / "bg_cli.ckpt"))  # as --evaluation.background_ckpt builds it
    torch.testing.assert_close(lr2.score({**main_out, **lr2.batch_outputs(batch)}), expected)

    with pytest.raises(ValueError, match="model_class"):
        LikelihoodRatio(background_ckpt=str(tmp_path / "bg.ckpt")).batch_outputs(batch)
    assert [s.name for s in likelihood_scorers(str(tmp_path / "bg.ckpt"))][-1] == "likelihood_ratio"

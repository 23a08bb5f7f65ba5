"""The vector MAF: a normalised density (integrates to 1 on a 2-D grid, also untrained in eval mode), which learns
a Gaussian's log density, and, through the CLI on the embedded WDBC task, ranks the anomalies above the
normals with scores that a re-evaluation of last.ckpt reproduces (the batch-norm statistics travel with it)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from conftest import REPO, assert_same_scores_by_index
from genood.models.vector_flow import VectorFlow, VectorMAF

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--trainer.accelerator=cpu", "--evaluation.print_table=false", "--evaluation.plots=false",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def _fit(net: VectorMAF, x: torch.Tensor, steps: int, lr: float = 3e-3, batch: int = 256, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(steps):
        b = x[torch.randint(len(x), (batch,), generator=g)]
        loss = -net.log_prob(b).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.set_batch_norm_stats(x)
    net.eval()


def _grid_mass(net: VectorMAF, half_width: float = 15.0, n: int = 601) -> float:
    """∫ p(x) dx over [−w, w]² by the midpoint rule on an n × n grid."""
    t = torch.linspace(-half_width, half_width, n)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    with torch.no_grad():
        p = net.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp()
    return float(p.sum() * (t[1] - t[0]) ** 2)


def test_the_flow_density_integrates_to_one_untrained_and_trained():
    """Eval mode before any training (nflows would start BatchNorm's running variance at 0; ours at 1, MAF's
    code) and after fitting a two-moons-like 2-D set with the training-set statistics: ∫ p = 1."""
    torch.manual_seed(0)
    net = VectorMAF(2, num_layers=3, hidden_features=32).eval()
    assert _grid_mass(net) == pytest.approx(1.0, abs=1e-3)
    g = torch.Generator().manual_seed(1)
    angle = torch.rand(2000, generator=g) * np.pi
    x = torch.stack([torch.cos(angle), torch.sin(angle)], 1) + 0.1 * torch.randn(2000, 2, generator=g)
    _fit(net, (x - x.mean(0)) / x.std(0), steps=300)
    assert _grid_mass(net) == pytest.approx(1.0, abs=5e-3)


def test_the_flow_learns_a_gaussian_log_density():
    """On 5-D correlated Gaussian data the trained flow's log p(x) of held-out points is close to the true log
    density (scipy), per sample and on average (the entropy)."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5)) / 2
    cov = A @ A.T + 0.3 * np.eye(5)
    mean = rng.normal(size=5)
    true = multivariate_normal(mean, cov)
    x_train = torch.from_numpy(true.rvs(4000, random_state=1)).float()
    x_test = true.rvs(1000, random_state=2)
    torch.manual_seed(0)
    net = VectorMAF(5, num_layers=3, hidden_features=32)
    _fit(net, x_train, steps=300)
    with torch.no_grad():
        ours = net.log_prob(torch.from_numpy(x_test).float()).double().numpy()
    ref = true.logpdf(x_test)
    assert abs(ours.mean() - ref.mean()) < 0.1  # nats per sample (the entropy is 6.9 nats)
    assert np.corrcoef(ours, ref)[0, 1] > 0.98


def test_vector_flow_on_wdbc_through_the_cli_ranks_anomalies_and_rescoring_last_ckpt_reproduces_it(tmp_path):
    from genood.evaluate import main as evaluate
    from genood.train import main as train

    rows = train(["--config", str(REPO / "configs/vector_flow/wdbc.yaml"), f"--output_root={tmp_path / 'train'}",
                  "--trainer.max_epochs=30", "--model.init_args.lr=1e-3", *FAST])
    auroc = {r["scorer"]: r["auroc"] for r in rows if r["ood_set"] == "anomalies"}
    assert set(auroc) == {"nll", "typicality"}
    assert auroc["nll"] > 0.8
    run = next((tmp_path / "train").rglob("results.json")).parent
    evaluate(["--ckpt_path", str(run / "last.ckpt"), f"--output_root={tmp_path / 'eval'}", *FAST])
    again = next((tmp_path / "eval").rglob("results.json")).parent
    assert_same_scores_by_index(run / "scores.npz", again / "scores.npz", rtol=1e-6)


def test_vector_flow_arguments_are_checked():
    with pytest.raises(ValueError, match="input_shape"):
        VectorFlow()
    with pytest.raises(ValueError, match="flow must be one of"):
        VectorFlow(input_shape=(4,), flow="glow")
    with pytest.raises(ValueError, match="activation"):
        VectorFlow(input_shape=(4,), activation="swish")
    with pytest.raises(ValueError, match="built for d=4"):
        VectorFlow(input_shape=(4,)).score_outputs(torch.zeros(2, 5))


def _released_predict_score(net, X: torch.Tensor) -> np.ndarray:
    """DTE's released FlowModel.predict_score on our layers' parameters, transcribed line by line: per-layer
    log_abs_det_jacobian [B, 1] stacked on dim 1 and summed, base log-prob [B], their [B, B] sum, −mean(1)."""
    with torch.no_grad():
        z, log_dets = X, []
        for layer in net.layers:
            a = z @ layer.weight.t() + layer.bias
            psi = (1 - torch.tanh(a) ** 2) * layer.weight
            log_dets.append(torch.log((1 + psi @ layer.scale.t()).abs() + 1e-6))
            z = z + torch.tanh(z @ layer.weight.t() + layer.bias) * layer.scale
        log_det = torch.stack(log_dets, dim=1).sum(1)
        base = torch.distributions.Normal(0, 1).log_prob(z).sum(dim=1)
        return -(base + log_det).numpy().mean(1)


def test_planar_layer_log_det_is_the_jacobians_and_planar_released_ranks_as_the_release():
    from genood.models.vector_flow import PlanarFlowNetwork

    torch.manual_seed(0)
    net = PlanarFlowNetwork(4, num_layers=10)
    with torch.no_grad():  # larger parameters than the 0.01 init, so the maps bend
        for p in net.parameters():
            p.mul_(100)
    x = torch.randn(6, 4, dtype=torch.float64)
    for layer in copy.deepcopy(net).double().layers:
        _, ld = layer(x)
        jac = torch.stack([torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], row) for row in x])
        np.testing.assert_allclose(ld.detach().numpy(), np.log(np.abs(np.linalg.det(jac.numpy())) + 1e-6), rtol=1e-6)
    model = VectorFlow(input_shape=(4,), flow="planar", num_layers=10)
    model.net = net
    X = torch.randn(50, 4) * 1.5
    with torch.no_grad():
        out = model.score_outputs(X)
    scorers = {s.name: s for s in model.scorers()}
    assert set(scorers) == {"nll", "typicality", "planar_released"}
    released = _released_predict_score(net, X)
    ours = scorers["planar_released"].score(out).double().numpy()
    shift = ours - released
    np.testing.assert_allclose(shift, shift[0], atol=1e-3)  # the released score up to one constant per call
    assert np.argsort(ours).tolist() == np.argsort(released).tolist()
    nll = scorers["nll"].score(out).double().numpy()
    assert np.corrcoef(nll, released)[0, 1] < 0.99  # the faithful NLL is another score


def test_planar_flow_trains_through_the_cli(tmp_path):
    from genood.train import main as train

    rows = train(["--config", str(REPO / "configs/vector_flow/planar_adbench.yaml"), "--data.init_args.dataset=wdbc",
                  f"--output_root={tmp_path}", "--trainer.max_epochs=5", *FAST])
    auroc = {r["scorer"]: r["auroc"] for r in rows if r["ood_set"] == "anomalies"}
    assert set(auroc) == {"nll", "typicality", "planar_released"}
    assert auroc["nll"] > 0.8


@pytest.mark.gpu
def test_vector_flow_scores_on_cuda_as_on_the_cpu():
    torch.manual_seed(0)
    net = VectorMAF(6, num_layers=2, hidden_features=16)
    x = torch.randn(300, 6)
    _fit(net, x, steps=20)
    gpu = copy.deepcopy(net).cuda()
    gpu.set_batch_norm_stats(x.cuda())
    with torch.no_grad():
        torch.testing.assert_close(gpu.log_prob(x.cuda()).cpu(), net.log_prob(x), rtol=1e-4, atol=1e-4)

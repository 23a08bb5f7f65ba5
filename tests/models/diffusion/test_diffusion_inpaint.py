"""LMD's map step: the replacement inpainter (known pixels, batched attempts = a per-attempt loop, keyed noise)."""

import pytest
import torch

from genood.models.diffusion import ImageDiffusion
from genood.evaluation.metrics import ood_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(**kw):
    torch.manual_seed(0)
    args = dict(input_shape=(1, 8, 8), unet="small", steps=4, attempts=4, distances=["mse", "ssim"])
    return ImageDiffusion(**{**args, **kw}).eval()


def test_known_pixels_equal_the_input_within_the_last_step_noise_scale():
    m = _model()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        x_hat = m.inpaint(x, torch.arange(3))
    known = m.masks(torch.arange(3), 3, "cpu").expand_as(x_hat).bool()
    err = (x_hat - x.unsqueeze(1)).abs()
    tol = float(m.process.std(m.process.sample_eps)) / 2       # sigma(eps) in [0, 1] scale (data scaled by 2)
    assert err[known].max() <= tol
    assert err[~known].max() > 100 * tol                       # the unknown pixels really are generated
    # the DDPM option returns the data itself in the known pixels
    d = _model(process="ddpm", steps=5)
    with torch.inference_mode():
        x_hat = d.inpaint(x, torch.arange(3))
    assert (x_hat - x.unsqueeze(1)).abs()[known].max() < 1e-6


@pytest.mark.parametrize("process", ["subvp", "ddpm"])
def test_batched_attempts_equal_a_per_attempt_loop_with_r_times_fewer_unet_calls(process):
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    out, calls = {}, {}
    for per_call in (None, 1, 3):
        m = _model(process=process, attempts_per_call=per_call)
        with torch.inference_mode():
            out[per_call] = m.inpaint(x, torch.tensor([7, 8, 9]))
        calls[per_call] = m.inpainter.unet_calls
    assert calls == {None: 4, 1: 16, 3: 8}                     # N steps x ceil(r / attempts per call)
    torch.testing.assert_close(out[1], out[None], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[3], out[None], rtol=1e-4, atol=1e-4)


def test_reconstructions_depend_on_the_sample_index_not_on_the_batch():
    m = _model()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    idx = torch.tensor([10, 11, 12, 13, 14])
    with torch.inference_mode():
        whole = m.inpaint(x, idx)
        part = m.inpaint(x[[4, 1]], idx[[4, 1]])
        other = m.inpaint(x, idx + 100)
    torch.testing.assert_close(part, whole[[4, 1]], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(other, whole, atol=1e-3)


def test_identity_inpainter_gives_zero_distances_and_auroc_one_half():
    """With an 'oracle' that returns x for every attempt, every LMD score is 0 (AUROC 0.5); with r = 1 the
    median is the single distance."""
    for r in (1, 4):
        m = _model(attempts=r)
        m.inpaint = lambda x, index=None, masks=None: x.unsqueeze(1).repeat(1, m.attempts, 1, 1, 1)
        scores = {}
        for name, x in (("id", torch.rand(6, 1, 8, 8)), ("ood", torch.rand(9, 1, 8, 8))):
            out = m.test_step({"x": x, "index": torch.arange(len(x))}, 0)
            assert out["lmd_mse_distances"].shape == (len(x), r)
            scores[name] = {s.name: s.score(out) for s in m.scorers()}
        for s in m.scorers():
            assert scores["id"][s.name].abs().max() < 1e-6
            auroc = ood_metrics(scores["id"][s.name].round(decimals=5).numpy(),
                                scores["ood"][s.name].round(decimals=5).numpy())["auroc"]
            assert auroc == 0.5
    one = _model(attempts=1)
    x = torch.rand(4, 1, 8, 8)
    out = one.test_step({"x": x, "index": torch.arange(4)}, 0)
    assert torch.equal(one.scorers()[0].score(out), out["lmd_mse_distances"][:, 0])

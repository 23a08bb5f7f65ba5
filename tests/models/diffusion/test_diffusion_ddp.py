"""LMD under 2-process CPU DDP (gloo): the evaluation of a checkpoint gives the same per-sample scores as one
process (masks and sampling noise are keyed by the sample's dataset index, never its batch or rank)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch

from conftest import REPO, run_folders

FLAGS = ["--config", str(REPO / "configs/lmd/digits.yaml"), "--trainer.accelerator=cpu",
         "--trainer.enable_progress_bar=false", "--evaluation.print_table=false", "--evaluation.plots=false",
         "--model.init_args.steps=3", "--model.init_args.attempts=3", "--data.init_args.ood_size=40",
         "--data.init_args.ood_sets=[uniform_noise]", "--data.init_args.eval_batch_size=64"]


def test_ddp_evaluation_equals_one_process_per_sample(tmp_path):
    from genood.evaluate import main as evaluate
    from genood.models.diffusion import ImageDiffusion

    torch.manual_seed(0)
    ckpt = tmp_path / "weights.ckpt"  # the config's network with fresh weights (evaluate reads 'state_dict')
    torch.save({"state_dict": ImageDiffusion(input_shape=(1, 8, 8), unet="small").state_dict()}, ckpt)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GENOOD_RUN_DIR", None)
    cmd = [sys.executable, "-m", "genood.evaluate", "--ckpt_path", str(ckpt), *FLAGS, "--trainer.strategy=ddp",
           "--trainer.devices=2", f"--output_root={tmp_path / 'ddp'}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluate(["--ckpt_path", str(ckpt), *FLAGS, "--trainer.devices=1", f"--output_root={tmp_path / 'one'}"])
    (one_run,), (ddp_run,) = run_folders(tmp_path / "one", "lmd_digits"), run_folders(tmp_path / "ddp", "lmd_digits")
    one, ddp = np.load(one_run / "scores.npz"), np.load(ddp_run / "scores.npz")
    assert sorted(one.files) == sorted(ddp.files)
    assert sorted(k.split("/")[-1] for k in one.files if k.startswith("index/")) == ["digits", "uniform_noise"]
    assert len(one["index/digits"]) == 433                      # odd: the DistributedSampler pads rank 1
    for name in ("digits", "uniform_noise"):
        np.testing.assert_array_equal(one[f"index/{name}"], ddp[f"index/{name}"])  # both sorted by index
        for scorer in ("lmd_mse", "lmd_ssim"):
            a, b = one[f"score/{scorer}/{name}"], ddp[f"score/{scorer}/{name}"]
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=f"{scorer} on {name}")

"""experiments/speed.py (the one speed script) still runs against the current models: each compared pair of
code paths must agree (the script asserts it), on tiny settings. No timing is asserted."""

from __future__ import annotations

import pytest

from conftest import load_experiment


@pytest.fixture(scope="module")
def speed():
    return load_experiment("speed")


def test_msma_stacked_levels_equal_the_per_level_loop(speed, tmp_path, one_thread):
    out = speed.main(["msma", "--batch", "3", "--repeats", "1", "--max-rows", "7", "--out", str(tmp_path / "m.json")])
    assert out["torch_threads"] == 1 and out["levels"] == 10 and out["score_max_rows"] == 7
    assert (tmp_path / "m.json").read_text().startswith("{")


def test_lmd_stacked_attempts_equal_the_per_attempt_loop(speed, one_thread):
    out = speed.main(["lmd", "--images", "3", "--batch", "3", "--steps", "2", "--attempts", "2", "--repeats", "1"])
    assert out["max_abs_difference"] < 1e-5
    assert out["batched"]["unet_calls"] * 2 == out["loop"]["unet_calls"]  # r = 2 attempts in one call vs two
    assert out["batched"]["nfe_per_image"] == out["loop"]["nfe_per_image"] == 4  # 2 steps x 2 attempts

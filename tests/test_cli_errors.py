"""Known user errors: ``main(argv)`` raises them as Python exceptions; the command line prints one clear line
without a traceback and exits with status 2; a run that fails before training leaves no run folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, quick_args


def _cli(module: str, *args: str, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GENOOD_RUN_DIR", None)
    env.pop("GENOOD_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def _assert_one_clear_line(proc: subprocess.CompletedProcess, prog: str, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, proc.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_command_line_errors_are_one_line_and_leave_no_run_folder(ppca_run, tmp_path):
    # a bad value found when the datamodule is built (after the run folder was claimed)
    proc = _cli("genood.train", *quick_args(tmp_path, "--data.init_args.ood_sets=[blank,nonsense]"))
    _assert_one_clear_line(proc, "genood.train", "unknown digits OOD set", "'nonsense'", "natural_patches")
    assert not (tmp_path / "ppca_digits").exists()  # no empty version_0 left behind
    # an unreadable checkpoint given to evaluate
    _, run, _ = ppca_run
    bad = tmp_path / "bad" / "last.ckpt"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    (bad.parent / "config.yaml").write_text((run / "config.yaml").read_text())
    proc = _cli("genood.evaluate", "--ckpt_path", str(bad), f"--output_root={tmp_path / 'out'}")
    _assert_one_clear_line(proc, "genood.evaluate", "could not be read", str(bad))
    assert not (tmp_path / "out" / "ppca_digits").exists()


@pytest.mark.parametrize("extra, error, match", [
    (["--data.init_args.ood_sets=[blank,nonsense]"], ValueError, "unknown digits OOD set"),
    (["--model.init_args.latent_dim=0"], ValueError, "latent_dim"),
    (["--ckpt_path=/nonexistent/last.ckpt"], FileNotFoundError, "does not exist"),
])
def test_main_raises_and_removes_the_unused_run_folder(tmp_path, extra, error, match):
    from genood.train import main

    with pytest.raises(error, match=match):
        main(quick_args(tmp_path, *extra))
    assert not (tmp_path / "ppca_digits").exists()
    explicit = tmp_path / "mine"
    explicit.mkdir()  # an explicit, empty --run_dir the user made is kept (and left empty)
    with pytest.raises(error, match=match):
        main(quick_args(tmp_path, *extra, f"--run_dir={explicit}"))
    assert explicit.is_dir() and not any(explicit.iterdir())


def test_missing_torchvision_dataset_is_one_line_with_the_download_hint(tmp_path):
    from genood.train import main

    with pytest.raises(FileNotFoundError, match="download=true"):
        main(["--config", str(REPO / "configs/hvae/fashionmnist.yaml"), f"--output_root={tmp_path}",
              f"--data.init_args.root={tmp_path / 'empty'}", "--trainer.accelerator=cpu"])
    assert not any(tmp_path.glob("*/version_*"))

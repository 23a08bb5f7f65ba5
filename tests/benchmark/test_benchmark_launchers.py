"""python -m genood.benchmark --launcher slurm, through submitit's local executor: the same job objects as on
a SLURM cluster, run as local processes. Two cells finish and are tabulated; a second invocation skips them."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO


@pytest.fixture
def local_submitit(monkeypatch):
    import genood.benchmark.launchers as launchers

    monkeypatch.setattr(launchers, "CLUSTER", "local")
    monkeypatch.setattr(launchers, "POLL_S", 0.2)


def test_slurm_launcher_runs_and_tabulates_two_cells(tmp_path, local_submitit):
    from genood.benchmark.__main__ import main

    bench = tmp_path / "tiny.yaml"
    bench.write_text(yaml.safe_dump({
        "name": "tiny", "seeds": [0, 1],
        "overrides": {"trainer.max_epochs": 1, "trainer.accelerator": "cpu", "evaluation.plots": False,
                      "data.init_args.ood_sets": ["black"], "evaluation.scorers": ["nll"]},
        "entries": [{"name": "ppca", "config": str(REPO / "configs/baseline/digits.yaml"),
                     "rows": {"nll": "PPCA NLL"}}]}))
    out = tmp_path / "out"
    argv = ["--config", str(bench), "--out", str(out), "--launcher", "slurm", "--slurm-cpus-per-cell", "2",
            "--slurm-time", "10"]
    res = main(argv)
    assert sorted((o.cell.seed, o.status) for o in res["outcomes"]) == [(0, "finished"), (1, "finished")]
    cells = json.loads((out / "cells.json").read_text())["cells"]
    assert [c["status"] for c in cells] == ["finished", "finished"]
    for cell in res["cells"]:
        record = json.loads(cell.status_path.read_text())
        assert record["status"] == "finished" and record["job_id"]  # run by a submitit job
        assert (out / "slurm" / record["job_id"]).is_dir()          # whose files are submitit's
        # the job ran the cell with its CPUs as threads (this shell has OMP_NUM_THREADS=1 or none)
        assert json.loads((cell.run_dir / "results.json").read_text())["metadata"]["device"].endswith("2 threads)")
    md = (out / "table.md").read_text()
    assert "| PPCA NLL |" in md and "failed" not in md
    again = main(argv)
    assert again["outcomes"] == []  # finished cells are skipped


def test_slurm_launcher_without_sbatch_is_one_clear_error(tmp_path, monkeypatch):
    import shutil

    from genood.benchmark.__main__ import main

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="sbatch"):
        main(["--config", str(REPO / "experiments/benchmarks/digits.yaml"), "--out", str(tmp_path), "--launcher",
              "slurm"])


def test_a_restarted_runner_waits_for_the_job_still_running_instead_of_submitting_again(tmp_path, local_submitit):
    """The cell's status file names its job; a new launcher finds it still running (here: the scheduler is
    asked through the first launcher's job object, as submitit's local jobs are not visible to another
    process) and waits for it."""
    import sys

    from genood.benchmark import load_benchmark
    from genood.benchmark.launchers import SUBMITTED, SubmititLauncher

    bench = tmp_path / "b.yaml"
    entry = {"name": "e", "config": str(REPO / "configs/baseline/digits.yaml")}
    bench.write_text(yaml.safe_dump({"seeds": [0], "entries": [entry]}))
    cell = load_benchmark(bench).cells(tmp_path / "out")[0]
    argv = [sys.executable, "-c", "import time; time.sleep(3)"]  # exits 0 without results: a failed cell
    first = SubmititLauncher(tmp_path / "slurm", cpus_per_cell=1, poll_s=0.2)
    with first:
        [pending] = first.submit([(cell, argv)], tmp_path)
        record = json.loads(cell.status_path.read_text())
        assert record["status"] == SUBMITTED
        job = first.watched[0][0]
        second = SubmititLauncher(tmp_path / "slurm", cpus_per_cell=1, poll_s=0.2)
        second._job = lambda job_id: job if job_id == str(job.job_id) else None
        with second:
            [again] = second.submit([(cell, argv)], tmp_path)
            outcome = again.result(timeout=120)
        pending.result(timeout=120)
    assert outcome.status == "failed" and "without writing results.json" in outcome.error
    assert [p.name for p in (tmp_path / "slurm").iterdir() if p.name != "%j"] == [str(job.job_id)]  # one job only
    assert json.loads(cell.status_path.read_text())["job_id"] == record["job_id"]

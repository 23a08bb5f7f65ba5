"""Wall time of the default job (`python -m genood.train`, no arguments) on this machine.

    python experiments/benchmark_default_run.py [--repeats 1] [extra genood.train args]

Runs the command in a subprocess from the repository root, into a temporary output root, and prints the
wall time (install excluded) with the results table's mean-far AUROC per scorer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from genood.evaluation.report import read_rows

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    args, extra = ap.parse_known_args()
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "genood.train", f"--output_root={out}", "--evaluation.print_table=false",
                   "--trainer.enable_progress_bar=false", *extra]
            t0 = time.perf_counter()
            subprocess.run(cmd, cwd=REPO, check=True, env={**os.environ, "WANDB_MODE": "disabled"},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            rows = read_rows(next(Path(out).rglob("results.json")))
        summary = {row["scorer"]: round(row["auroc"], 4) for row in rows if row["ood_set"] == "mean_far"}
        print(f"run {r}: wall {wall:.1f} s (cores: {os.cpu_count()}); mean_far AUROC: {summary}")


if __name__ == "__main__":
    main()

"""CPU threads per run: train + scoring wall time of each family's digits config with 1 and with 2 threads.

    python experiments/thread_scaling.py                      # about 10-15 min on an idle 2-core machine
    python experiments/thread_scaling.py --threads 1 2 4      # other thread counts
    python experiments/thread_scaling.py --configs configs/baseline/digits.yaml --quick   # check the script

Run it on an otherwise idle machine: the runs go one at a time, and the 1-minute load average at the start
of each run is printed beside it (a busy machine makes more threads look worse than they are). Each run is
``python -m genood.train --config <config> --threads <n> --trainer.accelerator=cpu`` with the shortening
overrides of :data:`SHORT` (fewer epochs; for LMD fewer sets and inpainting steps), in a temporary output
folder, with OMP_NUM_THREADS / MKL_NUM_THREADS unset so that ``--threads`` alone sets the thread count.
Times come from the run's ``results.json`` (``train_seconds``, ``scoring_seconds``) and the process wall time
(start-up included). ``max |dAUROC|`` is the largest AUROC difference between the thread counts over all
(scorer, set) rows: floating-point reductions split over threads round differently, so results repeat
exactly only under the same thread count.

The default of ``--threads`` (``genood.cli.DEFAULT_THREADS`` = 1) was chosen from this table: see the README's set-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# per family: overrides that shorten the run while keeping its batch shapes (the quantity measured is time
# per step and per scored batch, not the result)
SHORT = {
    "baseline": [],
    "classifier": ["--trainer.max_epochs=10"],
    "dte": ["--trainer.max_epochs=100"],
    "flow": ["--trainer.max_epochs=20"],
    "flowcon": ["--trainer.max_epochs=10", "--model.init_args.classifier_epochs=5"],
    "hvae": ["--trainer.max_epochs=20"],
    "lmd": ["--trainer.max_epochs=5", "--model.init_args.steps=10",
            "--data.init_args.ood_sets=[heldout,flipped,blank]"],
    "msma": ["--trainer.max_epochs=10", "--model.init_args.flow_epochs=200"],
}
QUICK = ["--trainer.max_epochs=1"]
QUICK_IMAGES = ["--data.init_args.ood_sets=[blank]"]  # DTE's digits config is tabular: no OOD set list
FLAGS = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--evaluation.plots=false",
         "--evaluation.print_table=false"]


def digits_configs() -> list[Path]:
    """``configs/default.yaml`` and every ``configs/<family>/digits.yaml``, each file once (the default is
    a link to the HVAE's)."""
    seen, out = set(), []
    for path in [REPO / "configs/default.yaml", *sorted((REPO / "configs").glob("*/digits.yaml"))]:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            out.append(path)
    return out


def family(config: Path) -> str:
    return config.resolve().parent.name


def run_once(config: Path, threads: int, extra: list[str], root: Path) -> dict:
    """One ``genood.train`` run; its timings, load average at the start, and AUROC per (scorer, set)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "GENOOD_RUN_DIR")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = root / f"{family(config)}-{threads}"
    cmd = [sys.executable, "-m", "genood.train", "--config", str(config), f"--threads={threads}",
           f"--output_root={out}", *FLAGS, *extra]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1], "wall": wall, "load": load}
    results = json.loads(next(out.glob("*/version_*/results.json")).read_text())
    meta = results["metadata"]
    return {"train": meta["train_seconds"], "scoring": meta["scoring_seconds"], "wall": wall, "load": load,
            "threads_recorded": meta.get("threads"),
            "auroc": {f"{r['scorer']}/{r['ood_set']}": r["auroc"] for r in results["rows"]}}


def table(results: dict, threads: list[int]) -> str:
    head = ["config"]
    for t in threads:
        head += [f"train s ({t})", f"scoring s ({t})", f"wall s ({t})", f"load ({t})"]
    head += [f"wall {threads[0]}/{t}" for t in threads[1:]] + ["max |dAUROC|"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, by_t in results.items():
        row = [name]
        for t in threads:
            r = by_t[t]
            row += ([f"failed: {r['error']}", "", f"{r['wall']:.0f}", f"{r['load']:.2f}"] if "error" in r else
                    [f"{r['train']:.1f}", f"{r['scoring']:.1f}", f"{r['wall']:.0f}", f"{r['load']:.2f}"])
        ok = [by_t[t] for t in threads if "error" not in by_t[t]]
        row += [f"{by_t[threads[0]]['wall'] / by_t[t]['wall']:.2f}" for t in threads[1:]]
        if len(ok) == len(threads):
            keys = set.intersection(*(set(r["auroc"]) for r in ok))
            row.append(f"{max(max(r['auroc'][k] for r in ok) - min(r['auroc'][k] for r in ok) for k in keys):.4f}")
        else:
            row.append("")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare (default 1 2)")
    p.add_argument("--configs", nargs="+", type=Path, default=None, help="configs (default: every digits config)")
    p.add_argument("--quick", action="store_true", help="1 epoch, one OOD set: only checks that the script runs")
    p.add_argument("--json", type=Path, default=None, help="also write every measurement to this file")
    a = p.parse_args()
    configs = [c.resolve() for c in a.configs] if a.configs else digits_configs()
    print(f"{len(configs)} configs x threads {a.threads}, one run at a time; {os.cpu_count()} CPUs; "
          f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[str, dict[int, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="genood-threads-") as tmp:
        for config in configs:
            name = str(config.relative_to(REPO)) if config.is_relative_to(REPO) else str(config)
            extra = SHORT.get(family(config), [])
            if a.quick:
                extra = extra + QUICK + (QUICK_IMAGES if family(config) != "dte" else [])
            results[name] = {}
            for t in a.threads:
                r = run_once(config, t, extra, Path(tmp))
                results[name][t] = r
                status = r.get("error") or f"train {r['train']:.1f} s, scoring {r['scoring']:.1f} s"
                print(f"{name} --threads {t}: {status}, wall {r['wall']:.0f} s (load {r['load']:.2f})", flush=True)
    print(f"\nShortened runs (experiments/thread_scaling.py SHORT{' + --quick' if a.quick else ''}); load average "
          f"at the end {os.getloadavg()[0]:.2f}\n")
    print(table(results, a.threads))
    if a.json:
        a.json.write_text(json.dumps({"threads": a.threads, "results": results}, indent=2))


if __name__ == "__main__":
    main()

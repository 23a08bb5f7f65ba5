"""Sending a benchmark's tables and heatmap to one W&B run: offline (files under the benchmark folder,
``wandb sync`` later) unless W&B is configured, as :mod:`genood.loggers` decides for training runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..loggers import wandb_configured
from .render import cell_text, layout
from .spec import Benchmark
from .table import Table


def log_to_wandb(out_dir: Path, bench: Benchmark, tables: Sequence[Table], paths: dict, decimals: int = 1,
                 project: str = "genood") -> str:
    """Logs ``benchmark/<table>`` (the printed table as a W&B Table) and ``benchmark/heatmap``; returns the
    run's local folder."""
    import wandb

    mode = os.environ.get("WANDB_MODE") or ("online" if wandb_configured() else "offline")
    run = wandb.init(project=project, name=f"benchmark-{bench.name}", job_type="benchmark", dir=str(out_dir),
                     mode=mode, config={"benchmark": bench.name, "file": str(bench.path), "seeds": bench.seeds,
                                        "metric": tables[0].metric if tables else None}, reinit="create_new")
    try:
        for t in tables:
            cols = layout(t)
            data = [[r.label] + [cell_text(k, r.values[c.key], decimals) for k, c, _ in cols] for r in t.rows]
            run.log({f"benchmark/{t.name or 'table'}": wandb.Table(columns=["method"] + [h if k == "value" else f"{c.label} {h}" for k, c, h in cols],
                                                                   data=data)})
        run.log({"benchmark/heatmap": wandb.Image(str(paths["png"]))})
        run.save(str(paths["md"]), base_path=str(out_dir), policy="now")
        run.save(str(paths["tex"]), base_path=str(out_dir), policy="now")
        local = run.dir
    finally:
        run.finish()
    print(f"W&B ({mode}): {local}")
    return local

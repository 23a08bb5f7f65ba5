"""``python -m genood.benchmark --config experiments/benchmarks/<name>.yaml``: a grid of genood runs
(entries x seeds), each an ordinary run folder, aggregated into paper tables with the classical peers and
the published numbers beside ours. See :mod:`genood.benchmark.spec` for the file format.

The names below are imported on first use, so that a light module of the package (the runner, the launchers:
what a SLURM job or a sweep imports) does not pay for the tables' imports (torch)."""

import importlib

_EXPORTS = {"error_line": "runner", "run_benchmark": "runner", "Benchmark": "spec", "BenchmarkSpecError": "spec",
            "Cell": "spec", "Entry": "spec", "load_benchmark": "spec", "build_tables": "table", "collect": "table"}

__all__ = ["Benchmark", "BenchmarkSpecError", "Cell", "Entry", "load_benchmark", "run_benchmark", "build_tables",
           "collect", "error_line"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

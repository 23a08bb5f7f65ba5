"""``python -m genood.benchmark --config experiments/benchmarks/<name>.yaml``: a grid of genood runs
(entries x seeds), each an ordinary run folder, aggregated into paper tables with the classical peers and
the published numbers beside ours. See :mod:`genood.benchmark.spec` for the file format."""

from .runner import error_line, run_benchmark
from .spec import Benchmark, BenchmarkSpecError, Cell, Entry, load_benchmark
from .table import build_tables, collect

__all__ = ["Benchmark", "BenchmarkSpecError", "Cell", "Entry", "load_benchmark", "run_benchmark", "build_tables",
           "collect", "error_line"]

"""The benchmarks behind docs/benchmarks.md, run from the repository root as modules:
``python -m bench.NAME --help``."""

"""Benchmark scripts, each run as `.venv/bin/python -m bench.<name>`; figures in docs/performance.md."""

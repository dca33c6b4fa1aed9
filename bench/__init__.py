"""Benchmark scripts, each run as `.venv/bin/python -m bench.<name>`; figures in docs/performance.md."""

import os

# Every bench viewer comes from 127.0.0.1: the per-address socket limit (100, for a production
# server facing many addresses) would close all but the first hundred. Stacks inherit this.
os.environ.setdefault("LIVECHARTS_MAX_SOCKETS_PER_ADDRESS", "1000000")

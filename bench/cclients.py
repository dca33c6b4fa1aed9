"""The compiled viewer clients (bench/cclients.c): built with gcc at run time, cached by source.

bench/fanout.py drives the binary exactly as it drives `python -m bench.clients` (one JSON
command per line), for the `livecharts` and `batches` protocols; the other protocols (the
per-point baseline, the peers) stay with the Python clients. bench/storm.py drives its storm
mode (`{"op": "storm", ...}`: viewers that reconnect and resume as live.js does). With no C
compiler on the machine `build()` returns None and the bench uses the Python clients for
everything (and says so).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("cclients.c")
PROTOCOLS = ("livecharts", "batches")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livecharts-bench"


def build() -> Path | None:
    """The binary for the current source (compiled once per source), or None without gcc."""
    compiler = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if compiler is None:
        return None
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    binary = cache_dir() / f"cclients-{digest}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    # Built beside its final name and renamed: two benches building at once both end well.
    with tempfile.NamedTemporaryFile(dir=binary.parent, prefix=".build-", delete=False) as out:
        partial = Path(out.name)
    try:
        result = subprocess.run(
            [compiler, "-O2", "-o", str(partial), str(SOURCE)], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"bench/cclients.c did not compile:\n{result.stderr[-2000:]}")
        partial.chmod(0o755)
        partial.replace(binary)
    finally:
        partial.unlink(missing_ok=True)
    return binary

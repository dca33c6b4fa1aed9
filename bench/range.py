"""How long a range request over a big stored stream takes, and how much memory it needs.

    .venv/bin/python -m bench.range --points 1000000
    .venv/bin/python -m bench.range --points 1000000 --database-url postgres://postgres@127.0.0.1:5432/test

Seeds one stream with N points (batches of 50, as broadcast stores 50 ms ticks) in a throwaway
database: a SQLite file in a temporary directory, or a fresh schema in the given PostgreSQL
database (dropped afterwards). Then asks GET /streams/<slug>/range for the whole range through
Django's test Client, so the figure is the whole view: access check, database read, decoding,
thinning and JSON encoding (no network, no ASGI server). Timed runs are followed by one run under
tracemalloc (which slows Python down, so it is not timed) and one run split into its steps.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BATCH = 50
SEED_CHUNK = 2_000  # batches per save_batches call (100,000 points)
TICK_MS = 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.range", description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="points to store (default 1,000,000)")
    parser.add_argument("--series", type=int, default=1, help="series per point (default 1)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (at least 3; default 5)")
    parser.add_argument("--max-points", type=int, default=2_000, help="the request's points= (default 2000)")
    parser.add_argument(
        "--database-url",
        default="",
        help="postgres://… for a throwaway schema there (default: a temporary SQLite file)",
    )
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    return args


@contextmanager
def throwaway_database(url: str) -> Iterator[str]:
    """Environment for Django pointing at an empty database; yields a label for the table."""
    if not url:
        with tempfile.TemporaryDirectory(prefix="bench-range-") as directory:
            os.environ["DATABASE_URL"] = f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
            yield "SQLite (temporary file)"
        return
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("--database-url: only postgres:// URLs (SQLite is the default)")
    import psycopg

    schema = f"bench_range_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    # libpq reads PGOPTIONS: every connection Django opens works inside the new schema.
    os.environ["PGOPTIONS"] = f"-c search_path={schema}"
    os.environ["DATABASE_URL"] = url
    try:
        yield "PostgreSQL (throwaway schema)"
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def setup_django() -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="livecharts.settings",
        DEBUG="0",  # no query log growing in memory
        SECRET_KEY="bench-range-only",
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="testserver",
        REDIS_URL="",
    )
    import django

    # whitenoise wants collected static files, which a range request never serves.
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def seed(slug: str, *, points: int, series: int) -> float:
    """Store `points` points in batches of BATCH; returns the seconds it took."""
    import math

    from streams.core.ids import format_id
    from streams.core.points import Entry, Point
    from streams.models import Stream
    from streams.storage.store import save_batches

    Stream.objects.create(
        slug=slug,
        title="Range bench",
        visibility=Stream.Visibility.PUBLIC,
        keep_points=None,  # nothing pruned while we measure
        keep_seconds=None,
    )
    names = [f"s{index}" for index in range(series)]
    begin = time.perf_counter()
    start_ms = int(time.time() * 1000) - points * TICK_MS
    chunk: list[tuple[str, list[Entry]]] = []
    for first in range(0, points, BATCH):
        entries = []
        for i in range(first, min(first + BATCH, points)):
            ms = start_ms + i * TICK_MS
            wave = math.sin(i / 5_000) * 10 + (i % 97) / 97
            entries.append(
                Entry(
                    id=format_id((ms, 0)),
                    point=Point(t=ms / 1000, values={name: wave + n for n, name in enumerate(names)}),
                )
            )
        chunk.append((slug, entries))
        if len(chunk) == SEED_CHUNK:
            save_batches(chunk)
            chunk = []
    if chunk:
        save_batches(chunk)
    return time.perf_counter() - begin


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM (peak RSS) to the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def ask(client: Any, slug: str, max_points: int) -> dict[str, Any]:
    response = client.get(f"/streams/{slug}/range", {"points": max_points})
    if response.status_code != 200:
        raise SystemExit(f"range request failed: {response.status_code} {response.content[:200]!r}")
    return json.loads(response.content)


def measure(args: argparse.Namespace, label: str) -> dict[str, Any]:
    from django.test import Client

    from streams.models import Stream
    from streams.storage import ranges

    slug = f"bench-range-{uuid.uuid4().hex[:8]}"
    seconds_seeding = seed(slug, points=args.points, series=args.series)
    client = Client()
    ask(client, slug, args.max_points)  # warm: imports, first connection, page cache
    load = os.getloadavg()  # other work on the machine shows in the figures: say how much

    times, rss_growth = [], []
    answer: dict[str, Any] = {}
    for _ in range(args.runs):
        gc.collect()
        peak_known = reset_peak_rss()
        before = rss_kib("VmRSS")
        begin = time.perf_counter()
        answer = ask(client, slug, args.max_points)
        times.append(time.perf_counter() - begin)
        if peak_known:
            rss_growth.append((rss_kib("VmHWM") - before) / 1024)

    gc.collect()
    tracemalloc.start()
    ask(client, slug, args.max_points)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # One run split into its steps (the view does the same, plus access check and HTTP).
    stream = Stream.objects.get(slug=slug)
    begin = time.perf_counter()
    columns = ranges.read_columns(stream.pk, start=None, end=None)
    read = time.perf_counter() - begin
    begin = time.perf_counter()
    rows = ranges.thin_rows(columns, points=args.max_points)
    thin = time.perf_counter() - begin
    begin = time.perf_counter()
    json.dumps(ranges.range_answer(stream, start=None, end=None, points=args.max_points))
    whole = time.perf_counter() - begin
    del columns, rows

    return {
        "label": label,
        "stored": answer["stored"],
        "returned": answer["returned"],
        "series": args.series,
        "seed": seconds_seeding,
        "times": times,
        "peak_mib": peak / 2**20,
        "rss_mib": max(rss_growth) if rss_growth else None,
        "read": read,
        "thin": thin,
        "answer": whole,
        "load": load,
    }


def memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def table(result: dict[str, Any]) -> str:
    times = result["times"]
    rss = "n/a" if result["rss_mib"] is None else f"{result['rss_mib']:.0f}"
    return "\n".join(
        [
            "| database | stored | returned | runs | median s | min s | max s "
            "| peak Python MiB | RSS growth MiB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {result['label']} | {result['stored']:,} | {result['returned']:,} | {len(times)} "
            f"| {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} "
            f"| {result['peak_mib']:.0f} | {rss} |",
            "",
            f"Steps of one run: read and decode {result['read']:.2f} s, thin {result['thin'] * 1000:.0f} ms, "
            f"whole answer as JSON {result['answer']:.2f} s. Seeding took {result['seed']:.0f} s "
            f"({result['series']} series, batches of {BATCH}).",
            f"Machine: {os.cpu_count()} CPUs, {memory_gib():.0f} GiB memory; load average "
            f"{result['load'][0]:.1f} before and {os.getloadavg()[0]:.1f} after the runs.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with throwaway_database(args.database_url) as label:
        setup_django()
        result = measure(args, label)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

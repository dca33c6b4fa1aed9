"""How long a range request over a big stored stream takes, and how much memory it needs.

    .venv/bin/python -m bench.range --points 1000000
    .venv/bin/python -m bench.range --points 1000000 --database-url postgres://postgres@127.0.0.1:5432/test
    .venv/bin/python -m bench.range --points 12000000 --bulk --last 604800   # a 7-day range
    .venv/bin/python -m bench.range --points 12000000 --bulk --last 604800 --raw  # and as before

Seeds one stream with N points (batches of 50, as broadcast stores 50 ms ticks; with --bulk,
rows of 20 points, a second of a 20 points/s stream as the store's flush writes them, written
in chunks of 200,000 points, their rollup tiers through the same code as rollups.rebuild) in a
throwaway database: a SQLite file in a temporary directory, or a fresh schema in the given PostgreSQL
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
        "--bulk", action="store_true", help="seed raw rows and tiers in large chunks (for 10^7+ points)"
    )
    parser.add_argument(
        "--last",
        type=float,
        action="append",
        help="ask for the last this many seconds (default: the whole range); repeat for several "
        "ranges over the same seeded points (0: the whole range)",
    )
    parser.add_argument(
        "--raw", action="store_true", help="also time reading every raw point, as before rollups (same data)"
    )
    parser.add_argument(
        "--write-streams",
        type=int,
        default=0,
        help="instead: time save_batches flushes of this many streams (a second of points each), "
        "with and without the rollup tiers",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="postgres://… for a throwaway schema there (default: a temporary SQLite file)",
    )
    parser.add_argument(
        "--boundary-rounds",
        type=int,
        default=0,
        help="with --write-streams: instead time flushes (with the tiers) that cross a 6 h bucket "
        "boundary, rolling all five coarser tiers at once, against plain ones; this many rounds",
    )
    parser.add_argument(
        "--seed-seconds",
        type=float,
        default=0,
        help="with --bulk: stop seeding after about this many seconds (at a chunk's end) and "
        "measure what is stored (the table says how many points)",
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


BULK_ROW = 20  # points per raw row: one second of a 20 points/s stream
BULK_CHUNK = 200_000  # points per transaction


def seed_bulk(slug: str, *, points: int, series: int, seconds: float = 0) -> float:
    """Store `points` points as rows of BULK_ROW, with their tiers, in large transactions: the
    raw rows as save_batches writes them, the tiers as rollups.rebuild writes them (the 1 s tier,
    then the coarser ones rolled up from it). Stops after the chunk that passes `seconds` of
    seeding when given. Returns the seconds it took."""
    import numpy as np
    import orjson
    from django.db import connection, transaction

    from streams.core.points import Point
    from streams.models import Stream
    from streams.storage import partitions, rollups
    from streams.storage.store import _insert_sql

    stream = Stream.objects.create(
        slug=slug,
        title="Range bench",
        visibility=Stream.Visibility.PUBLIC,
        keep_points=None,
        keep_seconds=None,
    )
    names = [f"s{index}" for index in range(series)]
    begin = time.perf_counter()
    start_ms = (int(time.time() * 1000) - points * TICK_MS) // 1000 * 1000
    insert = _insert_sql()
    for first in range(0, points, BULK_CHUNK):
        index = np.arange(first, min(first + BULK_CHUNK, points))
        ms = (start_ms + index * TICK_MS).tolist()
        t = [m / 1000 for m in ms]
        wave = (np.sin(index / 5_000) * 10 + (index % 97) / 97).tolist()
        ys = {name: [w + n for w in wave] for n, name in enumerate(names)}
        rows = []
        for at in range(0, len(ms), BULK_ROW):
            part = slice(at, at + BULK_ROW)
            ids = [f"{m}-0" for m in ms[part]]
            data = orjson.dumps({"ids": ids, "t": t[part], "y": {n: y[part] for n, y in ys.items()}}).decode()
            times = t[part]
            rows.append(
                (stream.pk, ms[part][0], 0, ms[part][-1], 0, min(times), max(times), len(times), data)
            )
        chunk = [Point(t=at, values={name: ys[name][i] for name in names}) for i, at in enumerate(t)]
        if connection.vendor == "postgresql":  # these past days have no partition yet
            partitions.make_partitions_for({row[3] for row in rows})
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(insert, rows)
            # As rollups.rebuild: the 1 s tier per chunk, the coarser ones rolled up from it.
            rollups.write_finest(cursor, {stream.pk: chunk})
            rollups.roll_up(cursor, newest={stream.pk: chunk[-1].t})
        if seconds and time.perf_counter() - begin > seconds:
            break
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


def ask_range(client: Any, slug: str, max_points: int, start_ms: int | None = None) -> dict[str, Any]:
    query: dict[str, Any] = {"points": max_points}
    if start_ms is not None:
        query["start"] = start_ms
    response = client.get(f"/streams/{slug}/range", query)
    if response.status_code != 200:
        raise SystemExit(f"range request failed: {response.status_code} {response.content[:200]!r}")
    return json.loads(response.content)


def measure(args: argparse.Namespace, label: str) -> list[dict[str, Any]]:
    from streams.models import Stream

    slug = f"bench-range-{uuid.uuid4().hex[:8]}"
    if args.bulk:
        seconds_seeding = seed_bulk(slug, points=args.points, series=args.series, seconds=args.seed_seconds)
    else:
        seconds_seeding = seed(slug, points=args.points, series=args.series)
    stream = Stream.objects.get(slug=slug)
    results = []
    for last in args.last or [0.0]:
        results.extend(measure_range(args, label, stream=stream, last=last, seeding=seconds_seeding))
    return results


def measure_range(
    args: argparse.Namespace, label: str, *, stream: Any, last: float, seeding: float
) -> list[dict[str, Any]]:
    """Time the range of the stream's last `last` seconds (0: everything), from the tiers and
    (with --raw) from the raw points."""
    from django.test import Client

    from streams.storage import ranges

    slug = stream.slug
    start: float | None = None
    if last:
        newest = stream.stored_batches.order_by("-t_max").values_list("t_max", flat=True).first() or 0.0
        start = newest - last
    start_ms = None if start is None else int(start * 1000)
    client = Client()
    results = []
    tiered_raw_points = ranges.RAW_POINTS
    for how in ["tiers", "raw"] if args.raw else ["tiers"]:
        # "raw": every range read from the raw points, as before the tiers (the same data).
        ranges.RAW_POINTS = 10**15 if how == "raw" else tiered_raw_points
        result = timed(args, client=client, slug=slug, start_ms=start_ms)

        # One run split into its steps (the view does the same, plus access check and HTTP).
        begin = time.perf_counter()
        columns, _, _ = ranges.read_range(stream.pk, start=start, end=None, points=args.max_points)
        read = time.perf_counter() - begin
        read_rows = len(columns)
        begin = time.perf_counter()
        rows = ranges.thin_rows(columns, points=args.max_points)
        thin = time.perf_counter() - begin
        begin = time.perf_counter()
        json.dumps(ranges.range_answer(stream, start=start, end=None, points=args.max_points))
        whole = time.perf_counter() - begin
        del columns, rows
        result.update(
            label=label,
            series=args.series,
            seed=seeding,
            read=read,
            read_rows=read_rows,
            how="raw points (before)" if how == "raw" else "rollups (raw at or below 50,000 points)",
            last=last,
            thin=thin,
            answer=whole,
        )
        results.append(result)
    return results


def timed(args: argparse.Namespace, *, client: Any, slug: str, start_ms: int | None) -> dict[str, Any]:
    ask_range(client, slug, args.max_points, start_ms)  # warm: imports, first connection, page cache
    load = os.getloadavg()  # other work on the machine shows in the figures: say how much
    times, rss_growth = [], []
    answer: dict[str, Any] = {}
    for _ in range(args.runs):
        gc.collect()
        peak_known = reset_peak_rss()
        before = rss_kib("VmRSS")
        begin = time.perf_counter()
        answer = ask_range(client, slug, args.max_points, start_ms)
        times.append(time.perf_counter() - begin)
        if peak_known:
            rss_growth.append((rss_kib("VmHWM") - before) / 1024)
    gc.collect()
    tracemalloc.start()
    ask_range(client, slug, args.max_points, start_ms)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "stored": answer["stored"],
        "returned": answer["returned"],
        "times": times,
        "peak_mib": peak / 2**20,
        "rss_mib": max(rss_growth) if rss_growth else None,
        "load": load,
    }


def write_cost(args: argparse.Namespace, label: str) -> str:
    """What the tiers add to the store's flush: save_batches of a second of points (20, each
    with every series) for each of N streams, alternately with and without add_columns."""
    from streams.core.ids import format_id
    from streams.core.points import Entry, Point
    from streams.models import Stream
    from streams.storage import rollups, store

    slugs = [f"w{index}" for index in range(args.write_streams)]
    Stream.objects.bulk_create([Stream(slug=slug, title=slug) for slug in slugs])
    names = [f"s{index}" for index in range(args.series)]
    first_ms = int(time.time()) * 1000
    add_columns = rollups.add_columns
    times: dict[bool, list[float]] = {True: [], False: []}
    for second in range(2 + 10 * 2):
        tiers = second % 2 == 0
        batches = [
            (
                slug,
                [
                    Entry(
                        id=format_id((first_ms + second * 1000 + i * TICK_MS, 0)),
                        point=Point(
                            t=(first_ms + second * 1000 + i * TICK_MS) / 1000,
                            values={name: float(i * n + second) for n, name in enumerate(names)},
                        ),
                    )
                    for i in range(1000 // TICK_MS)
                ],
            )
            for slug in slugs
        ]
        rollups.add_columns = add_columns if tiers else (lambda cursor, rows: 0)  # type: ignore[assignment]
        try:
            begin = time.perf_counter()
            store.save_batches(batches)
            took = time.perf_counter() - begin
        finally:
            rollups.add_columns = add_columns  # type: ignore[assignment]
        if second >= 2:  # the first two warm up
            times[tiers].append(took)
    with_tiers, without = statistics.median(times[True]), statistics.median(times[False])
    return (
        f"{label}: a flush of {len(slugs)} streams x {1000 // TICK_MS} points x {len(names)} series: "
        f"{with_tiers * 1000:.0f} ms with the tiers, {without * 1000:.0f} ms without (medians of "
        f"{len(times[True])}); load average {os.getloadavg()[0]:.1f}."
    )


def boundary_cost(args: argparse.Namespace, label: str) -> str:
    """What a flush that crosses a 6 h boundary costs (it rolls the 10 s, 1 min, 10 min, 1 h and
    6 h tiers at once) against a plain flush, with the tiers, N streams. Each round writes the
    seconds B - 4 .. B + 1 around a 6 h boundary B, then jumps to the next one: B - 4 rolls the
    tiers up to 1 h over the jump (few rows: the seconds between were never written), B - 3 ..
    B - 1 and B + 1 are plain flushes, B rolls all five."""
    from streams.core.ids import format_id
    from streams.core.points import Entry, Point
    from streams.models import Stream
    from streams.storage import rollups, store

    slugs = [f"b{index}" for index in range(args.write_streams)]
    Stream.objects.bulk_create([Stream(slug=slug, title=slug) for slug in slugs])
    names = [f"s{index}" for index in range(args.series)]
    six_hours = rollups.TIERS[-1]
    # Ids follow the points' times (a live stream); the first boundary lies a few rounds back.
    first = (int(time.time()) // six_hours - args.boundary_rounds - 1) * six_hours
    kinds: dict[str, list[float]] = {"plain": [], "6 h boundary": [], "after the jump": []}
    for round_ in range(args.boundary_rounds + 1):
        boundary = first + round_ * six_hours
        for second in range(boundary - 4, boundary + 2):
            batches = [
                (
                    slug,
                    [
                        Entry(
                            id=format_id((second * 1000 + i * TICK_MS, 0)),
                            point=Point(
                                t=(second * 1000 + i * TICK_MS) / 1000,
                                values={name: float(i * n + second % 97) for n, name in enumerate(names)},
                            ),
                        )
                        for i in range(1000 // TICK_MS)
                    ],
                )
                for slug in slugs
            ]
            begin = time.perf_counter()
            store.save_batches(batches)
            took = time.perf_counter() - begin
            if round_ == 0:
                continue  # warm-up: the streams' first rows and marks
            kind = {boundary: "6 h boundary", boundary - 4: "after the jump"}.get(second, "plain")
            kinds[kind].append(took)
    plain = statistics.median(kinds["plain"])
    parts = [
        f"{kind} {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, max "
        f"{max(times) * 1000:.0f}, {len(times)} flushes, {statistics.median(times) / plain:.2f}x plain)"
        for kind, times in kinds.items()
    ]
    return (
        f"{label}: flushes with the tiers of {len(slugs)} streams x {1000 // TICK_MS} points x "
        f"{len(names)} series: " + "; ".join(parts) + f"; load average {os.getloadavg()[0]:.1f}."
    )


def memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| database | read from | stored | returned | runs | median s | min s | max s "
        "| peak Python MiB | RSS growth MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        times = result["times"]
        rss = "n/a" if result["rss_mib"] is None else f"{result['rss_mib']:.0f}"
        lines.append(
            f"| {result['label']} | {result['how']} | {result['stored']:,} | {result['returned']:,} "
            f"| {len(times)} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} "
            f"| {result['peak_mib']:.0f} | {rss} |"
        )
    lines.append("")
    for result in results:
        span = f"the last {result['last']:,.0f} s" if result["last"] else "everything"
        lines.append(
            f"{result['how']}: range {span}; steps of one run: read and decode {result['read']:.3f} s "
            f"({result['read_rows']:,} rows to thin), thin {result['thin'] * 1000:.0f} ms, whole "
            f"answer as JSON {result['answer']:.3f} s; load average {result['load'][0]:.1f} before."
        )
    lines.append(
        f"Seeding took {results[0]['seed']:.0f} s ({results[0]['series']} series). Machine: "
        f"{os.cpu_count()} CPUs, {memory_gib():.0f} GiB memory; load average {os.getloadavg()[0]:.1f} "
        "after the runs."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with throwaway_database(args.database_url) as label:
        setup_django()
        if args.write_streams and args.boundary_rounds:
            print(boundary_cost(args, label))
            return 0
        if args.write_streams:
            print(write_cost(args, label))
            return 0
        results = measure(args, label)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

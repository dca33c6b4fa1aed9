"""The ingest bench's worker process: the real feed path for N streams, fed pre-made JSON.

Run by bench/ingest.py (bench.fanout.Worker), configured by one JSON line on stdin (streams,
rate, slug_prefix, window, store, log), with a throwaway SQLite file and a private
redis-server in its environment. Each stream runs through `Supervisor.run_feed` exactly as
`manage.py ingest` runs it (health reports, `Broadcaster.publish`, the per-tick history
append and group_send, the Persister when the stream stores points). Its feed is
`ReplayFeed`, an ExtractingFeed reading pre-made message bytes instead of a socket. Its
messages arrive 1 / rate apart from a random phase; the feed wakes once the next one has
arrived (as a socket turns readable), takes every message that arrived since its last read
(as a read drains a socket's receive buffer) and does with each what the websocket feed does,
`Extractor.points_from_json` (parse_json then Extractor.points, in one). So an idle loop reads
each message as it comes and a busy one reads every feed once an iteration, with whatever came
meanwhile; nothing is synchronised with the tick and nothing holds a feed back (a websocket
feed is never held back by broadcast).
A receive buffer of RECEIVE_BUFFER_SECONDS of messages bounds a read; what overflows it is
lost and counted. A local server would put a second busy process on a 2-core machine and
measure its send path as much as ours.

It prints "READY" once every feed reads; each "MARK" on stdin is answered "MARKED" just after
the next flush, with the feeds' and the ticker's counts taken then; "STOP" ends the feeds (what
is queued is flushed, as at a SIGTERM), then one "RESULT" JSON line with the counts between the
first two marks and the same process's cost of a bare `json.loads`, and of the feed's parse +
extract, per message of the same payloads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

# One point per message, the shape of a typical ticker: a time in ms and a price.
EXTRACT = {"time": "ts", "value": "price"}
PAYLOADS = 10_000
# What a feed's receive buffer holds, in seconds of its messages: a read after a longer pause
# finds only that much (the rest is lost, and counted). A socket's buffer holds megabytes (tens
# of seconds of these messages); one second is plenty for a worker that keeps up.
RECEIVE_BUFFER_SECONDS = 1.0
# The ReplayFeed class once run() has made it (after django.setup()).
REPLAY_FEED: Any = None


def make_templates(count: int = PAYLOADS) -> list[bytes]:
    """Messages with their time left out (`%.3f`, in ms): each read stamps the times it
    arrived over, as a live ticker's messages carry theirs. A replay of fixed times would go
    back in time at every wrap, and the time rules (streams/ingest/feeds/timeline.py) drop late points."""
    rng = random.Random(5)
    return [
        b'{"type": "tick", "symbol": "ABC-USD", "price": %s, "ts": %%.3f}'
        % str(round(rng.uniform(90, 110), 4)).encode()
        for _ in range(count)
    ]


def make_payloads(templates: list[bytes]) -> list[bytes]:
    """The templates stamped 50 ms apart: the same messages for the bare json.loads baseline."""
    start_ms = 1_700_000_000_000
    return [template % (start_ms + 50 * n) for n, template in enumerate(templates)]


def replay_feed_class() -> type:
    from streams.core.points import Batch
    from streams.ingest.feeds.base import reject_unknown
    from streams.ingest.feeds.extract import BadPayload, ExtractingFeed, clean_extract

    class ReplayFeed(ExtractingFeed):
        """Pre-made messages at `rate` per second, read in chunks; parsed like a websocket feed."""

        kind = "bench-replay"
        payloads: list[bytes] = []  # make_templates(): stamped with their times as they are read
        broadcaster: Any = None
        # Streams whose feed is reading: a thousand take seconds to start (health reports,
        # history and database look-ups), and the window must not measure that.
        reading: set[str] = set()
        # Per stream: [reads, points due, points read, points dropped].
        counts: dict[str, list[int]] = {}

        @classmethod
        def clean_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
            reject_unknown(raw, {"rate", "extract"})
            return {"rate": float(raw["rate"]), "extract": clean_extract(raw.get("extract"))}

        async def batches(self) -> AsyncIterator[Batch]:
            rate, payloads = self.settings["rate"], self.payloads
            position = random.randrange(len(payloads))
            yield []
            self.reading.add(self.slug)
            # The source's messages arrive 1 / rate apart, from a random phase: the streams'
            # sources are not synchronised with each other nor with the tick.
            gap = 1.0 / rate
            await asyncio.sleep(random.uniform(0, gap))
            last, owed = time.monotonic(), 0.0
            counts = self.counts[self.slug] = [0, 0.0, 0, 0.0]
            while True:
                # Readable once the next message has arrived, as a socket is: an idle loop reads
                # each message as it comes, a busy one reads whatever came since its last turn
                # (every feed once a loop iteration, as epoll hands over every readable socket).
                # Never held back by the broadcaster: a websocket feed is not.
                await asyncio.sleep(max(0.0, last + gap - time.monotonic()))
                now = time.monotonic()
                due = rate * (now - last)
                # A receive buffer holds RECEIVE_BUFFER_SECONDS of messages; what comes on top
                # while nobody reads is lost (counted).
                owed += min(due, rate * RECEIVE_BUFFER_SECONDS)
                last = now
                count, owed = int(owed), owed - int(owed)
                counts[0] += 1
                counts[1] += due
                counts[2] += count
                counts[3] += max(0.0, due - rate * RECEIVE_BUFFER_SECONDS)
                received_at = time.time()
                # The messages of this read arrived over the last count / rate seconds.
                step_ms = 1000.0 / rate
                first_ms = received_at * 1000.0 - count * step_ms
                # What arrived, in one piece as a socket read hands it over: a slice of the
                # replay (wrapping around), so the bench's own bookkeeping per message is small
                # beside the path it measures.
                arrived = payloads[position : position + count]
                while len(arrived) < count:
                    arrived += payloads[: count - len(arrived)]
                position = (position + count) % len(payloads)
                batch: Batch = []
                # What the websocket feed reads a message with (parse_json, then extract).
                points = self.extractor.points_from_json
                for index, template in enumerate(arrived):
                    try:
                        raw = template % (first_ms + index * step_ms)
                        batch.extend(points(raw, received_at=received_at))
                    except (ValueError, BadPayload) as error:
                        self.skip(str(error))
                if batch:
                    yield batch

    return ReplayFeed


def per_message_seconds(payloads: list[bytes], extractor: Any) -> tuple[float, float]:
    """CPU seconds per message of a bare json.loads, and of the feed's parse + extract
    (Extractor.points_from_json, as the websocket feed does; best of 3)."""
    messages = payloads * 2
    bare, mapped = [], []
    for _ in range(3):
        started = time.process_time()
        for raw in messages:
            json.loads(raw)
        bare.append((time.process_time() - started) / len(messages))
        started = time.process_time()
        for raw in messages:
            extractor.points_from_json(raw, received_at=0.0)
        mapped.append((time.process_time() - started) / len(messages))
    return min(bare), min(mapped)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from streams.broadcast import get_broadcaster
    from streams.core.retention import Retention
    from streams.ingest.feeds import FEED_KINDS, FeedKind
    from streams.ingest.feeds.extract import Extractor, clean_extract
    from streams.ingest.supervisor import Running, StreamSpec, Supervisor, tune_gc

    global REPLAY_FEED
    tune_gc()  # as `manage.py ingest` does before its feeds start
    feed_class = REPLAY_FEED = replay_feed_class()
    feed_class.payloads = make_templates()
    # This process only: build_feed finds the kind. The registry imports a kind's class by its
    # path, so the class made here is reached as this module's REPLAY_FEED.
    FEED_KINDS[feed_class.kind] = FeedKind("bench: pre-made messages", f"{__name__}.REPLAY_FEED")
    per_stream = args.rate / args.streams
    settings_json = json.dumps({"extract": EXTRACT, "rate": per_stream}, sort_keys=True)
    retention = Retention(points=args.window)
    broadcaster = feed_class.broadcaster = get_broadcaster()
    supervisor = Supervisor(broadcaster=broadcaster)
    slugs = [f"{args.slug_prefix}{n}" for n in range(args.streams)]
    for slug in slugs:
        spec = StreamSpec(
            slug=slug,
            kind=feed_class.kind,
            settings_json=settings_json,
            retention=retention,
            store=args.store,
        )
        supervisor.tasks[slug] = Running(
            spec, asyncio.get_running_loop().create_task(supervisor.run_feed(spec))
        )
    ticks = count_ticks(broadcaster)
    while len(feed_class.reading) < args.streams:
        await asyncio.sleep(0.1)
    print("READY", flush=True)
    # "MARK" lines start and end the measured window, each answered "MARKED" just after the next
    # flush: points reach history a tick at a time, so a window between two flushes counts whole
    # ticks (with a tick a second, a window of 2 s cut anywhere would be off by up to half).
    marks = []
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "MARK":
        flushed = ticks["ticks"]
        while ticks["ticks"] == flushed:
            await asyncio.sleep(0.001)
        feeds = {slug: list(counts) for slug, counts in feed_class.counts.items()}
        marks.append((time.monotonic(), dict(ticks), feeds))
        print("MARKED", flush=True)
    stopped = time.monotonic()
    await supervisor.stop_all()  # flushes what is queued, and the Persister's queue
    stop_seconds = time.monotonic() - stopped
    bare, mapped = per_message_seconds(make_payloads(feed_class.payloads), Extractor(clean_extract(EXTRACT)))
    return {
        "stop_seconds": stop_seconds,
        "json_loads_us": bare * 1e6,
        "json_loads_extract_us": mapped * 1e6,
        "persister_waiting": 0 if broadcaster.persister is None else broadcaster.persister.waiting,
        **(window_counts(marks[0], marks[1]) if len(marks) >= 2 else {}),
    }


def count_ticks(broadcaster: Any) -> dict[str, float]:
    """Counts of the broadcaster's flushes (the ticker's, and any other): how many, how late
    after their tick boundary they started (ms, summed), how long they took (ms, summed), the
    points they took (summed) and when the last one took them (`time.monotonic()`).

    A flush takes every point read before it starts, so the points taken between the starts of
    two flushes are those read between them: a window from one start to another is exact, where
    one between the flushes' ends is off by the difference of their lengths (a flush of 200-700
    ms in a window of a few seconds: up to a sixth of the figure, either way)."""
    counts = {"ticks": 0, "late_ms": 0.0, "flush_ms": 0.0, "taken": 0, "taken_at": 0.0}
    flush, tick = broadcaster.flush, broadcaster.tick_seconds

    async def counted() -> None:
        started = time.time()
        counts["late_ms"] += 1000 * (started % tick)
        # What this flush takes: it takes the queue at once (no await before that in flush).
        taken_at = time.monotonic()
        taken = sum(len(item.points) for item in broadcaster._pending.values())
        try:
            await flush()
        finally:
            counts["flush_ms"] += 1000 * (time.time() - started)
            counts["taken"] += taken
            counts["taken_at"] = taken_at
            counts["ticks"] += 1  # counted once done: "MARK" waits for a finished flush

    broadcaster.flush = counted
    return counts


def window_counts(start: tuple, end: tuple) -> dict[str, Any]:
    """What the feeds and the ticker did between two marks, per second (per feed: the median)."""
    seconds = end[0] - start[0]
    ticks = end[1]["ticks"] - start[1]["ticks"]
    per_feed = [
        [b - a for a, b in zip(start[2].get(slug, [0, 0.0, 0, 0.0]), counts, strict=True)]
        for slug, counts in end[2].items()
    ]
    total = [sum(column) for column in zip(*per_feed, strict=True)] if per_feed else [0] * 4
    reads = sorted(c[0] / seconds for c in per_feed) or [0.0]
    history_s = end[1]["taken_at"] - start[1]["taken_at"]
    return {
        "window_s": seconds,
        # Points the window's flushes took into history, between the starts of its first and
        # last flush (count_ticks): the worker's rate, exact to the point.
        "history_points": end[1]["taken"] - start[1]["taken"],
        "history_s": history_s,
        "ticks_per_s": ticks / seconds,
        "tick_late_ms": (end[1]["late_ms"] - start[1]["late_ms"]) / max(ticks, 1),
        "flush_ms": (end[1]["flush_ms"] - start[1]["flush_ms"]) / max(ticks, 1),
        "reads_per_s": total[0] / seconds,
        "reads_per_feed_s": [reads[0], reads[len(reads) // 2], reads[-1]],
        "due_per_s": total[1] / seconds,
        "read_per_s": total[2] / seconds,
        "dropped_per_s": total[3] / seconds,
    }


async def run_ticks(args: argparse.Namespace) -> dict[str, Any]:
    """CPU per point of the path a feed's batch takes, driven tick by tick with no timers:
    per tick, every stream gets `points_per_tick` messages (parsed and extracted as the websocket
    feed does, its time rules,
    its health counted, `Broadcaster.publish`, as run_feed does), then one `Broadcaster.flush`
    (history append, group messages, the Persister's queue); the Persister writes every 20
    ticks (once a second of ticks). What it leaves out is the event loop's waking of feed
    tasks; what it measures does not depend on how much of a core a shared machine gives the
    process (the timed runs' rate does)."""
    from django.conf import settings

    from streams.broadcast import get_broadcaster
    from streams.core.retention import Retention
    from streams.ingest.feed_health import FeedHealth
    from streams.ingest.feeds.extract import Extractor, clean_extract
    from streams.ingest.feeds.timeline import Timeline
    from streams.ingest.supervisor import tune_gc

    tune_gc()
    templates = make_templates()
    broadcaster = get_broadcaster()
    retention = Retention(points=args.window)
    slugs = [f"{args.slug_prefix}{n}" for n in range(args.streams)]
    feeds = [
        (
            slug,
            Extractor(clean_extract(EXTRACT)),
            Timeline(max_ahead=settings.LIVECHARTS_MAX_FUTURE_SECONDS),
            FeedHealth(),
        )
        for slug in slugs
    ]
    per_tick = args.points_per_tick
    tick_ms = broadcaster.tick_seconds * 1000
    skipped: list[str] = []
    position = 0

    async def tick() -> int:
        nonlocal position
        now = time.time()
        first_ms = now * 1000 - tick_ms
        step_ms = tick_ms / per_tick
        points = 0
        for slug, extractor, timeline, health in feeds:
            batch = []
            for index in range(per_tick):
                raw = templates[position] % (first_ms + index * step_ms)
                position = (position + 1) % len(templates)
                batch.extend(extractor.points_from_json(raw, received_at=now))
            health.got_points(len(batch), now=now)
            batch = timeline.admit(batch, now=now, skip=skipped.append)
            broadcaster.publish(slug, batch, retention=retention, store=args.store)
            points += len(batch)
        await broadcaster.flush()
        return points

    async def run(ticks: int) -> int:
        done = 0
        for n in range(ticks):
            done += await tick()
            if n % 20 == 19 and broadcaster.persister is not None:
                await broadcaster.persister.flush()
            # Ticks 50 ms apart in time, as ids and point times are (the CPU is what is measured).
            await asyncio.sleep(max(0.0, broadcaster.tick_seconds - time.time() % broadcaster.tick_seconds))
        if broadcaster.persister is not None:
            await broadcaster.persister.flush()
        return done

    await run(20)  # warm-up: id clocks read, first rows stored
    cpu0 = time.process_time()
    points = await run(args.ticks)
    cpu = time.process_time() - cpu0
    await broadcaster.close()
    bare, mapped = per_message_seconds(make_payloads(templates), Extractor(clean_extract(EXTRACT)))
    return {
        "points": points,
        "skipped": len(skipped),
        "us_per_point": 1e6 * cpu / points,
        "json_loads_us": bare * 1e6,
        "json_loads_extract_us": mapped * 1e6,
    }


def main() -> None:
    config = json.loads(sys.stdin.readline())
    # Logs to a file: nobody reads this process's stderr pipe, and a full pipe would block it.
    log = os.open(config.pop("log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 2)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livecharts.settings")
    import django

    django.setup()
    args = argparse.Namespace(**config)
    result = asyncio.run(run_ticks(args) if getattr(args, "ticks", 0) else run(args))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

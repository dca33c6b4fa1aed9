"""`make bench`: run the scenarios and rewrite their sections of docs/performance.md.

    .venv/bin/python -m bench [--quick] [--only fanout,ingest,...]

Each scenario owns the part of docs/performance.md between `<!-- bench:<name> -->` and
`<!-- /bench:<name> -->`; everything else in the file (sections measured by hand, like range
requests) is kept as it is. A section missing from the file is appended.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import browser, fanout, ingest, memory
from bench.report import machine

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
# Bounds the whole run (make bench): the fan-out section takes about 5 minutes.
FANOUT_ARGS = [
    "--viewers", "10,100,500,1000",
    "--rates", "100,1000",
    "--overload", "2000x1000,100x10000",
    "--compare", "baseline:100x1000,raw:100x1000,raw:500x1000,websockets:500x1000,sse:500x1000,"
    "core:100x1000,core:500x1000",
    "--dashboard", "100x10x100",
    "--runs", "3",
    "--seconds", "2",
    "--warmup", "1",
    "--drain", "2",
    "--budget", "240",
]  # fmt: skip
# A smoke run of every stack and table (one run each; under a minute).
QUICK_ARGS = [
    "--viewers", "10,100",
    "--rates", "100",
    "--compare", "baseline:10x100,raw:10x100,websockets:10x100,sse:10x100,core:10x100",
    "--dashboard", "10x3x100",
    "--runs", "1",
    "--seconds", "1",
    "--warmup", "0.5",
    "--drain", "1",
]  # fmt: skip


def fanout_section(argv: list[str]) -> str:
    args = fanout.parse_args(argv)
    started = time.monotonic()
    rows = fanout.measure(args)
    took = time.monotonic() - started
    tables = dict(fanout.report(rows, args))
    command = shlex.join([".venv/bin/python", "-m", "bench.fanout", *argv])
    parts = [
        "## Fan-out: one stream, many viewers, one server process",
        "",
        "One private redis-server and one server process per stack, each started once and kept for",
        "the whole section (restarted when a run leaves it with a backlog). A publisher process",
        "feeds the streams at an exact rate, every point's `t` its publish time; two client",
        "processes (bench/clients.py) hold the viewer sockets. Configurations with the same viewers",
        "and points/s form a group whose runs go round its stacks (run 1 of each, then run 2, ...),",
        "so a ratio pairs two runs taken moments apart; each stack's sockets and stream are kept",
        "from run to run (a restarted server, or a run that left points missing, gets new sockets",
        f"on a new stream). Each run is {args.warmup:g} s of warm-up and {args.seconds:g} s measured.",
        "Every configuration runs once first; then the other runs, group by group (compared stacks",
        f"first), while they fit in `--budget` ({args.budget:g} s). Every figure is the median of",
        f"the runs that completed ({args.runs} asked; a run failed or left out is listed under the",
        "first table), with (min-max). *Points/s",
        "delivered* sums all viewers over the window. Latency is receipt time minus publish time",
        "(one clock) for every point received in the window by up to 40 viewers per client process.",
        "CPU is from /proc over the window (100 = one core); *points/s per core* is points/s delivered",
        "divided by the server's CPU, so stacks compare at equal CPU. *Missing* counts points a viewer",
        f"did not have {args.drain:g} s after the publisher stopped (per run): lost for good, or still",
        "queued in the server when the clients gave up.",
        "",
        "```sh",
        command,
        "```",
        "",
        machine(),
        f"This section took {took / 60:.1f} min.",
        "",
        "### LiveCharts: one stream, N viewers",
        "",
        "daphne `livecharts.asgi` over `RedisPubSubChannelLayer`, one public stream fed through",
        "`streams.broadcast.Broadcaster` (50 ms ticks, history in Redis, no database writes); the",
        "viewers behave like live.js: a batch whose `prev` is not the last id makes the viewer",
        "re-subscribe with `after`, and history fills the gap. *Frames/s per socket* is 20 at one",
        "frame per 50 ms tick; fewer means the server widened its tick. The *overload* rows (more",
        "viewers or points than one process is meant to carry) show whether memory stays flat",
        "(*daphne RSS*, at the end of the window) and whether points are lost or only later.",
        "",
        tables["main"],
    ]
    if "failures" in tables:
        parts += ["", "Runs that failed (the server was restarted) or were left out:", "", tables["failures"]]
    if "compare" in tables:
        parts += [
            "",
            "### Against baselines and peers, same run, same viewer clients",
            "",
            "- **baseline (a)**, bench/baseline_asgi.py: the recipe users write today on Channels, a",
            "  feed calling `group_send` once per point and a consumer that `send_json`s each point it",
            "  is given (one frame per point, JSON-encoded per socket). Same daphne, layer and Redis.",
            "- **baseline (b)**, bench/raw_asgi.py: the raw stack with no LiveCharts logic, daphne + the",
            "  same layer + a bare `AsyncWebsocketConsumer` that joins a group and forwards each",
            "  message's pre-encoded text as one frame; the publisher encodes each tick's points once",
            "  and sends one `group_send` per tick. What LiveCharts adds costs the difference.",
            "- **peer (c) websockets**, bench/peer_websockets.py: a plain `websockets` server relaying",
            "  every point from Redis pub/sub (one PUBLISH per point, same rate) to its viewers with",
            "  `broadcast()`, one message per point.",
            "- **peer (c) SSE**, bench/peer_sse.py: a plain asyncio HTTP server, `text/event-stream`,",
            "  one `data:` event per point from a queue per viewer, same Redis relay.",
            "",
            "The LiveCharts row of each group is the run of the main table at the same viewers and",
            "points/s. *LiveCharts ÷ this* pairs runs with the same index; *per core* divides the",
            "points/s per server core. Server CPU is daphne's, or the peer's process; Redis is beside.",
            "Goals from issue 5: at least 50x baseline (a) per core (at the same CPU), at least 10x",
            "the peers' points/s at 500 viewers, at least 70% of baseline (b)'s points/s.",
            "",
            tables["compare"],
        ]
    if "dashboard" in tables:
        parts += [
            "",
            "### Dashboards: many streams per socket",
            "",
            "Every viewer subscribes to all the streams of the row on its one socket, each stream fed",
            "at the rate shown through the same Broadcaster. The server should send one frame per",
            "socket per tick holding every stream that moved, so *frames/s per socket* should stay",
            "near 20 at a 50 ms tick (fewer if it widens the tick under load) whatever the number of",
            "streams, and not 20 x streams.",
            "",
            tables["dashboard"],
        ]
    if "layers" in tables:
        parts += [
            "",
            "### Channel layers: `RedisPubSubChannelLayer` against `RedisChannelLayer`",
            "",
            "The same LiveCharts app and publisher; the second daphne is started with",
            "`LIVECHARTS_CHANNEL_LAYER=core` (livecharts/settings.py) and the publisher's Broadcaster",
            "sends through a `RedisChannelLayer` with the same hosts and prefix. The pub/sub rows are",
            "the main table's runs at the same viewers and points/s.",
            "",
            tables["layers"],
        ]
    return "\n".join(parts)


def replace_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip("\n") + "\n\n" + block + "\n"


# Each scenario: (name in docs/performance.md, function(quick) -> markdown section). Run in order.
SCENARIOS: list[tuple[str, Callable[[bool], str]]] = [
    ("fanout", lambda quick: fanout_section(QUICK_ARGS if quick else FANOUT_ARGS)),
    ("browser", browser.section),
    ("ingest", ingest.section),
    ("memory", memory.section),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (figures not for the docs)")
    parser.add_argument(
        "--doc", type=Path, default=DOC, help="the file to update (default docs/performance.md)"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenario names (default: all of "
        + ", ".join(name for name, _ in SCENARIOS)
        + ")",
    )
    args = parser.parse_args(argv)
    wanted = {name for name in args.only.split(",") if name} or {name for name, _ in SCENARIOS}
    unknown = wanted - {name for name, _ in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    for name, run in SCENARIOS:
        if name not in wanted:
            continue
        section = run(args.quick)
        print(section)
        # Written after each scenario, so an interrupted run keeps what it measured.
        text = args.doc.read_text() if args.doc.exists() else ""
        args.doc.write_text(replace_section(text, name, section))
        print(
            f"\n{name}: wrote {args.doc} ({(time.monotonic() - started) / 60:.1f} min so far)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()

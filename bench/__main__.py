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

from bench import browser, fanout
from bench.report import machine

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
# Bounds the whole run (make bench): fan-out with baseline (a) takes about 8 minutes.
FANOUT_ARGS = [
    "--viewers", "10,100,500,1000",
    "--rates", "100,1000",
    "--runs", "3",
    "--seconds", "5",
    "--warmup", "1",
    "--drain", "3",
    "--baseline",
    "--baseline-viewers", "100",
]  # fmt: skip
QUICK_ARGS = ["--viewers", "10,100", "--rates", "100", "--runs", "3", "--seconds", "2", "--warmup", "1"]


def fanout_section(argv: list[str]) -> str:
    args = fanout.parse_args(argv)
    started = time.monotonic()
    rows = fanout.measure(args)
    took = time.monotonic() - started
    command = shlex.join([".venv/bin/python", "-m", "bench.fanout", *argv])
    parts = [
        "## Fan-out: one stream, many viewers, one daphne",
        "",
        "One daphne process (`livecharts.asgi`) over `RedisPubSubChannelLayer` on a private",
        "redis-server, one public stream fed by a publisher process through",
        "`streams.broadcast.Broadcaster` at an exact rate (50 ms ticks, no database writes), N viewer",
        "sockets in one or two client processes (bench/clients.py) that behave like live.js:",
        "a batch whose `prev` is not the last id makes the viewer re-subscribe with `after`. Each run",
        f"is {args.warmup:g} s of warm-up and {args.seconds:g} s measured; every figure is the median of",
        f"{args.runs} runs with (min-max). Latency is receipt time minus the point's publish time",
        "(one clock), for every point received in the window by up to 40 viewers per client",
        "process. CPU is from /proc over the window (100 = one core). *Missing* counts points a",
        f"viewer did not have {args.drain:g} s after the publisher stopped (per run): lost for good,",
        "or still queued in daphne when the clients gave up.",
        "",
        "```sh",
        command,
        "```",
        "",
        machine(),
        f"This section took {took / 60:.1f} min.",
        "",
        fanout.table(rows, args),
    ]
    if args.baseline:
        parts += [
            "",
            "### Against baseline (a): one `group_send` and one frame per point",
            "",
            "bench/baseline_asgi.py is the recipe users write today on Channels: a consumer that",
            "joins the stream's group and `send_json`s each point it is given, and a feed that calls",
            "`group_send` once per point. Same daphne, same Redis, same clients (one point per frame),",
            "runs interleaved with ours; the ratios pair runs with the same index.",
            "",
            fanout.baseline_table(rows, args),
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

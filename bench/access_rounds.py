"""What a round of the access watcher costs: its queries compiled once and its sessions decoded
once, against both done every round.

    .venv/bin/python -m bench.access_rounds
    .venv/bin/python -m bench.access_rounds --database-url postgres://postgres@127.0.0.1:5432/test

Every daphne process re-checks every open viewing once a second (streams/access/revocation.py),
whether its viewers are one or a thousand. The round's slug queries are compiled once per user
and set of slugs (streams/access/compiled.py), and a session's text decoded once
(revocation.decoded_session); the baseline, in the same process and database, builds and
compiles each query and decodes each session every round, as the round did before.
Seeds a throwaway database (a temporary SQLite file, or a fresh schema in the given PostgreSQL
database, dropped afterwards), then times `check_viewings` on the thread's CPU clock for each
kind of round. Prints a markdown table; the ratio is what to compare across machines.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.range import setup_django, throwaway_database


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.access_rounds", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=200, help="timed rounds of each kind and way")
    parser.add_argument("--users", type=int, default=100, help="signed-in users in the largest round")
    parser.add_argument("--database-url", default="", help="postgres://… (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")
    return args


def seed(*, users: int) -> dict[str, list[Any]]:
    """Streams, users and their sessions; returns each kind of round's viewings."""
    from django.contrib.auth.models import User

    from streams.access.revocation import Viewing
    from streams.models import Stream
    from tests.sessions import session_of

    public = [
        Stream.objects.create(slug=f"public-{n}", title=f"Public {n}", visibility=Stream.Visibility.PUBLIC)
        for n in range(20)
    ]
    restricted = Stream.objects.create(slug="plant", title="Plant", visibility=Stream.Visibility.RESTRICTED)
    signed_in = []
    for n in range(users):
        user = User.objects.create_user(f"operator{n}")
        restricted.viewers.add(user)
        session = session_of(user)
        signed_in += [Viewing(session, user.pk, "plant"), Viewing(session, user.pk, public[0].slug)]
    return {
        "1 anonymous viewer of a public stream": [Viewing(None, None, public[0].slug)],
        "anonymous viewers of 20 public streams": [Viewing(None, None, stream.slug) for stream in public],
        f"{users} signed-in users, each on a restricted and a public stream": signed_in,
    }


def cpu_per_round(check: Callable[[], Any], *, rounds: int) -> list[float]:
    """Thread CPU µs of each of `rounds` calls, after one untimed."""
    check()
    spent = []
    for _ in range(rounds):
        begin = time.thread_time_ns()
        check()
        spent.append((time.thread_time_ns() - begin) / 1000)
    return spent


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with throwaway_database(args.database_url) as label:
        setup_django()
        from streams.access import revocation
        from streams.access.compiled import CompiledTextQueries

        def as_before(viewings: list[Any]) -> Callable[[], Any]:
            """The round as it was: every query built and compiled, every session decoded."""
            revocation.QUERIES = CompiledTextQueries(size=0)

            def check() -> Any:
                revocation.decoded_session.cache_clear()
                return revocation.check_viewings(viewings)

            return check

        def kept(viewings: list[Any]) -> Callable[[], Any]:
            revocation.QUERIES = CompiledTextQueries()
            revocation.decoded_session.cache_clear()
            return lambda: revocation.check_viewings(viewings)

        rows = []
        for kind, viewings in seed(users=args.users).items():
            figures = {}
            for way, make in (("before", as_before), ("kept", kept)):
                check = make(viewings)
                assert check() == {}, "every seeded viewer may see their streams"
                spent = cpu_per_round(check, rounds=args.rounds)
                figures[way] = (statistics.median(spent), min(spent), max(spent))
            rows.append((kind, len(viewings), figures))
    print(
        f"Database: {label}; {args.rounds} rounds of each kind and way; "
        "thread CPU µs a round, median (min-max).\n"
    )
    print("| round | viewings | built and decoded each round µs | kept between rounds µs | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, count, figures in rows:
        before, kept_ = figures["before"], figures["kept"]
        print(
            f"| {kind} | {count:,} | {before[0]:,.0f} ({before[1]:,.0f}-{before[2]:,.0f}) "
            f"| {kept_[0]:,.0f} ({kept_[1]:,.0f}-{kept_[2]:,.0f}) | {before[0] / kept_[0]:.1f}x |"
        )


if __name__ == "__main__":
    main()

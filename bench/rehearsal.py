"""A rehearsal of the production topology on loopback, started the way docs/deploy.md says.

    .venv/bin/python -m bench.rehearsal [--viewers 500] [--streams 20] [--write-doc]

What runs: nginx from deploy/nginx/livecharts.conf (TLS, a throwaway certificate), three daphne
and two ingest workers with the commands of deploy/systemd's units and the environment of
deploy/livecharts.env (only addresses, secrets and host names replaced), PostgreSQL (a fresh
database on 127.0.0.1:5432), Redis for history, leases and inboxes under Sentinel (a master,
its replica, three sentinels), and a channel layer over two more Redis shards. Viewers connect
through nginx and behave like live.js: they chain batches by `prev`, subscribe again with
`after` when a batch is missing, and reconnect with its backoff and jitter.

Then faults, one at a time, each once every viewer is live again: SIGKILL of one daphne, of
one ingest worker, of the Redis master. Per fault the report says how long viewers were without
new points (from the kill to the first point generated after it) and, at the end, whether any
viewer's chart lost or repeated a point compared with what the database stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shlex
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg

from tests.processes import (
    BIN,
    NGINX_MAIN,
    ROOT,
    Nginx,
    PortTaken,
    Stack,
    free_port,
    on_free_port,
    port_taken,
    start_redis,
)
from tests.sentinel import sentinel_url, start_replica, start_sentinel, wait_promoted

UNITS = ROOT / "deploy" / "systemd"
ENV_FILE = ROOT / "deploy" / "livecharts.env"
DOC = ROOT / "docs" / "deploy.md"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
RATE = 10  # points/s per stream
# live.js (streams/static/streams/backoff.js): full jitter under an exponential bound.
BACKOFF_BASE, BACKOFF_CAP = 0.5, 15.0
# A viewer not back within this long after a fault counts as not back.
BACK_WITHIN_SECONDS = 60.0
MARK_OPEN, MARK_CLOSE = "<!-- rehearsal -->", "<!-- /rehearsal -->"


def unit_command(unit: str, *, instance: str = "") -> list[str]:
    """The ExecStart of a shipped unit, with this checkout's paths: what systemd would run."""
    text = (UNITS / unit).read_text()
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    line = line.removeprefix("ExecStart=").replace("%i", instance)
    line = line.replace("/srv/livecharts/.venv/bin", str(BIN)).replace("/srv/livecharts", str(ROOT))
    return shlex.split(line)


def unit_commands(unit: str) -> list[list[str]]:
    text = (UNITS / unit).read_text()
    lines = [line.removeprefix("ExecStart=") for line in text.splitlines() if line.startswith("ExecStart=")]
    return [
        shlex.split(line.replace("/srv/livecharts/.venv/bin", str(BIN)).replace("/srv/livecharts", str(ROOT)))
        for line in lines
    ]


def shipped_env() -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if line and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


@dataclass
class Topology:
    tmp: Path
    env: dict[str, str]
    database: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    daphne_ports: list[int] = field(default_factory=list)
    master_port: int = 0
    replica_port: int = 0
    nginx: Nginx | None = None

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.kill()
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"lc_rehearsal_{secrets.token_hex(4)}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_until(check: Any, *, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not in {timeout} s")
        time.sleep(0.1)


def bring_up(topology: Topology, *, streams: int) -> None:
    tmp, env = topology.tmp, topology.env
    # Each server on a fresh port again when another process took the picked one first.
    topology.master_port, topology.procs["redis-master"] = on_free_port(start_redis)
    master = topology.master_port
    topology.replica_port, topology.procs["redis-replica"] = on_free_port(
        lambda port: start_replica(port, master)
    )
    sentinels = []
    for _ in range(3):
        port, proc = on_free_port(lambda port: start_sentinel(tmp, port=port, master_port=master))
        sentinels.append(port)
        topology.procs[f"sentinel-{port}"] = proc
    shards = []
    for index in range(2):
        port, topology.procs[f"shard-{index}"] = on_free_port(start_redis)
        shards.append(port)
    # The proxy's tuning survives a start on other ports (which writes its config again).
    tuned = NGINX_MAIN.replace("worker_connections 512;", "worker_connections 16384;").replace(
        "worker_processes 1;", "worker_processes 1;\nworker_rlimit_nofile 65536;"
    )
    nginx = topology.nginx = Nginx(binary=nginx_binary(), tmp=tmp / "nginx", main=tuned)
    env.update(
        {
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "CSRF_TRUSTED_ORIGINS": f"https://127.0.0.1:{nginx.https_port}",
            "DATABASE_URL": f"{POSTGRES}/{topology.database}",
            "REDIS_URL": sentinel_url(sentinels),
            "LIVECHARTS_LAYER_REDIS_URLS": ",".join(f"redis://127.0.0.1:{port}/0" for port in shards),
            "LIVECHARTS_REDIS_PREFIX": f"rehearsal-{secrets.token_hex(4)}",
            "LIVECHARTS_METRICS_TOKEN": secrets.token_urlsafe(16),
            "SECURE_HSTS_SECONDS": "0",
        }
    )
    for argv in unit_commands("livecharts-migrate.service"):  # migrate, collectstatic
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)}: {result.stderr[-2000:]}")
    seed(env, streams=streams)
    for index in (1, 2):
        topology.start(f"ingest-{index}", unit_command("livecharts-ingest@.service", instance=str(index)))
    start_daphnes(topology)
    nginx.write(upstreams=topology.daphne_ports, static_root=ROOT / "staticfiles")
    nginx.start()


def start_daphnes(topology: Topology, *, count: int = 3, attempts: int = 5) -> None:
    """`count` daphnes as the unit runs them, started together, each on a free port; one whose
    port another process took first (it exits saying so) starts again on a fresh one. Their
    ports go to nginx's config after."""
    topology.daphne_ports = [free_port() for _ in range(count)]
    starts: dict[int, int] = {}  # daphne index -> where its log started

    def start(index: int) -> None:
        name = f"daphne-{index}"
        path = topology.tmp / f"{name}.log"
        starts[index] = path.stat().st_size if path.exists() else 0
        port = topology.daphne_ports[index - 1]
        topology.start(name, unit_command("livecharts-daphne@.service", instance=str(port)))

    def listening(index: int) -> bool:
        proc = topology.procs[f"daphne-{index}"]
        if proc.poll() is None:
            # Its own word, not an open port: the port may be another process's.
            return f"Listening on TCP address 127.0.0.1:{topology.daphne_ports[index - 1]}" in said(index)
        if port_taken(said(index)):
            raise PortTaken(said(index))
        raise RuntimeError(f"daphne-{index} exited: {said(index)}")

    def said(index: int) -> str:
        with (topology.tmp / f"daphne-{index}.log").open("rb") as log:
            log.seek(starts[index])
            return log.read().decode(errors="replace")

    for index in range(1, count + 1):
        start(index)
    for index in range(1, count + 1):
        for attempt in range(1, attempts + 1):
            try:
                wait_until(
                    lambda index=index: listening(index), what=f"daphne-{index} listening", timeout=120
                )
                break
            except PortTaken:
                if attempt == attempts:
                    raise
                topology.daphne_ports[index - 1] = free_port()
                start(index)


def nginx_binary() -> str:
    for candidate in ("/usr/sbin/nginx", "nginx"):
        with suppress(OSError):
            subprocess.run([candidate, "-v"], capture_output=True, timeout=10, check=True)
            return candidate
    raise RuntimeError("nginx is not installed (apt-get install -y nginx-light)")


def seed(env: dict[str, str], *, streams: int) -> None:
    specs = [
        {
            "slug": f"line-{index:02d}",
            "title": f"Line {index}",
            "feed_kind": "simulate",
            "feed_settings": {"rate": RATE, "series": ["a"]},
            "visibility": "public",
            "window_points": 5000,
        }
        for index in range(streams)
    ]
    code = (
        "import json\nfrom streams.models import Stream\n"
        f"for spec in json.loads({json.dumps(json.dumps(specs))}):\n"
        "    stream = Stream(**spec); stream.full_clean(); stream.save()\n"
    )
    stack = Stack(workdir=Path(tempfile.gettempdir()), env=env)
    result = stack.manage("shell", "-c", code)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])


class Viewer:
    """One browser tab: one stream, live.js's resume rules and reconnect backoff."""

    def __init__(self, url: str, origin: str, slug: str, context: ssl.SSLContext) -> None:
        self.url, self.origin, self.slug, self.context = url, origin, slug, context
        self.last: str | None = None
        self.last_key: tuple[int, int] | None = None
        self.times: list[float] = []  # what the chart shows, in order (data times, ms)
        self.arrivals: list[tuple[float, float]] = []  # (wall time received, data time ms)
        self.reconnects = 0
        self.closes: Counter[str] = Counter()  # why the socket ended: close code, or the error

    async def run(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        attempt = 0
        while not stop.is_set():
            opened = time.monotonic()
            try:
                async with connect(
                    self.url, origin=self.origin, ssl=self.context, open_timeout=10, max_size=None
                ) as socket:
                    await socket.send(
                        json.dumps({"op": "subscribe", "stream": self.slug, "after": self.last})
                    )
                    while not stop.is_set():
                        try:
                            text = await asyncio.wait_for(socket.recv(), timeout=0.5)
                        except TimeoutError:
                            continue
                        frame = orjson.loads(text)
                        if frame.get("op") == "points":
                            await self.take(socket, frame)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else "none"
                self.closes[f"close {code}"] += 1
            except (OSError, InvalidStatus, TimeoutError) as error:
                self.closes[type(error).__name__] += 1
            if stop.is_set():
                return
            self.reconnects += 1
            attempt = 0 if time.monotonic() - opened > 10 else attempt + 1
            await asyncio.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))

    async def take(self, socket: Any, frame: dict[str, Any]) -> None:
        now = time.time()
        for batch in frame["data"]:
            if batch["stream"] != self.slug:
                continue
            if self.last is not None and batch["prev"] not in (self.last, None):
                # A batch went missing (the live path is at-most-once): ask again after the last id.
                await socket.send(json.dumps({"op": "subscribe", "stream": self.slug, "after": self.last}))
                return
            key = tuple(int(part) for part in batch["id"].split("-"))
            if self.last_key is not None and key <= self.last_key:
                continue  # seen already (a backfill overlapping what was live)
            self.times.extend(batch["t"])
            self.arrivals.extend((now, t) for t in batch["t"])
            self.last, self.last_key = batch["id"], key  # type: ignore[assignment]


@dataclass
class Fault:
    name: str
    at: float  # wall time of the kill
    back_after: list[float] = field(default_factory=list)  # per viewer back, seconds
    not_back: int = 0


def back_after(viewer: Viewer, at: float) -> float | None:
    """Seconds from the fault until the viewer had a point generated after it."""
    for received, t in viewer.arrivals:
        if received >= at and t / 1000 > at:
            return received - at
    return None


async def all_live(viewers: list[Viewer], *, since: float, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(back_after(viewer, since) is None for viewer in viewers):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)


async def rehearse(topology: Topology, *, viewers_count: int, streams: int, settle: float) -> dict[str, Any]:
    assert topology.nginx is not None
    context = ssl.create_default_context(cafile=str(topology.nginx.cert))
    origin = topology.nginx.base_url
    viewers = [
        Viewer(topology.nginx.ws_url, origin, f"line-{index % streams:02d}", context)
        for index in range(viewers_count)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(viewer.run(stop)) for viewer in viewers]
    started = time.time()
    cpu_started, wall_started = time.process_time(), time.monotonic()
    await all_live(viewers, since=started + 1, seconds=120)
    never = [viewer.slug for viewer in viewers if back_after(viewer, started + 1) is None]
    faults: list[Fault] = []
    plan = [
        ("daphne (SIGKILL)", lambda: topology.kill("daphne-1")),
        ("ingest worker (SIGKILL)", lambda: topology.kill("ingest-1")),
        ("Redis master (SIGKILL)", lambda: topology.kill("redis-master")),
    ]
    for name, kill in plan:
        await asyncio.sleep(settle)
        fault = Fault(name=name, at=time.time())
        kill()
        if "Redis" in name:
            await asyncio.to_thread(wait_promoted, topology.replica_port)
        await all_live(viewers, since=fault.at, seconds=BACK_WITHIN_SECONDS)
        for viewer in viewers:
            seconds = back_after(viewer, fault.at)
            if seconds is None:
                fault.not_back += 1
            else:
                fault.back_after.append(seconds)
        faults.append(fault)
    await asyncio.sleep(settle)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    # The viewers' own process: near 100% of a core, it (not the servers) limits what is seen.
    client_cpu = (time.process_time() - cpu_started) / (time.monotonic() - wall_started)
    return {
        "viewers": viewers,
        "faults": faults,
        "started": started,
        "never_live": len(never),
        "client_cpu": client_cpu,
    }


def stored_times(database: str) -> dict[str, list[float]]:
    """Every stored point's time (ms) per stream, from PostgreSQL, in id order."""
    out: dict[str, list[float]] = {}
    with psycopg.connect(f"{POSTGRES}/{database}") as connection:
        rows = connection.execute(
            "SELECT s.slug, b.data FROM streams_storedbatch b JOIN streams_stream s ON s.id = b.stream_id "
            "ORDER BY s.slug, b.last_ms, b.last_seq"
        ).fetchall()
    for slug, data in rows:
        out.setdefault(slug, []).extend(round(t * 1000, 3) for t in json.loads(data)["t"])
    return out


def exactness(viewers: list[Viewer], stored: dict[str, list[float]]) -> tuple[int, int, int]:
    """(viewers checked, points lost, points repeated) over each viewer's span of the chart."""
    lost = repeated = checked = 0
    for viewer in viewers:
        if not viewer.times:
            continue
        checked += 1
        shown = Counter(round(t, 3) for t in viewer.times)
        repeated += sum(count - 1 for count in shown.values() if count > 1)
        first, last = min(shown), max(shown)
        expected = [t for t in stored.get(viewer.slug, []) if first <= t <= last]
        lost += sum(1 for t in expected if t not in shown)
    return checked, lost, repeated


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(
    result: dict[str, Any], *, args: argparse.Namespace, lost: int, repeated: int, checked: int
) -> str:
    lines = [
        f"`python -m bench.rehearsal --viewers {args.viewers} --streams {args.streams}` on "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}: nginx, 3 daphne, 2 ingest workers, "
        f"PostgreSQL, Redis under Sentinel (master, replica, 3 sentinels), a layer over 2 shards; "
        f"{args.viewers} viewers over {args.streams} streams of {RATE} points/s through nginx (TLS).",
        "",
        f"Live before the first fault: {args.viewers - result['never_live']} of {args.viewers} viewers.",
        "",
        "| fault | viewers back | without new points: p50 / p95 / max |",
        "| --- | ---: | ---: |",
    ]
    for fault in result["faults"]:
        back = len(fault.back_after)
        lines.append(
            f"| {fault.name} | {back} of {back + fault.not_back} | "
            f"{percentile(fault.back_after, 0.5):.1f} / {percentile(fault.back_after, 0.95):.1f} / "
            f"{max(fault.back_after, default=float('nan')):.1f} s |"
        )
    reconnects = sum(viewer.reconnects for viewer in result["viewers"])
    closes = sum((viewer.closes for viewer in result["viewers"]), Counter())
    why = ", ".join(f"{count} {reason}" for reason, count in closes.most_common()) or "none"
    lines += [
        "",
        f"Compared with what PostgreSQL stored, over each viewer's span: {lost} points lost and "
        f"{repeated} repeated across {checked} viewers ({reconnects} reconnects in all: {why}). The viewers' "
        f"own process (one, TLS included) used {result['client_cpu']:.0%} of a core.",
    ]
    return "\n".join(lines)


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    block = f"{MARK_OPEN}\n{text}\n{MARK_CLOSE}"
    if MARK_OPEN in doc:
        doc = re.sub(re.escape(MARK_OPEN) + r".*?" + re.escape(MARK_CLOSE), lambda _: block, doc, flags=re.S)
    else:
        doc += f"\n## Rehearsal of the production topology\n\n{block}\n"
    DOC.write_text(doc)


def run(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="lc-rehearsal-") as tmp, postgres_database() as database:
        env = {
            **os.environ,
            **shipped_env(),
            "DJANGO_SETTINGS_MODULE": "livecharts.settings",
            "PYTHONUNBUFFERED": "1",
        }
        topology = Topology(tmp=Path(tmp), env=env, database=database)
        try:
            bring_up(topology, streams=args.streams)
            result = asyncio.run(
                rehearse(topology, viewers_count=args.viewers, streams=args.streams, settle=args.settle)
            )
            time.sleep(2.5)  # the database is written about a second behind the window
            checked, lost, repeated = exactness(result["viewers"], stored_times(database))
            summary = {"checked": checked, "lost": lost, "repeated": repeated}
            return report(result, args=args, **summary), {**result, **summary}
        except BaseException:
            for name in topology.procs:
                if name.startswith(("daphne", "ingest")):
                    print(f"--- {name}\n{topology.log(name)}", file=sys.stderr)
            raise
        finally:
            topology.stop_all()
            keep = os.environ.get("REHEARSAL_KEEP_LOGS")
            if keep:  # for a look afterwards: every process's log
                import shutil

                shutil.copytree(
                    tmp, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.rdb", "*.pem")
                )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.rehearsal", description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of steady viewing between faults")
    parser.add_argument("--write-doc", action="store_true", help="write the report into docs/deploy.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    text, _ = run(args)
    print(text)
    if args.write_doc:
        write_doc(text)


if __name__ == "__main__":
    main()

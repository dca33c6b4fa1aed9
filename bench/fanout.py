"""Fan-out: how many points one server process delivers to N viewers, against the alternatives.

    .venv/bin/python -m bench.fanout --viewers 10,100,500,1000 --rates 100,1000 --runs 3 \
        --overload 4000x1000,100x10000 --compare raw:500x1000,websockets:500x1000 \
        --dashboard 100x10x100

One private redis-server (a free port, nothing saved; or --redis-url with a unique key prefix,
deleted afterwards), a throwaway SQLite file with the public streams, and one server process
per stack compared, each started once and kept for the whole bench (restarted when a run
leaves it with a backlog or it refuses viewers):

- `livecharts`: daphne `livecharts.asgi` over RedisPubSubChannelLayer; `core`: the same over
  RedisChannelLayer (LIVECHARTS_CHANNEL_LAYER=core);
- `baseline`: baseline (a), daphne bench.baseline_asgi (one group_send, one frame per point);
- `raw`: baseline (b), daphne bench.raw_asgi (a bare consumer forwarding pre-encoded frames,
  one group_send per tick);
- `websockets` and `sse`: the peers (c), bench/peer_websockets.py and bench/peer_sse.py (one
  message or event per point, relayed from Redis pub/sub).

One publisher process (bench/publisher.py) and two viewer-client processes (bench/clients.py)
are also kept for the whole bench and told what to do run by run. Configurations with the same
viewers (and streams per viewer) form a group; a group's runs go round its stacks (run 1 of
each, then run 2, ...), so ratios pair runs taken moments apart, and each stack's viewer
sockets and streams are kept from run to run, whatever the points/s. For each run the
publisher feeds the streams at an exact rate and after a warm-up the window is measured:
points and frames delivered per second (all viewers), publish-to-receipt latency, the CPU of
the server, redis and the clients (/proc), the server's RSS at the end of the window, and
points missing after gap-fill and a drain. Every configuration runs once first, then further
runs go group by group while they fit in --budget. Every process is bounded in time and
stopped at the end; everything is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import redis

from bench import cclients
from tests.processes import (
    BIN,
    PortTaken,
    Stack,
    free_port,
    make_stack,
    on_free_port,
    seed_streams,
    start_redis,
)

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
CLIENT_PROCESSES = 2
START_DELAY = 0.3  # seconds between READY and the publisher's first point
# Viewers x points/s one daphne is meant to carry: issue 16 §2's 2,000 x 1,000 (after issue 5's
# 1,000 x 1,000), the largest configuration of bench/fanout_goals.py. Rows beyond it are overload.
TARGET = (2000, 1000)
# Grid rows with more viewers than this run last: the costliest, likeliest to leave a server to restart.
LAST_AFTER_VIEWERS = 1000


@dataclass(frozen=True)
class Target:
    """One stack under test: how to start its server and how publisher and viewers talk to it."""

    name: str
    label: str
    client: str  # bench/clients.py protocol
    publisher: str  # bench/publisher.py protocol
    app: str = ""  # an ASGI app for daphne, or
    module: str = ""  # a peer server module (python -m)
    layer: str = "pubsub"
    env: dict[str, str] = field(default_factory=dict)


TARGETS = {
    target.name: target
    for target in (
        Target("livecharts", "LiveCharts", "livecharts", "livecharts", app="livecharts.asgi:application"),
        Target(
            "core",
            "LiveCharts on RedisChannelLayer",
            "livecharts",
            "livecharts",
            app="livecharts.asgi:application",
            layer="core",
            env={"LIVECHARTS_CHANNEL_LAYER": "core"},
        ),
        Target("baseline", "baseline (a)", "point", "point", app="bench.baseline_asgi:application"),
        Target("raw", "baseline (b)", "batches", "raw", app="bench.raw_asgi:application"),
        Target("websockets", "peer (c) websockets", "point", "peer", module="bench.peer_websockets"),
        Target("sse", "peer (c) SSE", "sse", "peer", module="bench.peer_sse"),
    )
}


@dataclass(frozen=True)
class Config:
    """One measured configuration: a stack, its viewers, points/s per stream, streams each."""

    target: str
    viewers: int
    rate: int
    streams: int = 1

    @property
    def sockets(self) -> tuple[str, int, int]:
        """Configurations that differ only in points/s share their viewers' sockets and streams."""
        return (self.target, self.viewers, self.streams)

    def slugs(self, attempt: int) -> list[str]:
        """The streams of the `attempt`th pool of viewers (a fresh pool gets fresh streams)."""
        return [f"{self.target}-{self.viewers}-{self.streams}-{attempt}-{i}" for i in range(self.streams)]


def cpu_seconds(pid: int) -> float:
    """CPU time of a process so far, every thread (those that ended too), to the nanosecond.

    From the kernel's CPU-time clock of the process (clock_getcpuclockid(3): the clock id
    glibc builds for a pid, read by clock_gettime), the scheduler's own run time of the whole
    thread group. /proc/<pid>/stat counts in 10 ms ticks: a server at 3% of a core over a 3 s
    window is 9 ticks there, ±10%. Falls back to those ticks where the clock cannot be read."""
    try:
        return time.clock_gettime_ns(process_cpu_clock(pid)) / 1e9
    except OSError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_cpu_clock(pid: int) -> int:
    """The clock id of `pid`'s CPU time, as glibc's clock_getcpuclockid makes it (Linux
    include/linux/posix-timers.h: MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED))."""
    cpuclock_sched = 2
    return ((~pid) << 3) | cpuclock_sched


def waited_seconds(pid: int) -> float:
    """Seconds a process has been ready to run but waiting for a core (/proc schedstat): on a
    machine shared with other work, what its figures lost to that work."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Server:
    """One server process (daphne or a peer) for one target; restarted when a run leaves it busy."""

    stack: Stack
    target: Target
    redis_url: str
    prefix: str
    generation: int = 0

    @property
    def name(self) -> str:
        return f"server-{self.target.name}"

    @property
    def pid(self) -> int:
        return self.stack.procs[self.name].pid

    @property
    def url(self) -> str:
        return self.stack.base_url if self.target.client == "sse" else self.stack.ws_url

    def launch(self) -> None:
        """Start the process; `ready()` waits for it."""
        self.generation += 1  # sockets to an earlier process are gone
        if self.target.app:
            argv = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.stack.port), self.target.app]
        else:
            argv = [sys.executable, "-m", self.target.module, "--port", str(self.stack.port)]
            argv += ["--redis-url", self.redis_url, "--prefix", self.prefix]
        self.stack.start(self.name, argv)

    def ready(self, *, attempts: int = 5) -> None:
        """Until the launched process answers /healthz (baseline and raw servers are not Django).
        Its port was free when picked, or when the process before it let it go: another process
        may have taken it since, and then it starts again on a fresh port (viewers are given
        the URL at each run, and the new generation gets new sockets)."""
        for attempt in range(1, attempts + 1):
            try:
                self.stack.wait_http(path="/healthz")
                return
            except PortTaken:
                self.stack.procs.pop(self.name).wait(timeout=30)
                if attempt == attempts:
                    raise
                print(f"{self.name}: port {self.stack.port} was taken, starting on another", file=sys.stderr)
                self.stack.port = free_port()
                self.launch()

    @property
    def stale(self) -> bool:
        """Stopped (after a backlog or a failure): start it again before its next run."""
        return self.name not in self.stack.procs

    def stop(self) -> None:
        self.stack.stop(self.name, sig=signal.SIGKILL)  # its backlog is of no use

    def restart(self) -> None:
        self.stop()
        self.launch()
        self.ready()

    def settled(self, seconds: float = 1.5) -> bool:
        """Wait for the server to go quiet (under 10% of a core); False if it is still busy."""
        return went_quiet(lambda: cpu_seconds(self.pid), seconds)


def went_quiet(cpu: Callable[[], float], seconds: float) -> bool:
    """Wait, `seconds` at most, for a process whose CPU seconds `cpu` reads to use under 10% of
    a core over 0.2 s; False if it is still busy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = cpu()
        time.sleep(0.2)
        if cpu() - before < 0.02:
            return True
    return False


def drop_keys(url: str, prefix: str) -> None:
    """Delete what a run left under its key prefix (a shared Redis keeps other people's keys)."""
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def remove_workdir(workdir: Path, *, keep: bool) -> None:
    """The run's work directory removed, or kept (and said where) for a look afterwards."""
    if keep:
        print(f"work directory kept: {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def private_redis(url: str) -> Iterator[tuple[str, int | None]]:
    """(url, pid): a private redis-server on a free port, or the given one (pid unknown)."""
    if url:
        yield url, None
        return
    # On a fresh port again when another process took the picked one before the server bound it.
    port, proc = on_free_port(start_redis)
    try:
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Bed(NamedTuple):
    """Where one bench runs: its stack (not migrated), key prefix and Redis (pid None if shared)."""

    stack: Stack
    prefix: str
    redis_url: str
    redis_pid: int | None


@contextlib.contextmanager
def bench_bed(name: str, *, redis_url: str, keep: bool, env: dict[str, str]) -> Iterator[Bed]:
    """A work directory and key prefix of the bench's own, a Redis (private unless `redis_url`),
    and a stack with production settings (plain http on loopback) and `env` on top; afterwards the
    keys are dropped, the private Redis stopped and the directory removed (or kept)."""
    prefix = f"bench-{name}-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        with private_redis(redis_url) as (url, redis_pid):
            stack = make_stack(workdir=workdir, redis_url=url, prefix=prefix)
            stack.env.update(
                {
                    "DEBUG": "false",
                    "SECRET_KEY": secrets.token_hex(32),
                    "SECURE_SSL_REDIRECT": "false",  # plain http on loopback
                    **env,
                }
            )
            try:
                yield Bed(stack, prefix, url, redis_pid)
            finally:
                drop_keys(url, prefix)
    finally:
        remove_workdir(workdir, keep=keep)


class ViewersRefused(Exception):
    """A client process could not connect or subscribe its viewers (the server said no)."""


class Worker:
    """A bench process kept for the whole bench (publisher or clients), driven line by line:
    `python -m module`, or the compiled viewer clients (`binary`, bench/cclients.c)."""

    def __init__(self, module: str, env: dict[str, str], binary: Path | None = None) -> None:
        self.module, self.env, self.binary = module, env, binary
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def kind(self) -> str:
        return "compiled" if self.binary is not None else "python"

    async def start(self) -> None:
        argv = [str(self.binary)] if self.binary is not None else [sys.executable, "-m", self.module]
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            env=self.env,
            cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2**28,  # result lines carry latency samples
        )

    async def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, prefix: str, seconds: float) -> str:
        return (await self.expect_any((prefix,), seconds))[1]

    async def expect_any(self, prefixes: tuple[str, ...], seconds: float) -> tuple[str, str]:
        """(prefix, rest of the line) of the first line starting with one of `prefixes`."""
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = (await asyncio.wait_for(self.proc.stdout.readline(), seconds)).decode()
            if not line:
                assert self.proc.stderr is not None
                error = (await self.proc.stderr.read()).decode()[-2000:]
                raise RuntimeError(f"{self.module} ended before {' or '.join(prefixes)}: {error}")
            for prefix in prefixes:
                if line.startswith(prefix):
                    return prefix, line[len(prefix) :].strip()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(share * len(values)))]


class Bench:
    def __init__(self, args: argparse.Namespace, *, servers: dict[str, Server], env: dict[str, str]) -> None:
        self.args, self.servers, self.env = args, servers, env
        self.publisher = Worker("bench.publisher", env)
        self.clients = [Worker("bench.clients", env) for _ in range(CLIENT_PROCESSES)]
        # The compiled clients for the protocols they speak (bench/cclients.c): all of them, or
        # (--clients both) one beside one Python process, each holding half the viewers.
        self.cclients: list[Worker] = []
        binary = getattr(args, "binary", None)
        if binary is not None and args.clients != "python":
            count = CLIENT_PROCESSES if args.clients == "compiled" else 1
            self.cclients = [Worker("bench.cclients", env, binary) for _ in range(count)]
        self.closed: list[str] = []  # pools replaced in the current group, closed with it
        self.plan: list[Config] = []
        self.attempts: dict[tuple, int] = {}  # pools each Config.sockets had: its streams' number
        self.group_seconds: dict[str, float] = {}  # wall time of each group (viewers x streams)

    @property
    def workers(self) -> list[Worker]:
        return [self.publisher, *self.clients, *self.cclients]

    def viewer_workers(self, target: Target) -> list[Worker]:
        """The client processes that hold this target's viewers (two)."""
        if not self.cclients or target.client not in cclients.PROTOCOLS:
            return self.clients
        return [*self.cclients, *self.clients][:CLIENT_PROCESSES]

    async def start_workers(self) -> None:
        for worker in self.workers:
            await worker.start()

    async def restart_workers(self) -> None:
        for worker in self.workers:
            await worker.stop()
        await self.start_workers()

    async def stop_workers(self) -> None:
        for worker in self.workers:
            await worker.stop()

    async def run_once(self, config: Config, run: int, redis_pid: int | None, pool: Pool) -> dict[str, Any]:
        args, target, server = self.args, TARGETS[config.target], self.servers[config.target]
        slugs = config.slugs(pool.attempt)
        seconds = args.warmup + args.seconds
        per_stream = round(config.rate * seconds)
        command = {"protocol": target.publisher, "layer": target.layer, "streams": slugs}
        command |= {"rate": config.rate, "seconds": seconds, "fresh": pool.runs == 0}
        pool.runs += 1
        await self.publisher.send(json.dumps(command))
        viewer_workers = self.viewer_workers(target)
        count = len(viewer_workers)
        shares = [config.viewers // count + (i < config.viewers % count) for i in range(count)]
        clients = [(client, share) for client, share in zip(viewer_workers, shares, strict=True) if share]
        for client, share in clients:
            view = {"op": "run", "pool": pool.key, "url": server.url, "origin": server.stack.base_url}
            view |= {"streams": slugs, "viewers": share}
            view |= {"protocol": target.client, "warmup": args.warmup, "seconds": args.seconds}
            view |= {"drain": args.drain, "expect": per_stream * config.streams}
            await client.send(json.dumps(view))
        workers = [self.publisher, *(client for client, _ in clients)]
        connecting = time.monotonic()
        ready, failures = [], []
        for worker in workers:
            kind, rest = await worker.expect_any(("READY", "FAILED"), 150)
            if kind == "READY":
                ready.append(worker)
            else:
                failures.append(json.loads(rest))
        if failures:
            for worker in ready:
                await worker.send("cancel")
            for worker in ready:
                await worker.expect_any(("RESULT", "CANCELLED"), 30)
            raise ViewersRefused(failures[0])
        connect_s = time.monotonic() - connecting
        start = time.time() + START_DELAY
        for worker in workers:
            await worker.send(repr(start))
        window = (start + args.warmup, start + seconds)
        await asyncio.sleep(window[0] - time.time())
        server0, redis0 = cpu_seconds(server.pid), redis_pid and cpu_seconds(redis_pid)
        wait0 = waited_seconds(server.pid)
        await asyncio.sleep(window[1] - time.time())
        server1, redis1 = cpu_seconds(server.pid), redis_pid and cpu_seconds(redis_pid)
        wait1 = waited_seconds(server.pid)
        rss = rss_mb(server.pid)
        timeout = args.drain + 30
        published = json.loads(await self.publisher.expect("RESULT", timeout))
        results = [json.loads(await client.expect("RESULT", timeout)) for client, _ in clients]
        latencies = [ms for result in results for ms in result["latencies"]]
        return {
            "target": config.target,
            "viewers": config.viewers,
            "rate": config.rate,
            "streams": config.streams,
            "run": run,
            "points_per_s": sum(r["points"] for r in results) / args.seconds,
            "frames_per_s": sum(r["frames"] for r in results) / args.seconds,
            "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99),
            "server_cpu": 100 * (server1 - server0) / args.seconds,
            # Share of the window the server was ready to run and waited for a core.
            "server_wait": 100 * (wait1 - wait0) / args.seconds,
            "redis_cpu": 100 * (redis1 - redis0) / args.seconds if redis_pid else float("nan"),
            "clients_cpu": max(100 * r["cpu_seconds"] / args.seconds for r in results),
            "publisher_cpu": 100 * published["cpu_seconds"] / seconds,
            "server_rss_mb": rss,
            "published": published["published"],
            "publisher_lag_s": published["max_lag"],
            "lost": sum(r["lost"] for r in results),
            "resubscribes": sum(r["resubscribes"] for r in results),
            "gaps": sum(r["gaps"] for r in results),
            "complete": sum(r["complete"] for r in results),
            "load": os.getloadavg()[0],
            "connect_s": connect_s,
            # Each client process's own counts (--clients both compares the two kinds).
            "by_client": [
                {"kind": client.kind, "viewers": share}
                | {
                    key: result[key]
                    for key in ("points", "frames", "lost", "complete", "resubscribes", "gaps")
                }
                | {"cpu": 100 * result["cpu_seconds"] / args.seconds}
                | ({"closed": result["closed"]} if "closed" in result else {})
                for (client, share), result in zip(clients, results, strict=True)
            ],
        }

    async def run_all(self, plan: list[Config], redis_pid: int | None) -> list[dict[str, Any]]:
        """Configurations in groups of the same viewers and streams, whose runs go round their
        stacks (run 1 of each, then run 2, ...) reusing each stack's viewer sockets from run to
        run and rate to rate: a group's sockets are connected once for all its runs. A group
        that would start past --budget runs once: the bench stays bounded in time, and what was
        cut is listed with the figures."""
        rows: list[dict[str, Any]] = []
        started = time.monotonic()
        self.plan = plan
        groups: dict[tuple[int, int], list[Config]] = {}
        for config in plan:
            groups.setdefault((config.viewers, config.streams), []).append(config)
        await self.start_workers()
        try:
            for configs in groups.values():
                runs = range(self.args.runs)
                if self.args.budget and time.monotonic() - started > self.args.budget:
                    reason = f"not run: the bench had passed --budget {self.args.budget:g} s"
                    later = range(1, self.args.runs)
                    rows += [{**c.__dict__, "run": run, "failed": reason} for c in configs for run in later]
                    runs = range(1)
                began = time.monotonic()
                rows += await self.run_group(configs, runs, redis_pid)
                took = time.monotonic() - began
                print(f"group {configs[0].viewers}x{configs[0].streams}: {took:.1f} s", file=sys.stderr)
                self.group_seconds[f"{configs[0].viewers} x {configs[0].streams}"] = took
        finally:
            await self.stop_workers()
        return rows

    async def run_group(
        self, configs: list[Config], runs: range, redis_pid: int | None
    ) -> list[dict[str, Any]]:
        pools: dict[tuple, Pool] = {}
        # Rate by rate; at each rate the runs go round the stacks compared there, so a ratio
        # pairs runs moments apart, and a rate that overloads a server (so restarts it, with
        # new sockets) comes after the rates that do not.
        order = sorted(
            ((config, run) for run in runs for config in configs),
            key=lambda item: (item[0].rate, item[1]),
        )
        rows = [await self.run_config(config, run, redis_pid, pools) for config, run in order]
        await self.close_pools([pool.key for pool in pools.values()] + self.closed)
        self.closed = []
        return rows

    async def close_pools(self, keys: list[str]) -> None:
        for client in [*self.clients, *self.cclients]:
            await client.send(json.dumps({"op": "close", "pools": keys}))
            await client.expect("CLOSED", 60)

    async def run_config(
        self, config: Config, run: int, redis_pid: int | None, pools: dict[tuple, Pool]
    ) -> dict[str, Any]:
        server = self.servers[config.target]
        began = time.monotonic()
        if server.stale or not server.settled():
            server.restart()  # a backlog from the last run would cost this one
        pool = pools.get(config.sockets)
        if pool is None or pool.generation != server.generation:
            # New sockets subscribe to new streams: no history to replay.
            attempt = self.attempts[config.sockets] = self.attempts.get(config.sockets, -1) + 1
            if pool is not None:
                self.closed.append(pool.key)
            pool = pools[config.sockets] = Pool(config, attempt, server.generation)
        try:
            if pool.attempt >= attempts(self.plan, config, self.args.runs):
                raise ViewersRefused("restarted in every run: no fresh streams left")
            row = await self.run_once(config, run, redis_pid, pool)
        except ViewersRefused as error:
            # The server failed some viewers (the clients say why): restart it, keep the rest.
            print(f"{config} run {run} failed: {error}", file=sys.stderr, flush=True)
            pool.generation = -1
            server.stop()
            return {**config.__dict__, "run": run, "failed": str(error)}
        except (RuntimeError, TimeoutError, ConnectionError) as error:
            # Bounded: a run that fails costs its row, not the bench.
            print(f"{config} run {run} failed: {error!r}", file=sys.stderr, flush=True)
            await self.restart_workers()
            for other in pools.values():
                other.generation = -1  # the clients went with their sockets: new pools next time
            server.stop()
            # The last line of the error says what went wrong (a traceback's end, or the message).
            reason = str(error).strip().splitlines()[-1:] or [type(error).__name__]
            return {**config.__dict__, "run": run, "failed": reason[0][:300]}
        if row["lost"]:
            # Points still queued for these sockets would go on arriving (and costing CPU) in
            # later runs: drop the sockets, and the next run gets new ones on new streams.
            await self.close_pools([pool.key])
            pool.generation = -1
            if server.target.app:
                # Waiting for daphne to drain its queues costs more than a restart.
                server.stop()
        row["took_s"] = time.monotonic() - began  # settling, connecting, drain and all
        print(json.dumps({k: v for k, v in row.items() if k != "latencies"}), file=sys.stderr, flush=True)
        return row


@dataclass
class Pool:
    """A configuration's viewer sockets on one server process, kept while its group runs."""

    config: Config
    attempt: int  # how many pools this configuration had before (its streams are numbered so)
    generation: int  # the server process it is connected to
    runs: int = 0

    @property
    def key(self) -> str:
        return f"{self.config.slugs(self.attempt)[0]}-g{self.generation}"


def attempts(plan: list[Config], config: Config, runs: int) -> int:
    """Pools (so fresh streams) a configuration's sockets may need: one a run at most."""
    return runs * sum(other.sockets == config.sockets for other in plan)


def overloaded(viewers: int, rate: int) -> bool:
    """Beyond what one process is meant to carry (TARGET), whether or not asked for by --overload."""
    return viewers > TARGET[0] or rate > TARGET[1]


def plan_of(args: argparse.Namespace) -> list[Config]:
    """Every configuration once, in the order they are first run (see Bench.run_all)."""
    grid = [Config("livecharts", viewers, rate) for rate in args.rates for viewers in args.viewers]
    plan = [config for config in grid if config.viewers <= LAST_AFTER_VIEWERS]
    for target, viewers, rate in args.compare:
        plan.append(Config("livecharts", viewers, rate))  # the row the ratio is taken against
        plan.append(Config(target, viewers, rate))
    plan += [Config("livecharts", viewers, rate, streams) for viewers, streams, rate in args.dashboard]
    # Last: the costliest, and the likeliest to leave a server to restart.
    plan += [config for config in grid if config.viewers > LAST_AFTER_VIEWERS]
    plan += [Config("livecharts", viewers, rate) for viewers, rate in args.overload]
    return list(dict.fromkeys(plan))  # once each, first place kept


def measure(args: argparse.Namespace, timings: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Every run's row; `timings`, when given, gets each group's wall time (viewers x streams)."""
    plan = plan_of(args)
    env = {"LIVECHARTS_STORE_POINTS": "false", "LIVECHARTS_TICK_MS": str(args.tick_ms)}
    with bench_bed("fanout", redis_url=args.redis_url, keep=args.keep, env=env) as bed:
        stack, url, prefix, redis_pid = bed.stack, bed.redis_url, bed.prefix, bed.redis_pid
        result = stack.manage("migrate", "--noinput", "-v", "0")
        assert result.returncode == 0, result.stderr
        specs = [
            {
                "slug": slug,
                "title": slug,
                "visibility": "public",
                "feed_kind": "push",
                "window_points": 100_000,
            }
            for config in plan
            if TARGETS[config.target].publisher == "livecharts"
            for attempt in range(attempts(plan, config, args.runs))
            for slug in config.slugs(attempt)
        ]
        specs = list({spec["slug"]: spec for spec in specs}.values())  # rates share streams
        seed_streams(stack, specs)
        servers: dict[str, Server] = {}
        for name in dict.fromkeys(config.target for config in plan):
            target = TARGETS[name]
            server_stack = Stack(workdir=stack.workdir, env={**stack.env, **target.env})
            servers[name] = Server(server_stack, target, url, prefix)
        try:
            for server in servers.values():
                server.launch()  # all at once: they start in parallel
            for server in servers.values():
                server.ready()
                print(f"{server.name} pid {server.pid}", file=sys.stderr, flush=True)
            bench = Bench(args, servers=servers, env=stack.env)
            bench.group_seconds = timings if timings is not None else {}
            return asyncio.run(bench.run_all(plan, redis_pid))
        finally:
            for server in servers.values():
                server.stack.stop_all()


# Reporting -------------------------------------------------------------------------------


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    """median (min-max)"""
    values = [v for v in values if v == v]  # drop NaN
    if not values:
        return "-"
    median = fmt.format(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def group(rows: list[dict[str, Any]], config: Config) -> list[dict[str, Any]]:
    return [
        r
        for r in rows
        if "failed" not in r
        and (r["target"], r["viewers"], r["rate"], r["streams"])
        == (config.target, config.viewers, config.rate, config.streams)
    ]


def per_core(row: dict[str, Any]) -> float:
    """Points delivered per second of one core of the server (CPU under 1% counts as 1%)."""
    return row["points_per_s"] / (max(row["server_cpu"], 1.0) / 100)


def frame_us(row: dict[str, Any]) -> float:
    """The server's CPU per frame written, in µs (CPU-seconds per second / frames per second)."""
    return 1e4 * row["server_cpu"] / row["frames_per_s"] if row["frames_per_s"] else float("nan")


def per_run(runs: list[dict[str, Any]], key: str) -> str:
    return " / ".join(f"{r[key]:,}" for r in runs)


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """LiveCharts, one stream: the grid of viewers x points/s, then the overload rows."""
    lines = [
        "| viewers | points/s in | points/s delivered | frames/s | frames/s per socket | latency p50 ms "
        "| p99 ms | daphne CPU % | µs CPU per frame | daphne waiting for a core % | points/s per daphne core "
        "| redis CPU % | clients CPU % (busiest) | daphne RSS MB | missing per run | re-subscribes per run |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    grid = [(viewers, rate) for rate in args.rates for viewers in args.viewers]
    for viewers, rate in dict.fromkeys([*grid, *args.overload]):
        runs = group(rows, Config("livecharts", viewers, rate))
        if not runs:
            continue
        overload = " (overload)" if overloaded(viewers, rate) else ""
        lines.append(
            f"| {viewers:,}{overload} | {rate:,} | {spread([r['points_per_s'] for r in runs])} "
            f"| {spread([r['frames_per_s'] for r in runs])} "
            f"| {spread([r['frames_per_s'] / r['viewers'] for r in runs], '{:.1f}')} "
            f"| {spread([r['p50_ms'] for r in runs])} | {spread([r['p99_ms'] for r in runs])} "
            f"| {spread([r['server_cpu'] for r in runs])} "
            f"| {spread([frame_us(r) for r in runs], '{:.1f}')} "
            f"| {spread([r.get('server_wait', float('nan')) for r in runs])} "
            f"| {spread([per_core(r) for r in runs])} "
            f"| {spread([r['redis_cpu'] for r in runs])} | {spread([r['clients_cpu'] for r in runs])} "
            f"| {spread([r['server_rss_mb'] for r in runs])} "
            f"| {per_run(runs, 'lost')} | {per_run(runs, 'resubscribes')} |"
        )
    return "\n".join(lines)


# What issue 5 asks of LiveCharts against each: (ratio measured, at least).
GOALS = {
    "baseline": ("per_core", 50.0),
    "raw": ("points", 0.7),
    "websockets": ("points", 10.0),
    "sse": ("points", 10.0),
}


def compare_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """Baselines and peers beside LiveCharts at the same viewers and points/s, same runs."""
    lines = [
        "| stack | viewers | points/s in | points/s delivered | latency p50 ms | p99 ms | server CPU % "
        "| points/s per server core | redis CPU % | missing per run "
        "| LiveCharts ÷ this, points/s | LiveCharts ÷ this, per core | goal |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    shown: set[tuple[int, int]] = set()
    for name, viewers, rate in args.compare:
        if name == "core":
            continue
        ours = group(rows, Config("livecharts", viewers, rate))
        theirs = group(rows, Config(name, viewers, rate))
        if not theirs:
            continue
        if (viewers, rate) not in shown:
            shown.add((viewers, rate))
            lines.append(compare_row("LiveCharts", ours, viewers, rate, "", "", ""))
        pairs = [(o, t) for o in ours for t in theirs if o["run"] == t["run"] and t["points_per_s"] > 0]
        ratios = [o["points_per_s"] / t["points_per_s"] for o, t in pairs]
        core_ratios = [per_core(o) / per_core(t) for o, t in pairs]
        kind, least = GOALS[name]
        measured = median(ratios if kind == "points" else core_ratios)
        verdict = "met" if measured >= least else "missed"
        goal = f"≥ {least:g}x {'points/s' if kind == 'points' else 'per core'}: {verdict}"
        lines.append(
            compare_row(
                TARGETS[name].label,
                theirs,
                viewers,
                rate,
                spread(ratios, "{:.2f}x"),
                spread(core_ratios, "{:.1f}x"),
                goal,
            )
        )
    return "\n".join(lines)


def compare_row(
    label: str, runs: list[dict[str, Any]], viewers: int, rate: int, ratio: str, core: str, goal: str
) -> str:
    return (
        f"| {label} | {viewers:,} | {rate:,} | {spread([r['points_per_s'] for r in runs])} "
        f"| {spread([r['p50_ms'] for r in runs])} | {spread([r['p99_ms'] for r in runs])} "
        f"| {spread([r['server_cpu'] for r in runs])} | {spread([per_core(r) for r in runs])} "
        f"| {spread([r['redis_cpu'] for r in runs])} | {per_run(runs, 'lost')} "
        f"| {ratio or '-'} | {core or '-'} | {goal or '-'} |"
    )


def dashboard_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "| viewers | streams each | points/s per stream | points/s delivered | frames/s per socket "
        "| latency p50 ms | p99 ms | daphne CPU % | redis CPU % | missing per run | re-subscribes per run |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for viewers, streams, rate in args.dashboard:
        runs = group(rows, Config("livecharts", viewers, rate, streams))
        if not runs:
            continue
        lines.append(
            f"| {viewers:,} | {streams} | {rate:,} | {spread([r['points_per_s'] for r in runs])} "
            f"| {spread([r['frames_per_s'] / r['viewers'] for r in runs], '{:.1f}')} "
            f"| {spread([r['p50_ms'] for r in runs])} | {spread([r['p99_ms'] for r in runs])} "
            f"| {spread([r['server_cpu'] for r in runs])} | {spread([r['redis_cpu'] for r in runs])} "
            f"| {per_run(runs, 'lost')} | {per_run(runs, 'resubscribes')} |"
        )
    return "\n".join(lines)


def layers_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """RedisPubSubChannelLayer (the livecharts rows) against RedisChannelLayer, same configs."""
    lines = [
        "| layer | viewers | points/s in | points/s delivered | missing per run | re-subscribes per run "
        "| latency p50 ms | p99 ms | daphne CPU % | redis CPU % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    layers = {"livecharts": "`RedisPubSubChannelLayer`", "core": "`RedisChannelLayer`"}
    for name, viewers, rate in args.compare:
        if name != "core":
            continue
        for target, label in layers.items():
            runs = group(rows, Config(target, viewers, rate))
            if not runs:
                continue
            lines.append(
                f"| {label} | {viewers:,} | {rate:,} | {spread([r['points_per_s'] for r in runs])} "
                f"| {per_run(runs, 'lost')} | {per_run(runs, 'resubscribes')} "
                f"| {spread([r['p50_ms'] for r in runs])} | {spread([r['p99_ms'] for r in runs])} "
                f"| {spread([r['server_cpu'] for r in runs])} | {spread([r['redis_cpu'] for r in runs])} |"
            )
    return "\n".join(lines)


def layers_verdict(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """One sentence from the figures: which layer lost fewer points, then which cost less CPU."""
    totals = {}
    for target in ("livecharts", "core"):
        runs = [
            r
            for name, viewers, rate in args.compare
            if name == "core"
            for r in group(rows, Config(target, viewers, rate))
        ]
        if not runs:
            return ""
        points = sum(r["points_per_s"] for r in runs)
        cpu = sum(r["server_cpu"] + r["redis_cpu"] for r in runs)
        # CPU-seconds (daphne + redis) per million points delivered: equal CPU, whatever the load.
        totals[target] = (
            sum(r["lost"] for r in runs),
            1e4 * cpu / max(points, 1),
            median([r["p99_ms"] for r in runs]),
        )
    (pub_lost, pub_cost, pub_p99), (core_lost, core_cost, core_p99) = totals.values()
    better = (
        "`RedisPubSubChannelLayer`"
        if (pub_lost, pub_cost) <= (core_lost, core_cost)
        else "`RedisChannelLayer`"
    )
    return (
        f"Over these runs, `RedisPubSubChannelLayer` left {pub_lost:,} points missing and spent "
        f"{pub_cost:.1f} CPU-seconds (daphne + redis) per million points delivered (median p99 "
        f"{pub_p99:,.0f} ms); `RedisChannelLayer` left {core_lost:,} missing and spent {core_cost:.1f} "
        f"(p99 {core_p99:,.0f} ms). By these figures the default should be {better} (fewest points "
        "missing first, then least CPU per point)."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n")[0])
    numbers = lambda text: [int(n) for n in text.split(",") if n]  # noqa: E731

    def pairs(text: str) -> list[tuple[int, int]]:
        return [(int(v), int(r)) for v, r in (item.split("x") for item in text.split(",") if item)]

    def compares(text: str) -> list[tuple[str, int, int]]:
        out = []
        for item in (item for item in text.split(",") if item):
            name, _, rest = item.partition(":")
            if name not in TARGETS or name == "livecharts":
                raise argparse.ArgumentTypeError(f"unknown stack {name!r} (known: {', '.join(TARGETS)})")
            (viewers, rate), *_ = pairs(rest)
            out.append((name, viewers, rate))
        return out

    def dashboards(text: str) -> list[tuple[int, int, int]]:
        return [tuple(int(n) for n in item.split("x")) for item in text.split(",") if item]  # type: ignore[misc]

    parser.add_argument("--viewers", type=numbers, default=[10, 100, 500, 1000])
    parser.add_argument("--rates", type=numbers, default=[100, 1000], help="points/s")
    parser.add_argument(
        "--overload", type=pairs, default=[], help="more LiveCharts rows, VIEWERSxRATE,... (e.g. 4000x1000)"
    )
    parser.add_argument(
        "--compare",
        type=compares,
        default=[],
        help="STACK:VIEWERSxRATE,... with STACK one of baseline, raw, websockets, sse, core",
    )
    parser.add_argument(
        "--dashboard", type=dashboards, default=[], help="VIEWERSxSTREAMSxRATE,... (rate per stream)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each configuration (at least 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds of each run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds published before measuring")
    parser.add_argument(
        "--drain", type=float, default=2.0, help="seconds allowed after the window for the rest"
    )
    parser.add_argument("--tick-ms", type=int, default=50)
    parser.add_argument(
        "--budget",
        type=float,
        default=0,
        help="seconds for all runs: a group behind this schedule runs once (0: no limit)",
    )
    parser.add_argument("--redis-url", default="", help="a shared Redis (default: a private redis-server)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    parser.add_argument("--json", type=Path, help="also write every run's row here")
    parser.add_argument(
        "--clients",
        choices=("compiled", "python", "both"),
        default="compiled",
        help="viewer clients of the LiveCharts and raw stacks: compiled (bench/cclients.c, built with "
        "gcc; Python when there is no compiler), python (bench/clients.py), or both (half the viewers "
        "each, counts side by side)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.binary = cclients.build() if args.clients != "python" else None
    if args.binary is None and args.clients != "python":
        print("no C compiler: the viewer clients are bench/clients.py (Python)", file=sys.stderr)
    return args


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[tuple[str, str]]:
    """(name, markdown table) for every table this configuration measured."""
    tables = [("main", table(rows, args))]
    failed: dict[tuple, list[int]] = {}
    for r in rows:
        if "failed" in r:
            failed.setdefault((r["target"], r["viewers"], r["streams"], r["rate"], r["failed"]), []).append(
                r["run"]
            )
    if failed:
        lines = [
            f"- {TARGETS[target].label}, {viewers:,} viewers x {streams} stream(s) at {rate:,} points/s, "
            f"run{'s' if len(runs) > 1 else ''} {', '.join(str(run + 1) for run in runs)}: {reason}"
            for (target, viewers, streams, rate, reason), runs in failed.items()
        ]
        tables.append(("failures", "\n".join(lines)))
    if any(name != "core" for name, _, _ in args.compare):
        tables.append(("compare", compare_table(rows, args)))
    if args.dashboard:
        tables.append(("dashboard", dashboard_table(rows, args)))
    if any(name == "core" for name, _, _ in args.compare):
        tables.append(("layers", layers_table(rows, args) + "\n\n" + layers_verdict(rows, args)))
    return tables


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = measure(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    for _, text in report(rows, args):
        print(text)
        print()


if __name__ == "__main__":
    main()

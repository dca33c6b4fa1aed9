"""Real LiveCharts processes for end-to-end and browser tests: daphne, ingest, serve.

Each stack gets its own SQLite file, Redis key prefix and free port, and every process is
stopped (and waited for) when the test ends.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import httpx
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.waits import wait_until

ROOT = Path(__file__).resolve().parent.parent
# The password of the users a stack is seeded with (alice may see the stream, bob may not).
STACK_PASSWORD = "e2e-password-123"
BIN = Path(sys.executable).parent
T = TypeVar("T")

SEED = """
from django.contrib.auth.models import User
from streams.models import Stream
alice = User.objects.create_user("alice", password="{password}")
User.objects.create_user("bob", password="{password}")
stream = Stream.objects.create(
    slug="line", title="E2E line", visibility="restricted", window_points=5000,
    feed_kind="simulate", feed_settings={{"rate": 20, "series": ["a", "b"]}},
)
stream.viewers.add(alice)
"""


# Every port free_port has handed out in this process.
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, and never one handed out before in this process.

    The port is free only until someone binds it: the kernel gives a port whose probe socket
    was just closed to the next bind(0) about once in 14,000, so two ports picked before either
    server binds (a master and its replica, three sentinels) were the same in ~1 of 1,200 groups
    of five, and the second server then failed to start. Other processes on the machine can
    still take one meanwhile; this process cannot."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where connections are refused while the block runs, for "the server is
    down" tests: it is held bound but not listening, so no other process can take it and answer
    meanwhile, as one could take a port from free_port."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


class HeldPort:
    """A loopback port this process keeps bound for as long as it lives, for a server of ours
    that stops and starts again on the same port: no other process can take the port while the
    server is down, as one could between a stop and the next bind.

    `listening()` gives the server a socket that listens on the port (closing it does not free
    the port); once the server stopped, `refuse()` makes connections refused again."""

    def __init__(self) -> None:
        while True:
            held = socket.socket()
            # Bound to the port by number, not to 0: Linux keeps a port asked for by number
            # bound when `refuse()` takes the socket out of listening; a port from bind(0)
            # would be freed with it.
            try:
                held.bind(("127.0.0.1", free_port()))
            except OSError:  # taken since free_port picked it: another
                held.close()
                continue
            self.socket: socket.socket = held
            self.port: int = held.getsockname()[1]
            return

    def listening(self) -> socket.socket:
        """A socket for the server: the held one, listening; the server may close it."""
        # listen() checks the port again, and the TIME_WAIT connections of an earlier run
        # would refuse it without SO_REUSEADDR; set only while listening (when no bind can
        # share the port anyway), or another process's SO_REUSEADDR bind could share it.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.listen()
        return self.socket.dup()

    def refuse(self) -> None:
        """After the server stopped: refuse connections, keep the port. A hack on Linux's
        behaviour: shutdown() of a listening socket stops it listening and keeps its bind."""
        if self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
            self.socket.shutdown(socket.SHUT_RD)

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> HeldPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hold_port(port: int) -> socket.socket:
    """Bind `port`, which a server of another program (a redis-server) left as it went down and
    will take again when it restarts: connections are refused, and no other process can take
    the port meanwhile. Close the socket right before starting the server (its own start is
    the one window left). Raises PortTaken when another process has the port already."""
    held = socket.socket()
    # The server's last connections may sit in TIME_WAIT on the port: SO_REUSEADDR to bind
    # beside them, cleared at once so that no other SO_REUSEADDR bind may share the port.
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        held.bind(("127.0.0.1", port))
    except OSError as error:
        held.close()
        raise PortTaken(f"another process took port {port} as its server went down: {error}") from error
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    return held


class PortTaken(RuntimeError):
    """A server could not bind its port: another process took it after free_port picked it."""


def port_taken(log: str) -> bool:
    """Whether a server's log says its bind failed: daphne, serve, redis, mosquitto and nginx all
    say "Address already in use", in one case or another; the bench's peers say "port N is
    already in use" (bokeh) and "Connection in use" (gunicorn)."""
    text = log.lower()
    return "already in use" in text or "connection in use" in text


def raise_if_exited(proc: subprocess.Popen, log: IO[bytes], *, what: str) -> None:
    """Raise if `proc`, whose output goes to the file `log`, has exited: PortTaken when its bind
    failed, RuntimeError otherwise."""
    if proc.poll() is None:
        return
    log.seek(0)
    text = log.read().decode(errors="replace")[-2000:]
    error = PortTaken if port_taken(text) else RuntimeError
    raise error(f"{what} exited with {proc.returncode}: {text}")


def again_if_port_taken(run: Callable[[int], T], *, attempts: int = 3) -> T:
    """`run(attempt)`, from the start again each time it raises PortTaken (said as a warning).
    For a scenario that stops a server whose port it cannot hold (a redis-server, a mosquitto:
    other programs) and starts it again on the same port, which another process may take
    while the server is down; `run` must start everything afresh, on fresh ports."""
    for attempt in range(1, attempts + 1):
        try:
            return run(attempt)
        except PortTaken as taken:
            run_again_or_raise(taken, attempt=attempt, attempts=attempts)
    raise AssertionError("unreachable")


async def again_if_port_taken_async(run: Callable[[int], Awaitable[T]], *, attempts: int = 3) -> T:
    """again_if_port_taken for a scenario that is a coroutine."""
    for attempt in range(1, attempts + 1):
        try:
            return await run(attempt)
        except PortTaken as taken:
            run_again_or_raise(taken, attempt=attempt, attempts=attempts)
    raise AssertionError("unreachable")


def run_again_or_raise(taken: PortTaken, *, attempt: int, attempts: int) -> None:
    """After run `attempt` lost a port: say it runs again, or raise when it was the last."""
    if attempt == attempts:
        raise PortTaken(f"a port was taken in each of {attempts} runs; the last: {taken}") from taken
    warnings.warn(f"run {attempt} lost a port to another process, run again: {taken}", stacklevel=3)


def on_free_port(start: Callable[[int], T], *, attempts: int = 5) -> tuple[int, T]:
    """`start(port)` on a port from free_port, and on a fresh one each time it raises PortTaken;
    returns the port and what `start` returned. For servers a test cannot bind to port 0 and
    ask; the port must not be in anyone's hands (a config, a URL) before `start` succeeds."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        try:
            return port, start(port)
        except PortTaken:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Where each process's log started (a restarted process appends to the same file).
    log_starts: dict[str, int] = field(default_factory=dict)
    # Whether a server of the stack has listened on `port`: from then on clients hold its URL,
    # and a restart must come back on the same port.
    listened: bool = False
    # The servers started on `port` (start_listening), and the port held while one is stopped:
    # no other process can take it before the restart (the server's own start is the one
    # window left; a port taken then raises PortTaken).
    servers: set[str] = field(default_factory=set)
    held: socket.socket | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def seed(self, password: str) -> None:
        for result in (
            self.manage("migrate", "--noinput", "-v", "0"),
            self.manage("shell", "-c", SEED.format(password=password)),
        ):
            assert result.returncode == 0, result.stderr

    def add_superuser(self, username: str = "root") -> None:
        """A superuser with the stack's password, for the admin pages."""
        made = self.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User\n"
            f"User.objects.create_superuser({username!r}, password={STACK_PASSWORD!r})",
        )
        assert made.returncode == 0, made.stderr

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        path = self.workdir / f"{name}.log"
        self.log_starts[name] = path.stat().st_size if path.exists() else 0
        log = open(path, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_daphne(self) -> None:
        daphne = [str(BIN / "daphne"), "-b", "127.0.0.1"]
        self.start_listening("daphne", lambda: [*daphne, "-p", str(self.port), "livecharts.asgi:application"])

    def start_listening(
        self,
        name: str,
        argv: Callable[[], list[str]],
        *,
        ready: Callable[[], None] | None = None,
        attempts: int = 5,
    ) -> None:
        """Start server `name` (`argv()` reads `port`) and wait until it answers (`ready`, by
        default wait_http). Until the stack has listened once, a port another process took since
        free_port picked it is swapped for a fresh one and the server started again."""
        self.release()
        self.servers.add(name)
        self.start(name, argv())
        self.wait_listening(name, argv, ready=ready, attempts=attempts)

    def release(self) -> None:
        """Let go of the port held since a server of the stack stopped, for it to start again."""
        if self.held is not None:
            self.held.close()
            self.held = None

    def wait_listening(
        self,
        name: str,
        argv: Callable[[], list[str]],
        *,
        ready: Callable[[], None] | None = None,
        attempts: int = 5,
    ) -> None:
        """The waiting half of start_listening, for servers started together and then waited
        for: server `name`, already started with `argv()`, started again on a fresh port when
        its own was taken (until the stack has listened once)."""
        for attempt in range(1, attempts + 1):
            try:
                (ready or self.wait_http)()
            except PortTaken:
                self.procs.pop(name).wait(timeout=30)
                if self.listened or attempt == attempts:
                    raise
                self.port = free_port()
                self.start(name, argv())
            else:
                self.listened = True
                return

    def start_ingest(self, name: str = "ingest") -> subprocess.Popen:
        """An ingest worker, returned once it holds its leases and has started their feeds."""
        proc = self.start(name, [sys.executable, "manage.py", "ingest"])
        self.wait_log(name, "ingest: ready")
        return proc

    def exited(self, name: str) -> RuntimeError:
        """The error for process `name` found exited: PortTaken when its bind failed."""
        proc = self.procs[name]
        error = PortTaken if port_taken(self.log_since(name, self.log_starts.get(name, 0))) else RuntimeError
        return error(f"{name} exited with {proc.returncode}: {self.log(name)}")

    def wait_log(self, name: str, text: str, *, timeout: float = 60) -> None:
        """Until the current run of process `name` has written `text` to its log."""
        path = self.workdir / f"{name}.log"
        proc = self.procs[name]

        def written() -> bool:
            if proc.poll() is not None:
                raise self.exited(name)
            with path.open("rb") as log:
                log.seek(self.log_starts.get(name, 0))
                return text.encode() in log.read()

        wait_until(
            written, what=f"{name} to log {text!r}", within=timeout, seen=lambda: self.log(name)[-500:]
        )

    def start_serve(self) -> None:
        self.start_listening(
            "serve", lambda: [sys.executable, "manage.py", "serve", "--port", str(self.port)]
        )

    def wait_http(self, timeout: float = 60, *, path: str = "/readyz") -> None:
        """Until the stack's port answers `path` with 200: by default /readyz (listening, and its
        database, Redis and channel layer answer too); the bench's non-Django servers have
        only /healthz."""

        def ready() -> bool:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise self.exited(name)
            return answers_ready(self.base_url, path=path)

        wait_until(ready, what=f"{self.base_url}{path} to answer 200", within=timeout)

    def newest_id(self, slug: str) -> str | None:
        """The id of the newest point of `slug` in the Redis window (None: nothing there)."""
        with redis.Redis.from_url(self.env["REDIS_URL"], decode_responses=True) as client:
            newest = client.xrevrange(self.window_key(slug), count=1)
        return newest[0][0] if newest else None

    def window_length(self, slug: str) -> int:
        """How many points of `slug` the Redis window holds (one entry a point)."""
        with redis.Redis.from_url(self.env["REDIS_URL"]) as client:
            return client.xlen(self.window_key(slug))

    def wait_for_points(self, slug: str, count: int) -> int:
        """Until the window of `slug` holds `count` more points than now; returns its length."""
        target = self.window_length(slug) + count
        wait_until(
            lambda: self.window_length(slug) >= target,
            what=f"{count} more points of {slug} in history",
            within=60,
            seen=lambda: f"{self.window_length(slug)} of {target}; ingest: {self.log('ingest')[-300:]}",
        )
        return self.window_length(slug)

    def window_key(self, slug: str) -> str:
        return f"{self.env['LIVECHARTS_REDIS_PREFIX']}:window:{slug}"

    def stop(self, name: str, *, sig: int = signal.SIGTERM, hold: bool = True) -> None:
        """Stop process `name`; a server on `port` leaves it held (see `servers`) unless not
        `hold`. Raises PortTaken when another process took the port as the server let it go."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                # Generous: a loaded machine stops slowly, and a kill would skip the final flush.
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc is not None and hold and name in self.servers and self.held is None:
            self.held = hold_port(self.port)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name, hold=False)
        self.release()

    def log_size(self, name: str) -> int:
        path = self.workdir / f"{name}.log"
        return path.stat().st_size if path.exists() else 0

    def log_since(self, name: str, offset: int) -> str:
        """What process `name` logged after byte `offset` (from `log_size`)."""
        with (self.workdir / f"{name}.log").open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def make_stack(*, workdir: Path, redis_url: str | None, prefix: str) -> Stack:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "livecharts.settings",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "LIVECHARTS_REDIS_PREFIX": prefix,
        "DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return Stack(workdir=workdir, env=env)


@contextlib.contextmanager
def embedded_stack(workdir: Path) -> Iterator[Stack]:
    """The one-process mode's stack (no Redis: the in-memory layer and history) with the named
    users seeded; nothing started yet, every process stopped afterwards."""
    stack = make_stack(workdir=workdir, redis_url=None, prefix="unused")
    stack.seed(STACK_PASSWORD)
    try:
        yield stack
    finally:
        stack.stop_all()


def sign_in(stack: Stack, username: str, password: str) -> httpx.Client:
    """Sign in through the real login form, CSRF token and all; returns the session's client."""
    client = httpx.Client(base_url=stack.base_url, timeout=10)
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    token = client.cookies["csrftoken"]
    response = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{stack.base_url}/accounts/login/", "Origin": stack.base_url},
    )
    assert response.status_code == 302, response.text[:500]
    assert "sessionid" in client.cookies
    return client


SEED_STREAMS = """
import json
from django.contrib.auth.models import User
from streams.models import PushToken, Stream
tokens = {}
for spec in json.loads(SPECS):
    viewers = spec.pop("viewers", [])
    stream = Stream(**spec)
    stream.full_clean()  # as admin and provision do: a bad feed setting fails the seed, not the test
    stream.save()
    stream.viewers.set(User.objects.filter(username__in=viewers))
    if stream.feed_kind == "push":
        token = PushToken(name="e2e " + stream.slug)
        tokens[stream.slug] = token.issue()
        token.save()
        token.streams.add(stream)
print("TOKENS " + json.dumps(tokens))
"""


def seed_streams(stack: Stack, streams: list[dict]) -> dict[str, str]:
    """Add streams to a seeded stack: each a dict of Stream fields, plus `viewers` (user names).

    Returns the push token made for each push stream, by slug (shown once, as admin does).
    """
    code = f"SPECS = {json.dumps(streams)!r}\n{SEED_STREAMS}"
    result = stack.manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("TOKENS "))
    return json.loads(line.removeprefix("TOKENS "))


# Several daphne processes and nginx in front (tests/e2e/test_deploy_nginx.py) ---------------


def start_daphne_at(stack: Stack, name: str, *, port: int, proxy_headers: bool = False) -> subprocess.Popen:
    """Another daphne of the stack, on its own port (the stack's `port` stays the first one's).
    Raises PortTaken when the port was taken (see on_free_port)."""
    argv = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
    if proxy_headers:
        argv.append("--proxy-headers")
    proc = stack.start(name, [*argv, "livecharts.asgi:application"])
    try:
        # This run's log only: a daphne of the same name appends to the same file.
        wait_healthy(
            f"http://127.0.0.1:{port}", proc=proc, log=lambda: stack.log_since(name, stack.log_starts[name])
        )
    except PortTaken:
        stack.procs.pop(name).wait(timeout=30)
        raise
    return proc


def answers_ready(base_url: str, *, path: str = "/readyz") -> bool:
    """Whether `base_url` answers `path` (/readyz) with 200 now (not listening yet counts as no)."""
    try:
        return httpx.get(f"{base_url}{path}", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(base_url: str, *, proc: subprocess.Popen, log, timeout: float = 60) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            text = log()
            raise (PortTaken if port_taken(text) else RuntimeError)(f"exited with {proc.returncode}: {text}")
        return answers_ready(base_url)

    wait_until(ready, what=f"{base_url}/readyz to answer 200", within=timeout)


NGINX_SITE = ROOT / "deploy" / "nginx" / "livecharts.conf"
# `user`: run as root (CI), nginx would otherwise drop its workers to `nobody`, who cannot read
# the test's private tmp dir; as anyone else it only warns that the line is ignored.
NGINX_MAIN = """
daemon off;
user {user};
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ text/html html; text/css css; application/javascript js mjs; }}
    default_type application/octet-stream;
    include {tmp}/livecharts.conf;
}}
"""


def render_nginx_site(
    text: str,
    *,
    upstreams: list[int],
    http_port: int,
    https_port: int,
    cert: Path,
    key: Path,
    static_root: Path,
) -> str:
    """The shipped site config with this test's ports and paths: each substitution must match
    exactly as often as expected, so a changed deploy/ config fails loudly here."""
    import re

    def sub(pattern: str, replacement: str, *, count: int) -> None:
        nonlocal text
        text, made = re.subn(pattern, lambda _: replacement, text, flags=re.MULTILINE)
        assert made == count, f"{pattern!r} matched {made} times in {NGINX_SITE}, not {count}"

    servers = "\n".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in upstreams)
    sub(r"(^\s*server 127\.0\.0\.1:\d+ .*;\n)+", servers + "\n", count=1)
    sub(r"^\s*listen \[::\]:.*\n", "", count=2)
    sub(r"listen 80;", f"listen 127.0.0.1:{http_port};", count=1)
    sub(r"listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;", count=1)
    sub(r"ssl_certificate .*;", f"ssl_certificate {cert};", count=1)
    sub(r"ssl_certificate_key .*;", f"ssl_certificate_key {key};", count=1)
    sub(r"alias /srv/livecharts/staticfiles/;", f"alias {static_root}/;", count=1)
    return text


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (also its own CA for the test's clients)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@dataclass
class Nginx:
    """nginx from deploy/nginx/livecharts.conf, as a child of the test, all files under `tmp`."""

    binary: str
    tmp: Path
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    # What the config was written with (`write`), to write it again on other ports.
    written: dict = field(default_factory=dict)
    # The main config's template (NGINX_MAIN, or a tuned copy of it).
    main: str = NGINX_MAIN

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}/ws/"

    def write(self, *, upstreams: list[int], static_root: Path) -> Path:
        self.written = {"upstreams": upstreams, "static_root": static_root}
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = self_signed_cert(self.tmp)
        site = render_nginx_site(
            NGINX_SITE.read_text(),
            upstreams=upstreams,
            http_port=self.http_port,
            https_port=self.https_port,
            cert=self.cert,
            key=self.key,
            static_root=static_root,
        )
        (self.tmp / "livecharts.conf").write_text(site)
        main = self.tmp / "nginx.conf"
        main.write_text(self.main.format(tmp=self.tmp, user=getpass.getuser()))
        return main

    def check(self) -> subprocess.CompletedProcess:
        """`nginx -t` on the written config."""
        return subprocess.run(
            [self.binary, "-t", "-c", str(self.tmp / "nginx.conf"), "-p", str(self.tmp)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    def start(self, *, attempts: int = 5) -> None:
        """Start nginx on the written config and wait until it listens. On its first start, ports
        another process took since free_port picked them are swapped for fresh ones."""
        first = self.proc is None
        for attempt in range(1, attempts + 1):
            try:
                self._start()
                return
            except PortTaken:
                if not first or attempt == attempts:
                    raise
                self.http_port, self.https_port = free_port(), free_port()
                self.write(**self.written)

    def _start(self) -> None:
        pid_file = self.tmp / "nginx.pid"
        pid_file.unlink(missing_ok=True)
        logged = self.log_sizes()
        log = open(self.tmp / "nginx-stderr.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.tmp / "nginx.conf"), "-p", str(self.tmp)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                text = self.error_log()
                error = PortTaken if port_taken(self.error_log(since=logged)) else RuntimeError
                raise error(f"nginx exited: {text}")
            # nginx writes its pid file once its ports are bound: an open port alone may be
            # another process's, that took it and made nginx's bind fail.
            written = pid_file.exists() and pid_file.read_text().strip() == str(proc.pid)
            return written and port_is_open(self.https_port) and port_is_open(self.http_port)

        wait_until(listening, what="nginx to listen", seen=self.error_log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown: open sockets would hold SIGQUIT
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_paths(self) -> list[Path]:
        return [self.tmp / "nginx-stderr.log", self.tmp / "nginx-error.log"]

    def log_sizes(self) -> list[int]:
        return [path.stat().st_size if path.exists() else 0 for path in self.log_paths()]

    def error_log(self, *, since: list[int] | None = None) -> str:
        """The ends of nginx's logs; `since` (from log_sizes): only what was written after."""
        texts = []
        for path, start in zip(self.log_paths(), since or [0, 0], strict=True):
            if path.exists():
                with path.open("rb") as log:
                    log.seek(start)
                    texts.append(log.read().decode(errors="replace")[-2000:])
        return "\n".join(texts)


def port_is_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# A private redis-server's arguments that keep nothing on disk: no snapshots, no append log, and
# a replica's full sync sent and loaded over its socket (a master otherwise writes dump.rdb into
# its working directory for the replica, and a replica the file it is sent).
NOTHING_ON_DISK = (
    "--save",
    "",
    "--appendonly",
    "no",
    "--repl-diskless-sync",
    "yes",
    "--repl-diskless-sync-delay",
    "0",
    "--repl-diskless-load",
    "swapdb",
)


def redis_server_argv(port: int) -> list[str]:
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", *NOTHING_ON_DISK]


def polling_client(port: int) -> redis.Redis:
    """A client to poll a starting server with: one try a call, a second at most. Another process
    that took the port may accept and never answer; redis-py's own retries would hold one poll
    for 15 s, and the server's exit would be seen only after the deadline."""
    return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


def is_process(client: redis.Redis, proc: subprocess.Popen) -> bool:
    """Whether the server `client` reaches is `proc`: a Redis another process started on the
    port meanwhile (another test's private one) answers as well as ours would, and ours then
    exits with "Address already in use"."""
    return client.info("server").get("process_id") == proc.pid


def start_redis(port: int) -> subprocess.Popen:
    """A private redis-server on `port` that keeps nothing on disk; returns once it answers.
    Raises PortTaken when the port was taken (see on_free_port)."""
    with tempfile.TemporaryFile() as log:  # read only if it exits: kept open by the server
        proc = subprocess.Popen(redis_server_argv(port), stdout=log, stderr=subprocess.STDOUT)
        client = polling_client(port)

        def answers() -> bool:
            raise_if_exited(proc, log, what=f"redis-server on port {port}")
            try:
                return is_process(client, proc)
            except (redis.ConnectionError, redis.TimeoutError):  # not up yet, or not ours
                return False

        wait_until(answers, what=f"redis-server on port {port} to answer PING")
    client.close()
    return proc

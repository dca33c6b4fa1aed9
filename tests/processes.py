"""Real LiveCharts processes for end-to-end and browser tests: daphne, ingest, serve.

Each stack gets its own SQLite file, Redis key prefix and free port, and every process is
stopped (and waited for) when the test ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# The password of the users a stack is seeded with (alice may see the stream, bob may not).
STACK_PASSWORD = "e2e-password-123"
BIN = Path(sys.executable).parent

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

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

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_daphne(self) -> None:
        self.start(
            "daphne",
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), "livecharts.asgi:application"],
        )
        self.wait_http()

    def start_ingest(self) -> None:
        self.start("ingest", [sys.executable, "manage.py", "ingest"])

    def start_serve(self) -> None:
        self.start("serve", [sys.executable, "manage.py", "serve", "--port", str(self.port)])
        self.wait_http()

    def wait_http(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log(name)}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"nothing answered on {self.base_url} in {timeout} s")

    def stop(self, name: str, *, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

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

"""The shipped deploy: nginx from deploy/nginx/livecharts.conf (Debian's package, run as a child
of the test on free ports, TLS with a throwaway certificate) in front of two daphne processes
and one ingest worker; and the systemd units of deploy/systemd checked by systemd-analyze."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
import signal
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.test_live_path import RATE, collect, next_frame
from tests.processes import (
    BIN,
    ROOT,
    STACK_PASSWORD,
    Nginx,
    Stack,
    free_port,
    on_free_port,
    seed_streams,
    start_daphne_at,
)
from tests.services import lacking, require_nginx
from tests.waits import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

DAPHNES = ("daphne-a", "daphne-b")
PUSHED = {"slug": "pushed", "title": "Pushed", "feed_kind": "push", "visibility": "restricted"}
UNITS = ROOT / "deploy" / "systemd"


@dataclass
class Deploy:
    stack: Stack
    nginx: Nginx
    ports: dict[str, int]
    token: str

    def tls(self) -> ssl.SSLContext:
        """Verifies nginx's certificate for real: the throwaway certificate is its own CA."""
        return ssl.create_default_context(cafile=str(self.nginx.cert))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.nginx.base_url, verify=self.tls(), timeout=10)

    def sign_in(self, username: str) -> str:
        """The real login form through nginx, as tests/processes.py sign_in does on daphne:
        the CSRF cookie from the form, the token posted back, Origin and Referer of the page."""
        base = self.nginx.base_url
        with self.client() as client:
            page = client.get("/accounts/login/")
            assert page.status_code == 200, page.text[:300]
            response = client.post(
                "/accounts/login/",
                data={
                    "username": username,
                    "password": STACK_PASSWORD,
                    "csrfmiddlewaretoken": client.cookies["csrftoken"],
                },
                headers={"Referer": f"{base}/accounts/login/", "Origin": base},
            )
            assert response.status_code == 302, response.text[:500]
            return client.cookies["sessionid"]

    async def open_socket(self, session: str) -> ClientConnection:
        return await connect(
            self.nginx.ws_url,
            ssl=self.tls(),
            origin=self.nginx.base_url,
            additional_headers={"Cookie": f"sessionid={session}"},
            open_timeout=10,
        )

    def socket_counts(self) -> dict[str, int]:
        """Websockets each daphne has accepted so far (daphne's access log on its stdout)."""
        return {name: full_log(self.stack, name).count("WSCONNECT /ws/") for name in self.ports}


def full_log(stack: Stack, name: str) -> str:
    path = stack.workdir / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def static_root(tmp: Path) -> Path:
    """What `collectstatic` puts in STATIC_ROOT for the app's own files (the test leaves the
    repository's staticfiles/ alone)."""
    root = tmp / "staticfiles"
    shutil.copytree(ROOT / "streams" / "static", root)
    return root


@pytest.fixture
def deploy(stack: Stack, tmp_path: Path) -> Iterator[Deploy]:
    binary = require_nginx()
    token = seed_streams(stack, [{**PUSHED, "viewers": ["alice"]}])["pushed"]
    stack.start_ingest()
    ports = {}
    for name in DAPHNES:
        ports[name], _ = on_free_port(
            lambda port, name=name: start_daphne_at(stack, name, port=port, proxy_headers=True)
        )
    nginx = Nginx(binary=binary, tmp=tmp_path / "nginx")
    nginx.write(upstreams=list(ports.values()), static_root=static_root(tmp_path))
    checked = nginx.check()
    assert checked.returncode == 0, checked.stderr
    nginx.start()
    try:
        yield Deploy(stack=stack, nginx=nginx, ports=ports, token=token)
    finally:
        nginx.stop()


def test_nginx_accepts_the_shipped_config(tmp_path: Path):
    nginx = Nginx(binary=require_nginx(), tmp=tmp_path / "nginx")
    nginx.write(upstreams=[free_port(), free_port()], static_root=tmp_path)
    checked = nginx.check()
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_systemd_accepts_the_shipped_units(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        lacking("systemd-analyze is not installed (Debian: apt-get install -y systemd)")
    # Paths of this checkout instead of /srv/livecharts: verify checks every ExecStart exists.
    names = []
    for unit in sorted(UNITS.iterdir()):
        text = unit.read_text()
        text = text.replace("/srv/livecharts/.venv/bin", str(BIN))
        text = text.replace("/srv/livecharts", str(ROOT))
        text = text.replace("/etc/livecharts/livecharts.env", str(ROOT / "deploy" / "livecharts.env"))
        # Templates are checked as instances, as systemd would run them.
        name = unit.name.replace("@.", "@8001." if "daphne" in unit.name else "@1.")
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *names], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    # verify prints warnings (unknown keys, missing binaries) without always failing: none allowed.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_nginx_redirects_http_serves_static_files_and_passes_events_at_once(deploy: Deploy):
    plain = httpx.get(f"http://127.0.0.1:{deploy.nginx.http_port}/streams/", timeout=10)
    assert plain.status_code == 301
    assert plain.headers["location"].startswith("https://")
    session = deploy.sign_in("alice")
    with deploy.client() as client:
        script = client.get("/static/streams/live.js")
        assert script.status_code == 200
        assert script.content == (ROOT / "streams" / "static" / "streams" / "live.js").read_bytes()
        assert script.headers["content-type"].startswith("application/javascript")
        # Pages come from daphne through nginx with Django's headers. HSTS is Django's alone (and
        # off under DEBUG, as here), so nginx must not add one of its own.
        page = client.get("/accounts/login/")
        assert page.status_code == 200
        assert "content-security-policy" in page.headers
        assert "strict-transport-security" not in page.headers

        # One pushed point, far smaller than any proxy buffer, reaches an SSE reader through
        # nginx: with buffering on it would sit in nginx until more came (tried: it does).
        cookies = {"sessionid": session}
        with client.stream("GET", "/streams/pushed/events", cookies=cookies) as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            pushed = client.post(
                "/api/streams/pushed/points",
                json={"t": 1_763_800_000, "value": 42},
                headers={"Authorization": f"Bearer {deploy.token}"},
            )
            assert pushed.status_code == 202, pushed.text
            assert 42 in asyncio.run(first_points_event(events))

        too_big = client.post(
            "/api/streams/pushed/points",
            content=b"x" * (1024 * 1024 + 1),
            headers={"Authorization": f"Bearer {deploy.token}", "Content-Type": "application/json"},
        )
        assert too_big.status_code == 413, "client_max_body_size matches LIVECHARTS_PUSH_MAX_BYTES"
    logs = [full_log(deploy.stack, name) for name in DAPHNES]
    assert any("/accounts/login/" in log for log in logs), "pages reached daphne"
    assert not any("/static/" in log for log in logs), "static files never reach daphne"


async def first_points_event(events: httpx.Response) -> list[float]:
    """The values of the first `points` event, read in a thread with a bound on the wait."""

    def read() -> list[float]:
        lines = events.iter_lines()
        for line in lines:
            if line == "event: points":
                data = next(lines)
                assert data.startswith("data: "), data
                return json.loads(data.removeprefix("data: "))["y"]["value"]
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(asyncio.to_thread(read), timeout=15)


def test_a_viewer_through_nginx_survives_a_killed_daphne_and_a_stopped_one(deploy: Deploy):
    """kill -9 of the viewer's daphne: it reconnects through nginx to the other and resumes with
    `after`. The killed one comes back; then SIGTERM of the one it is on: the socket is closed
    with 1001 (through nginx), the process exits, and the viewer resumes on the first again."""
    session = deploy.sign_in("alice")

    async def scenario() -> dict:
        state: dict = {"t": [], "ids": [], "last": None, "daphnes": [], "close_codes": []}
        before = deploy.socket_counts()
        socket = await deploy.open_socket(session)
        await socket.send(json.dumps({"op": "subscribe", "stream": "line", "after": None}))
        await next_frame(socket, "subscribed")
        first = await next_frame(socket, "points")
        state["last"] = first["data"][0]["id"]
        state["t"].extend(first["data"][0]["t"])
        await collect(socket, points=10, state=state)
        state["daphnes"].append(await which_daphne_took_it(deploy, before))

        # SIGKILL: no close frame; nginx ends the client's connection when the upstream goes.
        deploy.stack.stop(state["daphnes"][-1], sig=signal.SIGKILL)
        state["close_codes"].append(close_code(await read_until_closed(socket)))
        socket, name = await resume(deploy, session, state)
        state["daphnes"].append(name)
        await collect(socket, points=20, state=state)

        # The killed one is restarted (systemd's Restart=always); then a stop of the other.
        killed = state["daphnes"][0]
        await asyncio.to_thread(
            start_daphne_at, deploy.stack, killed, port=deploy.ports[killed], proxy_headers=True
        )
        proc = deploy.stack.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        state["close_codes"].append(close_code(await read_until_closed(socket)))
        # Bounded: systemd's TimeoutStopSec is 15 s; daphne must be gone before.
        state["returncode"] = await asyncio.to_thread(proc.wait, 10)
        socket, name = await resume(deploy, session, state)
        state["daphnes"].append(name)
        await collect(socket, points=20, state=state)
        await socket.close()
        return state

    state = asyncio.run(scenario())
    first, second, third = state["daphnes"]
    assert second != first, "the reconnect went to the daphne that is still running"
    assert third == first, "after the stop, the viewer is on the restarted daphne"
    # 1006: no close frame (the process was killed); 1001: going away, sent at SIGTERM.
    assert state["close_codes"] == [1006, 1001]
    assert state["returncode"] is not None
    steps = [round(b - a) for a, b in itertools.pairwise(state["t"])]
    assert steps == [1000 // RATE] * len(steps), "every point exactly once: no gap, no duplicate"
    assert len(state["ids"]) == len(set(state["ids"]))


async def resume(deploy: Deploy, session: str, state: dict) -> tuple[ClientConnection, str]:
    """Reconnect through nginx and re-subscribe after the last id held; which daphne took it."""
    before = deploy.socket_counts()
    socket = await deploy.open_socket(session)
    await socket.send(json.dumps({"op": "subscribe", "stream": "line", "after": state["last"]}))
    await next_frame(socket, "subscribed")
    return socket, await which_daphne_took_it(deploy, before)


def close_code(closed: ConnectionClosed) -> int:
    return closed.rcvd.code if closed.rcvd is not None else 1006


async def read_until_closed(socket: ClientConnection) -> ConnectionClosed:
    """Read (and drop) frames until the server side ends the socket; each wait is bounded."""
    while True:
        try:
            await asyncio.wait_for(socket.recv(), timeout=10)
        except ConnectionClosed as closed:
            return closed


async def which_daphne_took_it(deploy: Deploy, before: dict[str, int]) -> str:
    def grown() -> list[str]:
        return [name for name, count in deploy.socket_counts().items() if count > before.get(name, 0)]

    took = await eventually(grown, what="a daphne to log the websocket", seen=deploy.socket_counts)
    assert len(took) == 1, took
    return took[0]


def test_the_daphne_unit_trusts_proxy_headers_and_listens_on_loopback_only():
    unit = (UNITS / "livecharts-daphne@.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    assert exec_start is not None
    argv = exec_start[1].split()
    assert "--proxy-headers" in argv
    # A daphne trusting X-Forwarded-For must not face clients.
    assert argv[argv.index("-b") + 1] == "127.0.0.1"

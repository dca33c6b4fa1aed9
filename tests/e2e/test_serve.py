"""The embedded mode: `manage.py serve` is daphne and the feeds in one process, no Redis."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_live_path import next_frame, open_socket
from tests.processes import ROOT, make_stack, seed_streams, sign_in
from tests.processes import STACK_PASSWORD as PASSWORD
from tests.waits import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_serve_runs_feeds_and_sockets_in_one_process_without_redis(tmp_path):
    stack = make_stack(workdir=tmp_path, redis_url=None, prefix="unused")
    stack.seed(PASSWORD)
    try:
        stack.start_serve()
        session = sign_in(stack, "alice", PASSWORD).cookies["sessionid"]

        async def scenario() -> list[float]:
            socket = await open_socket(stack, session)
            await socket.send(json.dumps({"op": "subscribe", "stream": "line", "after": None}))
            await next_frame(socket, "subscribed")
            times: list[float] = []
            while len(times) < 20:
                frame = await next_frame(socket, "points")
                times.extend(t for batch in frame["data"] for t in batch["t"])
            await socket.close()
            return times

        times = asyncio.run(scenario())
        assert times == sorted(times)
        banner = stack.log("serve")
        assert f"http://127.0.0.1:{stack.port}/" in banner
        page = sign_in(stack, "alice", PASSWORD).get("/static/plotly/plotly.min.js")
        assert page.status_code == 200

        # SIGTERM (what systemd sends) stops the feeds and the server cleanly.
        serve = stack.procs["serve"]
        serve.terminate()
        assert serve.wait(timeout=15) == 0
        assert "Task was destroyed" not in stack.log("serve")
    finally:
        stack.stop_all()


class _FormFields(HTMLParser):
    """The fields a browser would submit from the page's one admin form, as it shows them."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "input" and a.get("name") and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") not in ("checkbox", "radio") or "checked" in a:
                self.fields.append((a["name"], a.get("value", "on" if a.get("type") == "checkbox" else "")))
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a.get("value", "")))
        elif tag == "textarea" and a.get("name"):
            self._textarea, self._text = a["name"], []

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields.append((self._textarea, "".join(self._text).removeprefix("\n")))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self._text.append(data)


def _admin_save(client: httpx.Client, path: str, changes: dict[str, str]) -> httpx.Response:
    """GET an admin form, change some fields, POST it as the browser would (CSRF and all);
    a saved form answers 302 to its change page."""
    page = client.get(path)
    assert page.status_code == 200, page.text[:300]
    parser = _FormFields()
    parser.feed(page.text)
    data: dict[str, list[str]] = {}
    for name, value in [*parser.fields, *changes.items(), ("_continue", "Save and continue editing")]:
        if name not in changes or value == changes[name]:
            data.setdefault(name, []).append(value)
    return client.post(
        path,
        data=data,
        headers={"Referer": f"{client.base_url}{path}"},
    )


def _stored_streams(database: Path) -> dict[int, int]:
    """Stored points per stream id, read from the SQLite file as another process would."""
    with sqlite3.connect(database, timeout=30) as db:
        return dict(db.execute("SELECT stream_id, SUM(count) FROM streams_storedbatch GROUP BY stream_id"))


@pytest.mark.timeout(600)
def test_admin_saves_never_fail_while_five_fast_streams_store_points(tmp_path):
    """Issue 13: SQLite's single writer made admin saves fail with HTTP 500 "database is
    locked" while the feeds stored points. 200 admin adds and edits over HTTP, against the
    embedded server storing five streams at 1,000 points/s: every one is saved."""
    stack = make_stack(workdir=tmp_path, redis_url=None, prefix="unused")
    stack.seed(PASSWORD)
    stack.add_superuser()
    fast = [
        {
            "slug": f"fast-{n}",
            "title": f"Fast {n}",
            "visibility": "public",
            "store_points": True,
            "feed_kind": "simulate",
            "feed_settings": {"rate": 1000, "series": ["a", "b", "c"]},
        }
        for n in range(5)
    ]
    seed_streams(stack, fast)
    database = tmp_path / "db.sqlite3"
    try:
        stack.start_serve()
        wait_until(
            lambda: len(_stored_streams(database)) >= 6,  # the five and the seeded "line"
            what="every feed to store points",
            within=60,
            seen=lambda: stack.log("serve")[-500:],
        )
        before = _stored_streams(database)
        admin = sign_in(stack, "root", PASSWORD)
        failures: list[str] = []
        added: list[str] = []
        for n in range(200):
            if n % 2 == 0 or not added:
                path = "/admin/streams/stream/add/"
                changes = {
                    "title": f"Added {n}",
                    "slug": f"added-{n}",
                    "feed_kind": "simulate",
                    "feed_settings": json.dumps({"rate": 2, "series": ["x"]}),
                    "visibility": "signed_in",
                }
            else:
                path = f"/admin/streams/stream/{added[n % len(added)]}/change/"
                changes = {"title": f"Edited {n}", "description": f"edit number {n}"}
            answer = _admin_save(admin, path, changes)
            if answer.status_code != 302:
                failures.append(f"{n} {path}: {answer.status_code} {answer.text[:200]!r}")
            elif path.endswith("/add/"):
                added.append(answer.headers["location"].removesuffix("/change/").split("/")[-1])
        assert failures == [], f"{len(failures)} of 200 admin saves failed:\n" + "\n".join(failures[:10])
        # The feeds kept storing through the saves (else nothing was tested).
        after = _stored_streams(database)
        assert all(after[stream] > count for stream, count in before.items())
        assert "database is locked" not in (tmp_path / "serve.log").read_text(errors="replace")
    finally:
        stack.stop_all()


def test_serve_on_a_port_in_use_exits_non_zero_saying_how_to_pick_another(tmp_path):
    stack = make_stack(workdir=tmp_path, redis_url=None, prefix="unused")
    stack.seed(PASSWORD)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = stack.manage("serve", "--port", str(port))
    assert result.returncode != 0
    message = [line for line in result.stderr.splitlines() if line.strip()]
    assert message == [
        f"CommandError: cannot listen on 127.0.0.1:{port} (address already in use); "
        f"pick another port: make run PORT={port + 1}, or manage.py serve --port {port + 1}"
    ]
    assert "LiveCharts is running" not in result.stdout


def test_make_run_passes_port_to_serve():
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=8123"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert "manage.py serve --port 8123" in dry.stdout

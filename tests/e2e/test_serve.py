"""The embedded mode: `manage.py serve` is daphne and the feeds in one process, no Redis."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.e2e.test_live_path import next_frame, open_socket
from tests.processes import STACK_PASSWORD as PASSWORD
from tests.processes import make_stack, sign_in

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

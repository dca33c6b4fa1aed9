"""A real local HTTP JSON server whose answers a test steers (status, body, ETag, timing)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.processes import HeldPort
from tests.sources import http_server_on


@dataclass
class Chunks:
    """A body written part by part, `pause` seconds apart. `length` is the Content-Length sent
    (None: no length, the body ends when the server closes); sending fewer bytes than it
    declares is a server dying mid-answer."""

    parts: Iterable[bytes]
    pause: float = 0.0
    length: int | None = None


class API:
    """What the local server answers: a body, a status and an ETag, changeable by the test."""

    def __init__(self) -> None:
        self.status = 200
        self.body: object = []
        self.etag: str | None = None
        self.requests: list[dict] = []
        # Seconds to wait before answering (a slow server).
        self.delay = 0.0
        # Extra response headers (Retry-After, a Content-Type of text/html...).
        self.headers: dict[str, str] = {}
        # Body bytes written by the last answer, and set when an answer is over (written, or
        # the client went away), so a test can tell how much a client really read.
        self.sent = 0
        self.answered = threading.Event()


@contextmanager
def serve_json_api(*, held: HeldPort | None = None, state: API | None = None) -> Iterator[tuple[API, str]]:
    """Serve `API` on a free loopback port; yields it and the URL to poll.

    On a `held` port, the port stays bound after the server stops (connections refused), and
    a server given the same `held` and `state` comes back at the same URL.
    """
    state = state if state is not None else API()

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            try:
                self.respond()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up: what a client that stops reading does
            finally:
                state.answered.set()

        def respond(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.requests.append(
                {"method": self.command, "headers": dict(self.headers), "body": self.rfile.read(length)}
            )
            state.sent = 0
            if state.delay:
                time.sleep(state.delay)  # a slow server (the test asked for it), not a wait
            if state.etag and self.headers.get("If-None-Match") == state.etag:
                self.send_response(304)
                self.end_headers()
                return
            body = state.body
            if isinstance(body, Chunks):
                parts, pause, declared = body.parts, body.pause, body.length
            else:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                parts, pause, declared = [raw], 0.0, len(raw)
            self.send_response(state.status)
            if "Content-Type" not in state.headers:
                self.send_header("Content-Type", "application/json")
            for name, value in state.headers.items():
                self.send_header(name, value)
            if declared is not None:
                self.send_header("Content-Length", str(declared))
            if state.etag:
                self.send_header("ETag", state.etag)
            self.end_headers()
            for index, part in enumerate(parts):
                if index and pause:
                    time.sleep(pause)  # pacing the source's chunks, not waiting for anything
                self.wfile.write(part)
                self.wfile.flush()
                state.sent += len(part)

        do_GET = do_POST = answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler) if held is None else http_server_on(held, Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/candles"
    finally:
        server.shutdown()
        server.server_close()
        if held is not None:
            held.refuse()

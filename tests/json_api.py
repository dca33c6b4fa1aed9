"""A real local HTTP JSON server whose answers a test steers (status, body, ETag)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class API:
    """What the local server answers: a body, a status and an ETag, changeable by the test."""

    def __init__(self) -> None:
        self.status = 200
        self.body: object = []
        self.etag: str | None = None
        self.requests: list[dict] = []


@contextmanager
def serve_json_api() -> Iterator[tuple[API, str]]:
    """Serve `API` on a free loopback port; yields it and the URL to poll."""
    state = API()

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.requests.append(
                {"method": self.command, "headers": dict(self.headers), "body": self.rfile.read(length)}
            )
            if state.etag and self.headers.get("If-None-Match") == state.etag:
                self.send_response(304)
                self.end_headers()
                return
            raw = state.body if isinstance(state.body, bytes) else json.dumps(state.body).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            if state.etag:
                self.send_header("ETag", state.etag)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/candles"
    finally:
        server.shutdown()
        server.server_close()

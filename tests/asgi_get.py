"""One GET driven through the whole ASGI app by hand, as daphne calls it, so that a test decides
when the client leaves (the SSE and export tests)."""

from __future__ import annotations

import asyncio


class AsgiGet:
    """The client's side of one GET: its scope, and a receive that sends the request and then
    waits for `_leave` to say that the client went away."""

    def __init__(self, path: str, *, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        path, _, query = path.partition("?")
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"testserver"), *(headers or [])],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self._requested = False
        self._leave = asyncio.Event()

    async def _receive(self) -> dict:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._leave.wait()
        return {"type": "http.disconnect"}

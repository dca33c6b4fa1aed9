"""redis.asyncio clients for history and the push inbox, one per event loop.

A redis.asyncio connection belongs to the loop that made it; the process has one loop in
production, but tests (and async_to_sync in sync views) run several.
"""

from __future__ import annotations

import asyncio
from typing import Any


class LoopClients:
    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}

    def get(self) -> Any:
        import redis.asyncio as redis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for stale in [known for known in self._clients if known.is_closed()]:
                del self._clients[stale]
            # A blocking pool: with a thousand feed tasks calling at once (a worker starting),
            # callers past the pool's 100 connections wait for one instead of failing with
            # "Too many connections".
            pool = redis.BlockingConnectionPool.from_url(self.url, max_connections=100, timeout=20)
            client = self._clients[loop] = redis.Redis(connection_pool=pool)
        return client

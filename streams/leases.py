"""Which ingest worker runs which stream: a Redis lease per stream.

Each worker claims streams with SET NX PX and renews the ones it holds on every rescan; a
worker that dies stops renewing, its leases expire, and another worker takes the streams over.
Without Redis (the embedded mode) there is one process, so every claim succeeds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from streams.redis_clients import async_client

LEASE_MS = 5_000

# Renew only a lease we still hold: compare the owner, then extend, atomically.
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leases:
    def __init__(
        self, *, url: str | None = None, prefix: str | None = None, lease_ms: int = LEASE_MS
    ) -> None:
        self.url = settings.REDIS_URL if url is None else url
        self.prefix = settings.LIVECHARTS_REDIS_PREFIX if prefix is None else prefix
        self.lease_ms = lease_ms
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _redis(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = async_client(self.url), loop
            self._renew = self._client.register_script(RENEW_SCRIPT)
            self._release = self._client.register_script(RELEASE_SCRIPT)
        return self._client

    def key(self, slug: str) -> str:
        return f"{self.prefix}:lease:{slug}"

    async def hold(self, slugs: Iterable[str], *, held: set[str]) -> set[str]:
        """Renew the leases in `held`, try to claim the rest; return the slugs now ours."""
        slugs = list(slugs)
        if not self.url:
            return set(slugs)
        client = self._redis()
        ours: set[str] = set()
        for slug in slugs:
            renewed = slug in held and await self._renew(
                keys=[self.key(slug)], args=[self.owner, self.lease_ms]
            )
            if renewed or await client.set(self.key(slug), self.owner, nx=True, px=self.lease_ms):
                ours.add(slug)
        return ours

    async def release(self, slugs: Iterable[str]) -> None:
        if not self.url:
            return
        self._redis()
        for slug in slugs:
            await self._release(keys=[self.key(slug)], args=[self.owner])

"""Both probes: `/healthz` (the process is alive) and `/readyz` (it can serve: the database,
Redis and the channel layer answer).

`/readyz` says whether the process can do its work, so a load balancer sends viewers elsewhere
while Redis or the database is away. Each check runs at once with the others and is bounded by
CHECK_SECONDS, so a probe never hangs on a dead service. Failures are named by kind only (no
host, port or password in a public answer); the details go to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)

CHECK_SECONDS = 2.0
OK = "ok"
NOT_CONFIGURED = "not configured"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@never_cache
async def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, Redis and the channel layer answer; 503 naming those that do not."""
    checks = await check_all()
    down = failing(checks)
    return JsonResponse({"ready": not down, "failing": down, "checks": checks}, status=503 if down else 200)


async def check_all() -> dict[str, str]:
    """Each dependency's state: "ok", "not configured" (embedded mode: no Redis), or what failed."""
    checks: dict[str, Callable[[], Awaitable[str]]] = {
        "database": _database,
        "redis": _redis,
        "channel_layer": _channel_layer,
    }
    results = await asyncio.gather(*(_bounded(name, check) for name, check in checks.items()))
    return dict(zip(checks, results, strict=True))


def failing(results: dict[str, str]) -> list[str]:
    return [name for name, state in results.items() if state not in (OK, NOT_CONFIGURED)]


async def _bounded(name: str, check: Callable[[], Awaitable[str]]) -> str:
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            return await check()
    except TimeoutError:
        log.warning("readyz: %s did not answer within %g s", name, CHECK_SECONDS)
        return f"no answer within {CHECK_SECONDS:g} s"
    except Exception as error:
        log.warning("readyz: %s failed: %s: %s", name, type(error).__name__, error)
        return f"unreachable ({type(error).__name__})"


async def _database() -> str:
    await sync_to_async(_query_database, thread_sensitive=True)()
    return OK


def _query_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # The probe is not a request: close a connection CONN_MAX_AGE says not to keep.
        connection.close_if_unusable_or_obsolete()


async def _redis() -> str:
    if not settings.REDIS_URL:
        return NOT_CONFIGURED
    from streams.storage.redis_clients import async_client

    # REDIS_URL (history, leases, inboxes) and every shard of the channel layer.
    urls = dict.fromkeys([settings.REDIS_URL, *getattr(settings, "LIVECHARTS_LAYER_REDIS_URLS", [])])
    clients = [async_client(url, socket_connect_timeout=CHECK_SECONDS) for url in urls]
    try:
        await asyncio.gather(*(client.ping() for client in clients))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    return OK


async def _channel_layer() -> str:
    """A message sent to a fresh channel of the layer comes back."""
    layer = get_channel_layer()
    if layer is None:
        return NOT_CONFIGURED
    channel = await layer.new_channel()
    try:
        await layer.send(channel, {"type": "readyz.ping"})
        message = await layer.receive(channel)
    finally:
        # RedisPubSubChannelLayer subscribes a new channel and unsubscribes it only when a
        # receive on it is cancelled (channels_redis pubsub.py, receive()): do just that.
        leftover = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
        leftover.cancel()
        await asyncio.gather(leftover, return_exceptions=True)
    if message.get("type") != "readyz.ping":
        return "answered with another message"
    return OK

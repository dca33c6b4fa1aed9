"""Every Redis client of the project made from one address form, plain or under Sentinel.

Addresses: `redis://`, `rediss://` and `unix://` URLs as redis-py reads them, and
`redis+sentinel://[:password@]host:port[,host:port...]/<service>[/<db>]` for a master that
Sentinel fails over (`rediss+sentinel://` for TLS to the master). Under Sentinel a client asks
the sentinels where the master is on each new connection, so after a failover the next
command reaches the promoted replica; a command in flight when the master died fails and the
caller's retry lands on the new one.

redis.asyncio connections belong to the loop that made them: `loop_client` keeps one client per
event loop in the runtime registry (one loop in production; tests and async_to_sync in sync views
run several).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from streams.core import runtime

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
PLAIN_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379


class RedisAddressError(ValueError):
    """An address that is neither a Redis URL nor a Sentinel form; the message says why."""


@dataclass(frozen=True)
class SentinelAddress:
    service: str
    sentinels: tuple[tuple[str, int], ...]
    db: int = 0
    password: str | None = None
    username: str | None = None
    ssl: bool = False

    def master_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"db": self.db}
        if self.password is not None:
            kwargs["password"] = self.password
        if self.username is not None:
            kwargs["username"] = self.username
        if self.ssl:
            kwargs["ssl"] = True
        return kwargs


def parse_address(url: str) -> str | SentinelAddress:
    """`url` itself for a plain Redis URL, a SentinelAddress for the Sentinel form."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in PLAIN_SCHEMES:
        return url
    if scheme not in SENTINEL_SCHEMES:
        raise RedisAddressError(
            f"{safe(url)!r} is not a redis://, rediss://, unix:// or redis+sentinel:// address"
        )
    parts = urlsplit(url)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels = []
    for item in hosts.split(","):
        host, port = _host_port(item.strip())
        if not host:
            raise RedisAddressError(f"{safe(url)}: a sentinel address is empty")
        try:
            number = int(port) if port else DEFAULT_SENTINEL_PORT
        except ValueError:
            raise RedisAddressError(f"{safe(url)}: sentinel port {port!r} is not a number") from None
        sentinels.append((host, number))
    path = [piece for piece in parts.path.split("/") if piece]
    if not path:
        raise RedisAddressError(
            f"{safe(url)}: name the Sentinel service, e.g. redis+sentinel://h:26379/mymaster/0"
        )
    if len(path) > 2:
        raise RedisAddressError(f"{safe(url)}: the path is /<service>[/<db>]")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise RedisAddressError(f"{safe(url)}: database {path[1]!r} is not a number") from None
    return SentinelAddress(
        service=unquote(path[0]),
        sentinels=tuple(sentinels),
        db=db,
        password=unquote(parts.password) if parts.password else None,
        username=unquote(parts.username) if parts.username else None,
        ssl=SENTINEL_SCHEMES[scheme],
    )


def split_addresses(text: str) -> list[str]:
    """A comma-separated list of addresses, where a Sentinel address's own commas (between its
    hosts) do not split: a new item starts only where a scheme (`xxx://`) follows the comma."""
    return [item.strip() for item in re.split(r",(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)", text) if item.strip()]


def _host_port(item: str) -> tuple[str, str]:
    if item.startswith("["):  # [::1]:26379
        host, _, rest = item[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = item.partition(":")
    return host, port


def safe(url: str) -> str:
    """The address without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


# The channel layer's read timeout. channels-redis sets none, so redis-py's default holds: 5 s
# from redis-py 8.0, exactly RedisChannelLayer's blocking wait for a message (BZPOPMIN, 5 s),
# so a consumer idle for 5 s got TimeoutError from `receive`, and its socket was lost;
# before 8.0 none at all, so a hung Redis held group_send for good. Above that wait, with room.
LAYER_READ_TIMEOUT_SECONDS = 15.0


def layer_host(url: str) -> dict[str, Any]:
    """The `hosts` entry channels-redis takes for `url` (it builds Sentinel pools itself)."""
    address = parse_address(url)
    if isinstance(address, str):
        return {"address": address, "socket_timeout": LAYER_READ_TIMEOUT_SECONDS}
    return {
        "master_name": address.service,
        "sentinels": [list(pair) for pair in address.sentinels],
        "socket_timeout": LAYER_READ_TIMEOUT_SECONDS,
        **address.master_kwargs(),
    }


# No command is sent twice by redis-py: one that timed out or lost its connection may have run
# (an XADD to the push inbox, the tick's history script, a PUBLISH), and only its caller knows
# whether sending it again is safe (the flush keeps its batches for the next tick, a feed
# reconnects). redis-py leaves a client made from a URL without retries today, while `Redis()`
# itself retries ten times from 8.0; said here, so no release can change it under us.
RETRIES = 0


def _no_retry(*, asynchronous: bool) -> Any:
    from redis.backoff import NoBackoff

    if asynchronous:
        from redis.asyncio.retry import Retry as AsyncRetry

        return AsyncRetry(NoBackoff(), RETRIES)
    from redis.retry import Retry

    return Retry(NoBackoff(), RETRIES)


def async_client(url: str, *, blocking: bool = False, **options: Any) -> Any:
    """A redis.asyncio client for `url`. `blocking`: a caller past the pool's connections waits
    for one instead of failing with "Too many connections" (a thousand feed tasks at start)."""
    import redis.asyncio as redis
    from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

    options.setdefault("retry", _no_retry(asynchronous=True))
    address = parse_address(url)
    if isinstance(address, str):
        if blocking:
            pool = redis.BlockingConnectionPool.from_url(url, max_connections=100, timeout=20, **options)
            return redis.Redis(connection_pool=pool)
        return redis.from_url(url, **options)
    sentinel = Sentinel(list(address.sentinels), socket_timeout=options.get("socket_connect_timeout", 2))
    pool_class = _blocking_sentinel_pool() if blocking else SentinelConnectionPool
    extra = {"max_connections": 100, "timeout": 20} if blocking else {}
    return sentinel.master_for(
        address.service, connection_pool_class=pool_class, **address.master_kwargs(), **extra, **options
    )


def sync_client(url: str, **options: Any) -> Any:
    """A blocking redis client for `url` (readiness checks, management commands)."""
    import redis
    from redis.sentinel import Sentinel

    options.setdefault("retry", _no_retry(asynchronous=False))
    address = parse_address(url)
    if isinstance(address, str):
        return redis.from_url(url, **options)
    sentinel = Sentinel(list(address.sentinels), socket_timeout=options.get("socket_connect_timeout", 2))
    return sentinel.master_for(address.service, **address.master_kwargs(), **options)


def _blocking_sentinel_pool() -> type:
    from redis.asyncio.connection import BlockingConnectionPool
    from redis.asyncio.sentinel import SentinelConnectionPool

    class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
        """Sentinel's pool (finds the master) with BlockingConnectionPool's wait for a free one."""

    return BlockingSentinelPool


def loop_client(url: str, *, user: str, blocking: bool = True) -> Any:
    """This event loop's client for `url`, one pool per `user` (the window, the inbox, the
    leases: an inbox's blocking reads never hold the window's connections), closed with its loop."""
    return runtime.get(
        ("storage.redis", user, url, blocking),
        lambda: async_client(url, blocking=blocking),
        close=_close_client,
    )


async def _close_client(client: Any) -> None:
    # The pool too: a client given its pool does not close it by itself (channels_redis's
    # _close_redis does the same), and its connections would outlive their loop.
    await client.aclose(close_connection_pool=True)

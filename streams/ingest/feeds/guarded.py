"""Feed connections that go only where streams/ingest/netguard.py allows, for each client library.

Each one resolves the host through `netguard.resolve` (every address checked) and connects to a
checked address instead of the name, so a DNS answer that changes between the check and the
connect cannot send a feed elsewhere; TLS still uses the name for SNI and certificate checks.
Redirects (httpx, websockets) open new connections through the same path and are checked too.
Feeds connect directly: proxies from the environment (HTTP_PROXY, ...) are not used, since a
proxy would do its own lookup out of our sight.
"""

from __future__ import annotations

import asyncio
import socket
import typing
from typing import Any

import httpcore
import httpx
from websockets.asyncio.client import ClientConnection, connect

from streams.ingest import netguard


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the host resolved and checked before connecting."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await netguard.resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"looking up {host} took over {timeout:g} s") from None
        except OSError as error:
            raise httpcore.ConnectError(error.strerror or str(error)) from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last = error
        assert last is not None  # resolve() returns at least one address or raises
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("feeds do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(**options: Any) -> httpx.AsyncHTTPTransport:
    """An httpx transport (pass it as `transport=` to AsyncClient) whose connections are checked.

    A hack: httpx's transport takes no network backend, so the one of the httpcore pool it
    builds is wrapped after the fact (httpcore.AsyncConnectionPool keeps it in
    `_network_backend`). tests/ingest/test_netguard.py fails if that attribute goes away.
    """
    transport = httpx.AsyncHTTPTransport(**options)
    pool = transport._pool
    pool._network_backend = GuardedNetworkBackend(pool._network_backend)
    return transport


class guarded_connect(connect):
    """websockets' `connect`, opening each TCP connection (redirects too) to a checked address."""

    def __init__(self, uri: str, **kwargs: Any) -> None:
        kwargs["proxy"] = None
        super().__init__(uri, **kwargs)

    async def open_tcp_connection(self) -> ClientConnection:
        host, port = self.ws_uri.host, self.ws_uri.port
        addresses = await netguard.resolve(host, port)
        kwargs = self.create_connection_kwargs
        last: OSError | None = None
        for address in addresses:
            # Only for this connection: process_redirect reads these kwargs and refuses
            # cross-origin redirects when host is set.
            self.create_connection_kwargs = {**kwargs, "host": address, "port": port}
            try:
                return await super().open_tcp_connection()
            except OSError as error:
                last = error
            finally:
                self.create_connection_kwargs = kwargs
        assert last is not None
        raise last


def connect_socket_blocking(
    host: str, port: int, *, timeout: float | None, source: tuple[str, int] | None
) -> socket.socket:
    """A TCP socket to a checked address of `host` (for paho-mqtt, which connects in a thread)."""
    last: OSError | None = None
    for address in netguard.resolve_blocking(host, port):
        try:
            return socket.create_connection((address, port), timeout=timeout, source_address=source)
        except OSError as error:
            last = error
    assert last is not None
    raise last

"""Real local data sources for end-to-end tests: a WebSocket server and an SSE server.

Each runs on threads of its own, so it keeps serving the LiveCharts process under test while
the test blocks (starting a server process, waiting on a socket). The test decides what they
send and when. For polled JSON see tests/json_api.py; MQTT goes through the shared Mosquitto.
"""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
from collections.abc import Coroutine
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve

from tests.processes import HeldPort

T = TypeVar("T")
# The longest a source waits for a client (the feed under test) to connect before sending.
CLIENT_TIMEOUT = 15.0


def http_server_on(held: HeldPort, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A threading HTTP server listening on `held`'s port, not yet serving. Its server_close()
    leaves the port bound: `held.refuse()` after it, and a later server can listen there again."""
    server = ThreadingHTTPServer(("127.0.0.1", held.port), handler, bind_and_activate=False)
    server.socket.close()  # the constructor's own socket, never bound
    server.socket = held.listening()
    server.daemon_threads = True
    return server


class LoopThread:
    """An asyncio event loop on a daemon thread; `run` hands it a coroutine and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="source loop")
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], *, timeout: float = CLIENT_TIMEOUT + 5) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class WebsocketSource:
    """A `websockets` server on 127.0.0.1 that pushes the JSON messages `send` is given to every
    connected client, and records what clients send it (subscribe messages).

    Its port is held from the start, bound but not listening: until `start()` the source is down
    (connections are refused) at a URL known up front, and no other process can take the port.
    """

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.received: list[str] = []
        self.clients: set[ServerConnection] = set()
        self._loop = LoopThread()
        self._server: Server | None = None
        self._connected: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/feed"

    def start(self) -> None:
        self._loop.run(self._start())

    def send(self, *messages: Any) -> None:
        """Send each message (JSON-encoded) to every client, waiting for a first client if none."""
        self._loop.run(self._send(messages))

    def close(self) -> None:
        if self._server is not None:
            self._loop.run(self._stop())
        self._socket.close()
        self._loop.close()

    async def _start(self) -> None:
        self._connected = asyncio.Event()
        self._server = await serve(self._handler, sock=self._socket)  # it listens from here

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def _handler(self, connection: ServerConnection) -> None:
        self.clients.add(connection)
        assert self._connected is not None
        self._connected.set()
        try:
            async for message in connection:
                self.received.append(str(message))
        finally:
            self.clients.discard(connection)

    async def _send(self, messages: tuple[Any, ...]) -> None:
        assert self._connected is not None, "start() the source first"
        async with asyncio.timeout(CLIENT_TIMEOUT):
            await self._connected.wait()
        for message in messages:
            for client in list(self.clients):
                await client.send(json.dumps(message))


class SSESource:
    """A `text/event-stream` endpoint on 127.0.0.1 (HTTP/1.1, chunked) that sends the events
    `send` is given to every connected client, and a `:` keep-alive comment every second."""

    def __init__(self) -> None:
        self.clients: list[queue.Queue[bytes | None]] = []
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._left = threading.Condition(self._lock)  # notified as each client's handler ends
        self._connected = threading.Event()
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                source.requests.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.close_connection = True
                events: queue.Queue[bytes | None] = queue.Queue()
                with source._lock:
                    source.clients.append(events)
                source._connected.set()
                try:
                    self.write(b": hello\n\n")
                    while True:
                        try:
                            chunk = events.get(timeout=1.0)
                        except queue.Empty:
                            chunk = b": keep-alive\n\n"
                        if chunk is None:  # the source is closing
                            self.wfile.write(b"0\r\n\r\n")
                            return
                        self.write(chunk)
                except OSError:
                    pass  # the client went away
                finally:
                    with source._left:
                        source.clients.remove(events)
                        source._left.notify_all()

            def write(self, chunk: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def send(self, value: Any, *, event: str | None = None, id: str | None = None) -> None:
        """One event whose data is `value` as JSON, to every client (waiting for a first one)."""
        if not self._connected.wait(CLIENT_TIMEOUT):
            raise TimeoutError(f"no client connected to {self.url} within {CLIENT_TIMEOUT} s")
        lines = [f"id: {id}"] if id is not None else []
        lines += [f"event: {event}"] if event is not None else []
        lines.append(f"data: {json.dumps(value)}")
        chunk = ("\n".join(lines) + "\n\n").encode()
        with self._lock:
            for client in self.clients:
                client.put(chunk)

    def close(self) -> None:
        with self._left:
            for client in self.clients:
                client.put(None)
            # Each handler ends its response cleanly; a client that stopped reading may hold
            # its handler in a write, and the shutdown below goes on without it.
            self._left.wait_for(lambda: not self.clients, timeout=CLIENT_TIMEOUT)
        self.server.shutdown()
        self.server.server_close()

"""Writing a frame straight to a daphne WebSocket, framed once for every socket it goes to.

Under daphne, an ASGI `websocket.send` costs about 200 µs of CPU (DESIGN.md, what costs
what): the message crosses channels' session wrapper, daphne's reply hop, and autobahn frames
and UTF-8 encodes it again for each socket. A tick that sends the same frame to a thousand
viewers needs that work once. autobahn's own broadcast API does exactly this:
`PreparedMessage` frames a payload once and `sendPreparedMessage` writes those bytes to each
connection. We reach daphne's protocol object through the `send` callable it gave the
application (`functools.partial(Server.handle_reply, protocol)`, possibly wrapped by channels'
session middleware). Under any other server, or when the chain is not what we expect, there
is no direct writer and the consumer uses plain ASGI sends: slower, never wrong.

The direct path reads private attributes of autobahn's protocol and Twisted's TCP transport
(the versions pyproject.toml pins). Each socket's are checked when its writer is made: when
one is missing (a release that renamed it), that socket uses plain ASGI sends, said once in
the log and counted in `stats.plain_fallbacks`, rather than a write that raises every frame.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import struct
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autobahn.websocket.protocol import PreparedMessage, WebSocketProtocol
from twisted.internet import tcp

log = logging.getLogger(__name__)

# The most wrappers we look through before giving up (channels stacks one today).
_MAX_UNWRAP = 8
# What DirectWriter uses of autobahn's protocol, and of Twisted's TCP transport on the fast path.
PROTOCOL_NEEDS = (
    "state",
    "transport",
    "_perMessageCompress",
    "send_queue",
    "trafficStats",
    "sendPreparedMessage",
    "sendCloseFrame",
    "sendClose",
)
TCP_TRANSPORT_NEEDS = (
    "connected",
    "disconnecting",
    "_writeDisconnected",
    "TLS",
    "_tempDataLen",
    "offset",
    "dataBuffer",
    "socket",
    "write",
)


@dataclass
class TransportStats:
    """Counters for /metrics; never reset."""

    # Sockets under daphne given plain ASGI sends because autobahn's or Twisted's internals
    # were not as DirectWriter expects.
    plain_fallbacks: int = 0


stats = TransportStats()
_fallback_reported = False
# The kernel's send queue is asked (a syscall) at most this often per socket, and only when
# what was written since it was last asked could have taken the socket past its budget.
KERNEL_CHECK_SECONDS = 0.25
_OPEN = WebSocketProtocol.STATE_OPEN
_TCP_SERVER = tcp.Server


def prepare(text: str) -> PreparedMessage:
    """One text frame, encoded and framed once (server frames are not masked)."""
    return PreparedMessage(text.encode(), False, False, False)


class DirectWriter:
    """Writes prepared frames to one daphne WebSocket connection, and tells how far behind
    its reader is."""

    __slots__ = ("_kernel_checked_at", "_kernel_queued", "_octets_at_check", "protocol", "traffic")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        # autobahn's count of the bytes it handed to the transport while open (ours included,
        # see write): how much the kernel's queue can have grown since it was last asked.
        self.traffic = protocol.trafficStats
        self._kernel_checked_at = -KERNEL_CHECK_SECONDS
        self._kernel_queued = 0
        self._octets_at_check = self.traffic.outgoingOctetsWireLevel

    @property
    def is_open(self) -> bool:
        return self.protocol.state == _OPEN

    def write(self, frame: PreparedMessage) -> None:
        """The frame to the socket: at once when nothing waits before it, else behind what
        waits, through autobahn.

        Hack: with the connection open, plain TCP, and nothing of autobahn's or Twisted's own
        waiting to be written, the bytes go to the socket at once, as Twisted's own `doWrite`
        would on the next loop turn. `transport.write` only buffers them and registers the
        socket for writing; the write then happens in a later loop iteration, which removes
        the registration again: two epoll changes and a callback per frame, about a third of
        daphne's CPU when a tick sends a frame to each of a thousand sockets (py-spy, 1,000
        viewers). With nothing buffered, sending now keeps the byte order; what the kernel
        does not take goes to Twisted's buffer as usual, and an error leaves the bytes to
        Twisted too, which then sees the connection lost. The checks are inline (no helper
        calls): a tick runs this once per socket."""
        protocol = self.protocol
        if protocol.state != _OPEN:
            return
        transport = protocol.transport
        if (
            protocol._perMessageCompress is None
            and not protocol.send_queue
            and type(transport) is _TCP_SERVER
            and transport.connected
            and not transport.disconnecting
            and not transport._writeDisconnected
            and not transport.TLS
            and not transport._tempDataLen
            and transport.offset == len(transport.dataBuffer)
        ):
            data = frame.payloadHybi
            try:
                sent = transport.socket.send(data)
            except OSError:  # EWOULDBLOCK, ENOBUFS, a reset: Twisted's path handles each
                sent = 0
            if sent < len(data):
                transport.write(data[sent:])
            self.traffic.outgoingOctetsWireLevel += len(data)  # as autobahn counts
        else:
            protocol.sendPreparedMessage(frame)

    def lane_parts(self) -> LaneParts | None:
        """What `write_each` needs of this socket, looked up once (none of it changes while the
        connection lasts), or None when it may not write to it: not open, not plain TCP, or
        compressed."""
        protocol = self.protocol
        transport = protocol.transport
        if (
            protocol.state != _OPEN
            or protocol._perMessageCompress is not None
            or type(transport) is not _TCP_SERVER
            or transport.TLS
        ):
            return None
        return (self, protocol, transport, self.traffic, transport.socket.send)

    def behind(self, budget: int) -> bool:
        """Whether more than `budget` bytes are written and not yet taken by the client:
        Twisted's buffer plus the kernel's send queue (which alone holds up to a few MB on
        Linux before Twisted buffers any).

        The kernel's queue is asked (an ioctl) only when it could be past the budget: it holds
        at most what it held when last asked plus every byte written since (autobahn counts
        them), so a reader that keeps up is asked about once per `budget` bytes written, not
        every KERNEL_CHECK_SECONDS. Past that bound it is asked at most every
        KERNEL_CHECK_SECONDS, the last answer standing in between, as before."""
        transport = self.protocol.transport
        if transport is None:
            return False
        buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
        buffered += getattr(transport, "_tempDataLen", 0)
        octets = self.traffic.outgoingOctetsWireLevel
        grown = octets - self._octets_at_check  # below 0 only if autobahn's counts were reset
        if grown >= 0 and buffered + self._kernel_queued + grown <= budget:
            return False  # cannot be behind, whatever the reader took since
        now = time.monotonic()
        if now - self._kernel_checked_at >= KERNEL_CHECK_SECONDS:
            self._kernel_checked_at = now
            self._octets_at_check = octets
            self._kernel_queued = kernel_send_queue(transport)
        return buffered + self._kernel_queued > budget

    def backlog_bytes(self) -> int:
        """Bytes written and not yet taken by the client (Twisted's buffer plus the kernel's
        queue, asked now): for tests and diagnostics; the hot path asks `behind`."""
        transport = self.protocol.transport
        if transport is None:
            return 0
        buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
        return buffered + getattr(transport, "_tempDataLen", 0) + kernel_send_queue(transport)

    def going_away(self) -> None:
        """Close with 1001 (the server is going down): browsers reconnect at once, to another
        process behind the proxy or to this one when it is back. autobahn's public close
        refuses 1001 (it allows 1000 and 3000-4999 to applications), so the frame is sent
        through its lower-level call."""
        if self.is_open:
            self.protocol.sendCloseFrame(code=1001, reasonUtf8=b"server restarting", isReply=False)

    def close(self, code: int, reason: str) -> None:
        """Close with `code`. The close frame queues behind what the client has not read;
        autobahn drops the connection when no answer comes within its close handshake
        timeout (1 s), so a client that stopped reading is gone either way."""
        if self.is_open:
            self.protocol.sendClose(code=code, reason=reason)


# A writer, its protocol, transport and traffic counts, and its socket's `send`.
LaneParts = tuple[DirectWriter, Any, Any, Any, Callable[[bytes], int]]


def write_each(targets: dict[Any, LaneParts], frame: PreparedMessage, budget: int) -> list[Any]:
    """One frame to every socket of a live lane (streams/delivery/hub.py), at once; returns the
    keys of the sockets it did not write to, for the general path to judge.

    `DirectWriter.write`'s fast path and `behind`'s bound, inline, once per socket per tick
    (thousands): a writer is skipped when anything is not simple, that is when it is closing,
    has anything buffered (autobahn's queue, Twisted's buffer: a send fell short), or the
    bytes written since the kernel was last asked could take it past `budget`. The general
    path then asks the kernel (`behind`) and writes, or holds the socket back, as for any."""
    data = frame.payloadHybi
    size = len(data)
    skipped = []
    # Two lists, not a list of pairs: no new container per socket for the collector to count.
    sends: list[Callable[[bytes], int]] = []
    transports: list[Any] = []
    # Two passes: every socket's checks, then every send. Interleaved, each send's kernel work
    # pushed the next socket's objects out of the CPU's caches, and the checks cost half as
    # much again as the sends (py-spy, 500 viewers); apart, the sends run back to back.
    for key, (writer, protocol, transport, traffic, send) in targets.items():
        octets = traffic.outgoingOctetsWireLevel
        if (
            protocol.state != _OPEN
            or protocol.send_queue
            or transport._tempDataLen
            or transport.offset != len(transport.dataBuffer)
            or transport.disconnecting
            or transport._writeDisconnected
            or not transport.connected
            # Could the kernel's queue be past the budget? (`behind`'s bound, with nothing buffered.)
            or not 0 <= octets - writer._octets_at_check <= budget - writer._kernel_queued
        ):
            skipped.append(key)
            continue
        traffic.outgoingOctetsWireLevel = octets + size  # as autobahn counts, sent below
        sends.append(send)
        transports.append(transport)
    for send, transport in zip(sends, transports, strict=True):
        try:
            sent = send(data)
        except OSError:  # EWOULDBLOCK, ENOBUFS, a reset: Twisted's path handles each
            sent = 0
        if sent < size:
            transport.write(data[sent:])
    return skipped


def direct_writer(send: Callable[..., Any]) -> DirectWriter | None:
    """The direct writer for a socket whose ASGI `send` daphne made, or None."""
    for _ in range(_MAX_UNWRAP):
        if isinstance(send, functools.partial):
            protocol = send.args[0] if send.args else None
            if getattr(send.func, "__name__", "") == "handle_reply" and isinstance(
                protocol, WebSocketProtocol
            ):
                missing = missing_internals(protocol)
                if missing is not None:
                    _fall_back(missing)
                    return None
                return DirectWriter(protocol)
            return None
        # channels.sessions.InstanceSessionWrapper.send keeps the server's send as real_send.
        inner = getattr(getattr(send, "__self__", None), "real_send", None)
        if inner is None:
            return None
        send = inner
    return None


def missing_internals(protocol: Any) -> str | None:
    """The first private name DirectWriter needs that this protocol (or its TCP transport, or
    autobahn's prepared frame) lacks, or None when all are there."""
    for name in PROTOCOL_NEEDS:
        if not hasattr(protocol, name):
            return f"{type(protocol).__name__}.{name}"
    if not hasattr(protocol.trafficStats, "outgoingOctetsWireLevel"):
        return "TrafficStats.outgoingOctetsWireLevel"
    if not hasattr(WebSocketProtocol, "STATE_OPEN"):
        return "WebSocketProtocol.STATE_OPEN"
    transport = protocol.transport
    if type(transport) is tcp.Server:
        for name in TCP_TRANSPORT_NEEDS:
            if not hasattr(transport, name):
                return f"tcp.Server.{name}"
    if not _prepared_frames_work():
        return "PreparedMessage.payloadHybi"
    return None


@functools.cache
def _prepared_frames_work() -> bool:
    try:
        return isinstance(prepare("").payloadHybi, bytes)
    except Exception:
        return False


def _fall_back(missing: str) -> None:
    global _fallback_reported
    stats.plain_fallbacks += 1
    if not _fallback_reported:
        _fallback_reported = True
        log.warning(
            "autobahn's or Twisted's internals are not as this version expects (%s is missing): "
            "sockets use plain ASGI sends, slower (livecharts_direct_write_fallbacks_total counts "
            "them); install the autobahn and Twisted versions pyproject.toml pins",
            missing,
        )


def kernel_send_queue(transport: Any) -> int:
    """Bytes in the socket's kernel send queue not yet acknowledged (Linux SIOCOUTQ), or 0."""
    try:
        answer = fcntl.ioctl(transport.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (AttributeError, OSError, ValueError):
        return 0
    return struct.unpack("i", answer)[0]

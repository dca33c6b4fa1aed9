"""The floor under daphne's cost per frame: a bare `socket.send` of one frame to each of many
loopback TCP sockets, from Python, nothing else.

    .venv/bin/python -m bench.send_floor [--sockets 2000] [--bytes 2000 | --points 50]
        [--reader none|process] [--rounds 30]

Each round sends one frame to every socket (CPU timed, nothing else is).

- `--reader none` (the default): the peers are drained by this process between rounds, not
  blocked in epoll_wait, so no send pays for waking a reader: on loopback the receiver's TCP
  work is charged to the sender's system call, as it is in the fan-out bench, but its wake-ups
  are not. The floor of the send alone.
- `--reader process`: another process holds the peers and reads them as the fan-out bench's
  viewers do (bench/cclients.c: epoll, every socket that is readable read out, a 1 ms pause
  between turns), while the rounds go at the fan-out's tick (one every 50 ms). Each send then
  also pays what the fan-out's do: the reader's epoll callback, and the socket's state last
  touched by the reader on the other core. The floor under the fan-out bench's figure.

`--points 50` sends a real points frame (streams/core/frames.py) of 50 points, what a stream of
1,000 points/s puts in a 50 ms tick, rather than `--bytes` of filler.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import statistics
import time

TICK_SECONDS = 0.05


def points_frame_bytes(points: int) -> bytes:
    """A WebSocket text frame of one stream's batch of `points` points, as the hub writes it."""
    from streams.core.frames import batch_text, points_frame
    from streams.core.points import Entry, Point

    ms = int(time.time() * 1000)
    now = ms / 1000
    entries = [
        Entry(id=f"{ms}-{i + 1}", point=Point(t=now + i / 1000, values={"y": float(i)}))
        for i in range(points)
    ]
    text = points_frame([batch_text(slug="stream-0", prev=f"{ms}-0", entries=entries)])
    return ws_frame(text.encode())


def ws_frame(payload: bytes) -> bytes:
    """A server's unmasked text frame (payload under 65,536 bytes)."""
    if len(payload) >= 65536:
        raise ValueError("a frame of 65,536 bytes or more")
    if len(payload) < 126:
        return b"\x81" + bytes([len(payload)]) + payload
    return b"\x81\x7e" + len(payload).to_bytes(2, "big") + payload


def _read_like_the_viewers(clients: list[socket.socket], stop: int) -> None:
    """The reader process: every readable socket read out, a 1 ms pause between turns, until
    `stop` is readable (the parent closed it)."""
    poller = select.epoll()
    for client in clients:
        client.setblocking(False)
        poller.register(client.fileno(), select.EPOLLIN)
    poller.register(stop, select.EPOLLIN)
    by_fd = {client.fileno(): client for client in clients}
    while True:
        for fd, _ in poller.poll(1.0):
            if fd == stop:
                return
            try:
                while by_fd[fd].recv(1 << 16):
                    pass
            except BlockingIOError:
                pass
        time.sleep(0.001)


def _drain(clients: list[socket.socket]) -> None:
    for client in clients:
        try:
            while client.recv(1 << 16):
                pass
        except BlockingIOError:
            pass


def measure(sockets: int, frame: bytes, rounds: int, *, reader: str = "none") -> float:
    """µs of CPU per send."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    servers: list[socket.socket] = []
    clients: list[socket.socket] = []
    child = 0
    stop_read = stop_write = -1
    try:
        for _ in range(sockets):
            client = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
            server.setblocking(False)
            client.setblocking(False)
            servers.append(server)
            clients.append(client)
        if reader == "process":
            stop_read, stop_write = os.pipe()
            child = os.fork()
            if child == 0:  # the reader
                try:
                    os.close(stop_write)
                    for server in servers:
                        server.close()
                    _read_like_the_viewers(clients, stop_read)
                finally:
                    os._exit(0)
            os.close(stop_read)
            for client in clients:
                client.close()
            clients = []
        sends = [server.send for server in servers]
        spent = 0.0
        for _ in range(rounds):
            began = time.process_time()
            for send in sends:
                send(frame)
            spent += time.process_time() - began
            if reader == "process":
                time.sleep(TICK_SECONDS)
            else:
                _drain(clients)
        return 1e6 * spent / (rounds * sockets)
    finally:
        if child:
            os.close(stop_write)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
        for sock in [*servers, *clients]:
            sock.close()
        listener.close()


def floor_us(sockets: int, points: int, *, runs: int = 3, rounds: int = 20) -> tuple[float, int]:
    """The median over `runs` of the send floor with a reader process, and the frame's bytes:
    what bench/__main__.py writes under the fan-out's goals."""
    frame = points_frame_bytes(points)
    return statistics.median(measure(sockets, frame, rounds, reader="process") for _ in range(runs)), len(
        frame
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.send_floor", description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--bytes", type=int, default=2000, help="payload of each frame (under 65,536)")
    parser.add_argument(
        "--points", type=int, default=0, help="a real points frame of this many points instead"
    )
    parser.add_argument("--reader", choices=("none", "process"), default="none")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    frame = points_frame_bytes(args.points) if args.points else ws_frame(b"x" * args.bytes)
    us = measure(args.sockets, frame, args.rounds, reader=args.reader)
    reading = "read by another process" if args.reader == "process" else "drained between rounds"
    print(
        f"socket.send of a {len(frame):,}-byte frame to {args.sockets:,} loopback sockets ({reading}): "
        f"{us:.1f} µs CPU each"
    )


if __name__ == "__main__":
    main()

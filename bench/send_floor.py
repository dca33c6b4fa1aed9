"""The floor under daphne's cost per frame: a bare `socket.send` of one frame to each of many
loopback TCP sockets, from Python, nothing else.

    .venv/bin/python -m bench.send_floor [--sockets 2000] [--bytes 2000] [--rounds 30]

Each round sends one frame to every socket (CPU timed), then drains the peers (not timed), so
no send finds a full buffer. The peers are read by this process between rounds, not blocked
in epoll_wait, so no send pays for waking a reader: on loopback the receiver's TCP work is
charged to the sender's system call, as it is in the fan-out bench, but its wake-ups are not.
"""

from __future__ import annotations

import argparse
import socket
import time


def measure(sockets: int, size: int, rounds: int) -> float:
    """µs of CPU per send."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    pairs = []
    try:
        for _ in range(sockets):
            client = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
            server.setblocking(False)
            client.setblocking(False)
            pairs.append((server, client))
        frame = b"\x81\x7e" + size.to_bytes(2, "big") + b"x" * size  # a text frame's bytes
        sends = [server.send for server, _ in pairs]
        spent = 0.0
        for _ in range(rounds):
            began = time.process_time()
            for send in sends:
                send(frame)
            spent += time.process_time() - began
            for _, client in pairs:
                try:
                    while client.recv(1 << 16):
                        pass
                except BlockingIOError:
                    pass
        return 1e6 * spent / (rounds * sockets)
    finally:
        for pair in pairs:
            for sock in pair:
                sock.close()
        listener.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.send_floor", description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--bytes", type=int, default=2000, help="payload of each frame (under 65,536)")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    us = measure(args.sockets, args.bytes, args.rounds)
    print(
        f"socket.send of a {args.bytes:,}-byte frame to {args.sockets:,} loopback sockets: "
        f"{us:.1f} µs CPU each"
    )


if __name__ == "__main__":
    main()

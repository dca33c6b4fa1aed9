"""A Redis on loopback that answers a client's handshake and then misbehaves on purpose: it
swallows some commands (never answers them) and, if asked, drops the connection right after one
arrives. For what a real redis-server will not do on cue: hang on a script, lose a connection
after running a command. It speaks just enough RESP3 for redis-py's handshake."""

from __future__ import annotations

import contextlib
import socket
import threading

SCRIPTS = frozenset({"EVALSHA", "EVAL", "SCRIPT"})


class FakeRedis:
    """`swallow`: commands never answered (recorded in `swallowed`, in order); with `drop`, the
    connection is closed as soon as one arrives, as when the link dies after the server ran it.
    Every other command is answered +OK."""

    def __init__(self, *, swallow: frozenset[str] = SCRIPTS, drop: bool = False) -> None:
        self.swallow = swallow
        self.drop = drop
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.swallowed: list[str] = []
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                self.conns.append(conn)
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        with contextlib.suppress(OSError, ValueError):
            while header := reader.readline():
                words = []
                for _ in range(int(header[1:])):  # an array of bulk strings
                    size = int(reader.readline()[1:])
                    words.append(reader.read(size + 2)[:-2].decode(errors="replace"))
                command = words[0].upper()
                if command in self.swallow:
                    self.swallowed.append(command)
                    if self.drop:
                        conn.shutdown(socket.SHUT_RDWR)
                        conn.close()
                        return
                elif command == "HELLO":
                    conn.sendall(b"%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n")
                else:
                    conn.sendall(b"+OK\r\n")

    def close(self) -> None:
        self.listener.close()
        for conn in self.conns:
            conn.close()

"""Log filters: one useful line per event, and repeats of the same warning rate-limited.

Seen in production rehearsal: a request with a foreign Host wrote a 31-line traceback (Django
logs DisallowedHost with the exception attached), and a one-second Redis outage wrote 132
ERROR lines, each with a traceback. The event was in the first line every time; the rest hid
the next real event.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

# Failures of the world outside, not of the code: their message says everything, the
# traceback only where in our code the wait happened.
OUTAGES: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, socket.gaierror)


def _outage_types() -> tuple[type[BaseException], ...]:
    kinds = list(OUTAGES)
    try:
        import redis.exceptions

        kinds += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    return tuple(kinds)


class OneLine(logging.Filter):
    """Drops the traceback of security warnings (DisallowedHost...) and of outages
    (a connection refused or timed out), naming the exception in the line instead."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.outages = _outage_types()

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        if not info or info[1] is None:
            return True
        error = info[1]
        if record.name.startswith("django.security."):
            record.exc_info = None
            record.exc_text = None
        elif isinstance(error, self.outages):
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class Repeats(logging.Filter):
    """Lets through the first of each warning (same logger, level and message template) in
    `seconds`, and says how many were held back when it next lets one through. INFO and
    below always pass: they are not the flood."""

    def __init__(self, seconds: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds = float(seconds)
        self.clock = clock
        self._lock = threading.Lock()
        # key -> (time last let through, held back since)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            last, held = self._seen.get(key, (None, 0))
            if last is not None and now - last < self.seconds:
                self._seen[key] = (last, held + 1)
                return False
            self._seen[key] = (now, 0)
            if len(self._seen) > 10_000:  # bounded: forget the oldest half
                for stale in sorted(self._seen, key=lambda k: self._seen[k][0])[:5_000]:
                    del self._seen[stale]
        if held:
            record.msg = f"{record.getMessage()} (and {held} more like it in the last {self.seconds:g} s)"
            record.args = None
        return True


class ListeningOnly(logging.Filter):
    """daphne.server at INFO says a dozen things at start (HTTP/2 support, endpoints...): of
    those only "Listening on TCP address ..." is news an operator needs; warnings all pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or str(record.msg).startswith("Listening on")

"""Queries the access watcher asks again every second, their SQL compiled once.

A round of the watcher (streams/access/revocation.py) asks the same questions second after
second: which of these streams are public, which of them this user may see. Building and
compiling the Django query was most of a round's cost (cProfile, one anonymous viewing:
`filter` and `as_sql` three quarters of 430 µs; 1.4 ms after the thread slept a second),
paid by every daphne process every second, and once per distinct signed-in user. The SQL of
such a query depends only on who asks and which slugs, so it is compiled once per those and
run again with its parameters: the database still answers every round, so access taken away
is seen as before.

Only for queries selecting one text column (slugs): their rows need none of Django's
converters.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections

# Compiled queries kept per process; the oldest is forgotten past this. A round needs one
# per distinct signed-in user watching a stream not public, plus one.
MAX_QUERIES = 1024


class CompiledTextQueries:
    """SQL and parameters of one-column text queries, by a key that determines them."""

    def __init__(self, *, size: int = MAX_QUERIES) -> None:
        self.size = size
        self._compiled: OrderedDict[Hashable, tuple[str, tuple[Any, ...]]] = OrderedDict()
        # Rounds run on each loop's own watcher thread; tests run several loops at once.
        self._lock = threading.Lock()
        # Queries compiled so far (a round that compiles nothing asked nothing new).
        self.compiled = 0

    def values(self, key: Hashable, build: Callable[[], Any], *, using: str = "default") -> set[str]:
        """The first column of every row of `build()` (a QuerySet of `values_list(..., flat=True)`
        on one text column), compiled only the first time `key` is asked on `using`'s database."""
        connection = connections[using]
        full_key = (using, connection.vendor, key)
        with self._lock:
            found = self._compiled.get(full_key)
            if found is not None:
                self._compiled.move_to_end(full_key)
        if found is None:
            try:
                found = build().query.get_compiler(using=using).as_sql()
            except EmptyResultSet:  # `slug IN ()`: Django answers it without asking
                return set()
            with self._lock:
                self._compiled[full_key] = found
                self.compiled += 1
                while len(self._compiled) > self.size:
                    self._compiled.popitem(last=False)
        sql, params = found
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}


QUERIES = CompiledTextQueries()

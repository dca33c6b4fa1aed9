"""Access, re-checked for every open socket subscription and event stream at once.

DESIGN.md: when access is taken away (permission changed, user deactivated or signed out,
stream disabled or deleted), that user's open sockets and SSE responses stop within a second.
One watcher per process re-checks every open viewer once per `CHECK_SECONDS`, in one call on
its own thread for all of them (each distinct viewing asked once: a hundred anonymous viewers
of a stream are one; that thread keeps its database connection from round to round), and
resolves the `revoked` future of those refused.

The watcher also keeps the stream rows its loop's subscribes read lately (`ROW_SECONDS`), and
hands the row a subscribe is reading to those asking for the same stream meanwhile, so that a
reconnect storm asks the database once per stream, not once per viewer, where the row alone
answers (an enabled public stream; staff). The promise holds: a viewing is watched from
the moment its answer was read (`since`), and a check round starts no later than
`since + CHECK_SECONDS`, so access taken away after that read ends it within a second, as for
a viewer who asked the database itself. A Stream saved or deleted in this process drops the rows
at once (changes made elsewhere are seen by the next read or round).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from streams.access.compiled import QUERIES
from streams.core import runtime

log = logging.getLogger(__name__)

# How often every open viewer's access is re-checked (DESIGN.md: stops within a second).
CHECK_SECONDS = 1.0
# Decoded session texts kept (decoded_session): more than the sessions a process watches.
MAX_DECODED_SESSIONS = 4096
# How long a stream row read for a subscribe answers later subscribes on the same loop.
ROW_SECONDS = 1.0
# Bumped whenever a Stream is saved or deleted in this process: older rows are not used.
_rows_generation = 0


def rows_generation() -> int:
    return _rows_generation


def stream_changed(**_: Any) -> None:
    """A Stream (or who may see it) changed in this process: cached rows are not used again."""
    global _rows_generation
    _rows_generation += 1


@dataclass(frozen=True, slots=True)
class Viewing:
    """One viewer watching one stream: the session (None for anonymous) and its user, and the
    stream. The unit the watcher re-checks (a socket subscription or an SSE response)."""

    session_key: str | None
    user_id: Any
    slug: str


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # "forbidden" | "not_found"
    message: str


@functools.lru_cache(maxsize=MAX_DECODED_SESSIONS)
def decoded_session(store: type, data: str) -> dict[str, Any]:
    """A database session's text decoded, its signature checked. The same text decodes the
    same, and a round re-reads every signed-in viewer's session each second: decoding (an HMAC,
    zlib, JSON) was about half of a round of signed-in viewers once its queries were compiled.
    Shared between rounds: read it, never change it."""
    return store().decode(data)


def signed_in_users(session_keys: Collection[str]) -> dict[str, Any]:
    """The active user each session is still signed in as; sessions signed out, expired or
    invalidated (a password change) are missing. Like auth.get_user, but read-only (it never
    flushes or cycles a session) and in bulk: one query for the sessions (database-backed
    engines) and one for the users (ModelBackend)."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
        load_backend,
    )
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
    from django.utils import timezone
    from django.utils.crypto import constant_time_compare

    store = import_module(settings.SESSION_ENGINE).SessionStore
    if issubclass(store, DatabaseStore):
        rows = store.get_model_class().objects.filter(
            session_key__in=session_keys, expire_date__gt=timezone.now()
        )
        sessions = {
            key: decoded_session(store, data) for key, data in rows.values_list("session_key", "session_data")
        }
    else:
        sessions = {key: store(key).load() for key in session_keys}
    user_model = get_user_model()
    claims: dict[str, tuple[str, Any, str]] = {}
    wanted: dict[str, set[Any]] = defaultdict(set)
    for key, data in sessions.items():
        backend_path, user_id = data.get(BACKEND_SESSION_KEY), data.get(SESSION_KEY)
        if user_id is None or backend_path not in settings.AUTHENTICATION_BACKENDS:
            continue
        user_id = user_model._meta.pk.to_python(user_id)
        claims[key] = (backend_path, user_id, data.get(HASH_SESSION_KEY) or "")
        wanted[backend_path].add(user_id)
    users: dict[tuple[str, Any], Any] = {}
    for backend_path, user_ids in wanted.items():
        backend = load_backend(backend_path)
        if isinstance(backend, ModelBackend):  # its get_user, for many users at once
            found = user_model._default_manager.filter(pk__in=user_ids)
            users.update(
                {(backend_path, user.pk): user for user in found if backend.user_can_authenticate(user)}
            )
        else:
            for user_id in user_ids:
                users[(backend_path, user_id)] = backend.get_user(user_id)
    signed_in: dict[str, Any] = {}
    for key, (backend_path, user_id, session_hash) in claims.items():
        user = users.get((backend_path, user_id))
        if user is None or not getattr(user, "is_active", True):
            continue
        if hasattr(user, "get_session_auth_hash"):
            hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
            if not any(constant_time_compare(session_hash, known) for known in hashes):
                continue  # the password changed: every other session is signed out
        signed_in[key] = user
    return signed_in


def check_viewings(viewings: Collection[Viewing]) -> dict[Viewing, Refusal]:
    """The viewings whose viewer may no longer see the stream, and why. One query for the sessions,
    one for their users, one for which watched streams are public, then per distinct signed-in
    user watching others one for all of those (plus one per user when some are refused, to tell
    deleted from forbidden)."""
    from django.contrib.auth.models import AnonymousUser

    from streams.models import Stream

    refusals: dict[Viewing, Refusal] = {}
    session_keys = {viewing.session_key for viewing in viewings if viewing.user_id is not None}
    # No signed-in viewer (every viewer of a public stream anonymous): nothing to ask.
    users = signed_in_users(session_keys) if session_keys else {}
    by_user: dict[Any, list[Viewing]] = defaultdict(list)
    for viewing in viewings:
        user = AnonymousUser() if viewing.user_id is None else users.get(viewing.session_key)
        if user is None or user.pk != viewing.user_id:
            refusals[viewing] = Refusal(
                "forbidden",
                "you were signed out (here or in another tab), or your session ended: sign in again",
            )
        else:
            by_user[viewing.user_id].append(viewing)
    # First one query for every viewing at once: the streams anyone may see (enabled and
    # public, access/rules.py's answer for an anonymous viewer) are visible to every viewer
    # still signed in as who they were, so their viewings need nothing more.
    watched = {viewing.slug for watching in by_user.values() for viewing in watching}
    public = visible_slugs(AnonymousUser(), watched) if watched else set()
    # Then one query per user for the rest: access/rules.py's filter is the one answer (a
    # UNION of them all measured slower than separate queries, on SQLite and PostgreSQL;
    # each is compiled once, see visible_slugs).
    for user_id, watching in by_user.items():
        slugs = {viewing.slug for viewing in watching} - public
        if not slugs:
            continue
        if user_id is None:
            visible: set[str] = set()  # the anonymous answer is the public one, just read
        else:
            visible = visible_slugs(users[watching[0].session_key], slugs)
        if visible == slugs:
            continue
        existing = set(Stream.objects.filter(slug__in=slugs - visible).values_list("slug", flat=True))
        for viewing in watching:
            if viewing.slug in visible or viewing.slug in public:
                continue
            if viewing.slug in existing:
                refusals[viewing] = Refusal("forbidden", f"you may no longer see stream {viewing.slug!r}")
            else:
                refusals[viewing] = Refusal("not_found", f"stream {viewing.slug!r} no longer exists")
    return refusals


def visible_slugs(user: Any, slugs: Collection[str]) -> set[str]:
    """Which of `slugs` name streams `user` may see now (access/rules.py's visibility_filter),
    asked of the database each time; the query is compiled once per kind of user, user and
    set of slugs (streams/access/compiled.py): a round asks the same every second."""
    from streams.access.rules import is_signed_in, is_staff, visibility_filter
    from streams.models import Stream

    wanted = frozenset(slugs)
    staff, signed_in = is_staff(user), is_signed_in(user)
    # visibility_filter's answer depends on these alone (and the pk on signed_in).
    key = ("visible", staff, signed_in, user.pk if signed_in else None, wanted)
    return QUERIES.values(
        key,
        lambda: (
            Stream.objects.filter(visibility_filter(user), slug__in=wanted)
            .order_by()
            .values_list("slug", flat=True)
        ),
    )


@dataclass(eq=False)
class Watch:
    viewing: Viewing
    # Set to a Refusal when the viewer lost access.
    revoked: asyncio.Future[Refusal]
    # The watcher's round count when it was added: a round's answer takes only watches added
    # before that round started.
    added: int = 0


def check_viewings_in_thread(viewings: Collection[Viewing]) -> dict[Viewing, Refusal]:
    """check_viewings on the watcher's own thread, whose database connection is kept from
    round to round: a connection opened and closed each second was half of a round's cost
    (database_sync_to_async closes it after each call under CONN_MAX_AGE=0). A kept
    connection the database dropped (a restart) fails once: closed, and asked again at once,
    so the round still answers within the second."""
    from django.db import connection

    # check_viewings looked up at each call: tests count rounds by patching it.
    try:
        return check_viewings(viewings)
    except Exception:
        connection.close()
        return check_viewings(viewings)


def close_connections() -> None:
    from django.db import connections

    connections.close_all()


class AccessWatcher:
    """Re-checks every open event stream of this process once per `interval`, in one call on
    its own thread for all of them, so a thousand viewers cost one round of small queries a
    second per distinct session, not a thread and a database connection each."""

    def __init__(self, *, interval: float = CHECK_SECONDS) -> None:
        self.interval = interval
        self._watches: set[Watch] = set()
        # The watches not yet revoked, by viewing: a round asks once per distinct viewing (a
        # hundred anonymous viewers of one stream are one), and walks no socket when none lost
        # access.
        self._by_viewing: dict[Viewing, set[Watch]] = {}
        # Rounds started so far (Watch.added).
        self._rounds = 0
        # The thread (and its database connection) rounds run on while viewings are watched.
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        # The latest start a round may have (the oldest `since` of a viewing added after the
        # last round started, plus interval); None: at the usual cadence.
        self._due: float | None = None
        self._wake = asyncio.Event()
        # slug -> (loop time read, generation, the row), see known_stream.
        self._rows: dict[str, tuple[float, int, Any]] = {}
        # slug -> the (row, loop time read, generation) a subscribe is reading now, see stream_for.
        self._reading: dict[str, asyncio.Future[tuple[Any, float, int]]] = {}
        # Subscribes waiting for another's read of their stream's row now (for tests).
        self.waiting = 0

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def watch(self, viewing: Viewing, *, since: float | None = None) -> Watch:
        """Watch `viewing` from now on; `since` (loop time) is when the answer that let it in
        was read, when earlier than now: the next round starts by `since + interval`."""
        loop = asyncio.get_running_loop()
        watch = Watch(viewing, loop.create_future(), added=self._rounds)
        self._watches.add(watch)
        self._by_viewing.setdefault(viewing, set()).add(watch)
        self.check_by(loop.time() if since is None else since)
        if self._task is None or self._task.done():
            # A fresh context: the task outlives the request that happened to start it.
            self._task = loop.create_task(self._run(), context=contextvars.Context())
        return watch

    def check_by(self, since: float) -> None:
        """A round starts no later than `since + interval` (answers read at `since` are used)."""
        due = since + self.interval
        if self._due is None or due < self._due:
            self._due = due
            self._wake.set()

    def _next_start(self, next_round: float) -> float:
        return next_round if self._due is None else min(next_round, self._due)

    def known_stream(self, user: Any, slug: str) -> tuple[Any, float] | None:
        """(the row, loop time it was read) of `slug` when a subscribe on this loop read it
        less than ROW_SECONDS ago and the row alone says `user` may see it; else None (ask the
        database). Whoever uses it watches the viewing with that `since`."""
        from streams.access.rules import allowed_by_row

        found = self._rows.get(slug)
        if found is None:
            return None
        read_at, generation, stream = found
        if generation != _rows_generation or self.now() - read_at >= ROW_SECONDS:
            del self._rows[slug]
            return None
        if not allowed_by_row(user, stream):
            return None
        return stream, read_at

    async def stream_for(
        self, user: Any, slug: str, *, read: Callable[[Any, str], Awaitable[tuple[Any, bool]]]
    ) -> tuple[Any, bool, float]:
        """(the row or None, allowed, loop time it was read) for a subscribe of `user` to `slug`:
        a kept row (known_stream), else the row another subscribe on this loop is reading now
        where the row alone answers, else `read(user, slug)` (viewable_stream in a thread),
        kept and handed to the subscribes that asked meanwhile. A storm's thousand subscribes
        to twenty streams arrive before the first read is back: they wait for it rather than
        each queueing a query of its own behind it on the one database thread."""
        from streams.access.rules import allowed_by_row

        known = self.known_stream(user, slug)
        if known is not None:
            return known[0], True, known[1]
        reading = self._reading.get(slug)
        if reading is not None:
            # Shielded: a waiter going away must not cancel the others' answer.
            self.waiting += 1
            try:
                stream, read_at, generation = await asyncio.shield(reading)
            finally:
                self.waiting -= 1
            if generation == _rows_generation and (stream is None or allowed_by_row(user, stream)):
                return stream, stream is not None, read_at
        since, generation = self.now(), _rows_generation
        mine: asyncio.Future[tuple[Any, float, int]] | None = None
        if slug not in self._reading:
            mine = self._reading[slug] = asyncio.get_running_loop().create_future()
        answer: tuple[Any, float, int] = (None, since, -1)  # a failed read: the waiters read their own
        try:
            stream, allowed = await read(user, slug)
            if stream is not None:
                self.remember_stream(stream, read_at=since, generation=generation)
            answer = (stream, since, generation)
            return stream, allowed, since
        finally:
            if mine is not None:
                if self._reading.get(slug) is mine:
                    del self._reading[slug]
                mine.set_result(answer)

    def remember_stream(self, stream: Any, *, read_at: float, generation: int) -> None:
        """Keep a row read at `read_at` (loop time, taken before the query) while this
        process's Stream generation was `generation` (also taken before it)."""
        if generation == _rows_generation:
            self._rows[stream.slug] = (read_at, generation, stream)

    def release(self, watch: Watch) -> None:
        self._watches.discard(watch)
        self._forget(watch)

    def _forget(self, watch: Watch) -> None:
        watches = self._by_viewing.get(watch.viewing)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._by_viewing[watch.viewing]

    def open_count(self) -> int:
        return len(self._watches)

    def open_for(self, user_id: Any) -> int:
        return sum(1 for watch in self._watches if watch.viewing.user_id == user_id)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_round = loop.time() + self.interval
        self._executor = executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="access-watcher")
        try:
            while self._watches:
                # Rounds start `interval` apart, however long the last one's queries took, or
                # sooner when a viewing was let in on an answer read earlier (check_by).
                while (delay := self._next_start(next_round) - loop.time()) > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                next_round = loop.time() + self.interval
                # Every viewing added from here on is checked after this round's reads (or by its due).
                self._due = None
                self._rounds += 1
                started = self._rounds
                viewings = list(self._by_viewing)
                if not viewings:
                    continue
                try:
                    refusals = await loop.run_in_executor(executor, check_viewings_in_thread, viewings)
                except Exception:
                    # A database blip must not cut every viewer off; the next round tries again.
                    log.exception("could not re-check access of %d viewings", len(viewings))
                    continue
                for viewing, refusal in refusals.items():
                    for watch in list(self._by_viewing.get(viewing, ())):
                        if watch.added < started:  # added meanwhile: read after this round's answer
                            self._forget(watch)
                            if not watch.revoked.done():
                                watch.revoked.set_result(refusal)
        finally:
            # Its connection closed on its own thread, after any round still running there.
            self._executor = None
            executor.submit(close_connections)
            executor.shutdown(wait=False)


WATCHER = "access.watcher"


def get_watcher() -> AccessWatcher:
    """This event loop's watcher (one per process in practice; tests run many loops)."""
    return runtime.get(WATCHER, AccessWatcher)


def all_watchers() -> list[AccessWatcher]:
    return runtime.all(WATCHER)

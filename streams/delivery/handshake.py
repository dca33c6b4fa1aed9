"""A websocket handshake's fixed costs in daphne (accept queue, autobahn, channels' auth), cut.

autobahn's WebSocketProtocol pretty-prints its 29 options for a debug line on every new
connection (`_connectionMade`) and its transport details on every handshake (`startHandshake`),
logged or not: the arguments are built before txaio's logger decides to drop the line. In a
reconnect storm that was about 10% of daphne's CPU per subscribe (docs/performance.md, "Reconnect
storm"). Its debug lines also colour their arguments with click (`hltype`, `hlval`) on every
connection, handshake and received chunk: 3-4% of a 2,000-viewer storm. Here those debug lines
get their text only when a log observer formats it.

Before any of that, the connection waits in the kernel's accept queue, whose length daphne leaves
at Twisted's default of 50: a reconnect storm overflowed it (the kernel's ListenOverflows counter
grew by 140 in one 500-viewer storm), and each connection dropped there waits for its client to
send its SYN again, 1 s later, then 3 s (through nginx: its proxy_connect_timeout, then a 502).
raise_listen_backlog() lets the queue hold a storm.

And channels' AuthMiddleware hops to a database thread on every handshake, even for a socket
with no session cookie: SocketAuthMiddleware answers that one at once (anonymous), and
AnonymousSocketMiddleware does all of channels' auth stack's work for it in one step.
"""

from __future__ import annotations

import pprint
from importlib import import_module
from typing import Any
from urllib.parse import urlparse

from channels.auth import AuthMiddleware
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator, WebsocketDenier
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie


class LazyPformat:
    """pprint.pformat(value), computed when the log line is formatted (never, unless debug)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class LazyHighlight:
    """autobahn.util's hltype(...) or hlval(...) (click-coloured text), computed when the log
    line is formatted (never, unless debug)."""

    __slots__ = ("args", "function", "kwargs")

    def __init__(self, function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.function, self.args, self.kwargs = function, args, kwargs

    def __str__(self) -> str:
        return self.function(*self.args, **self.kwargs)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def lazy_highlights() -> bool:
    """Make autobahn's websocket modules' `hltype` and `hlval` lazy (idempotent); True when
    patched. A hack on their module globals, which they use only for log arguments; where a
    global is not autobahn.util's own function it is left as shipped."""
    from autobahn import util
    from autobahn.twisted import websocket
    from autobahn.websocket import protocol

    patched = True
    for module in (protocol, websocket):
        for name in ("hltype", "hlval"):
            current = getattr(module, name, None)
            if getattr(current, "livecharts_lazy", None) is not None:
                continue
            if current is None or current is not getattr(util, name, None):
                patched = False
                continue

            def highlight(*args: Any, function: Any = current, **kwargs: Any) -> LazyHighlight:
                return LazyHighlight(function, args, kwargs)

            highlight.livecharts_lazy = current  # type: ignore[attr-defined]
            setattr(module, name, highlight)
    return patched


def lazy_autobahn_debug() -> bool:
    """Make autobahn's per-connection debug pformat and highlights lazy (idempotent); True
    when patched.

    A hack on autobahn's module global `pformat`, which it uses only for debug log arguments
    and for `Timings.__str__`; the latter keeps the eager pformat (it must return a str). When
    an autobahn release changes either, nothing is patched and it runs as shipped."""
    from autobahn.websocket import protocol

    highlights = lazy_highlights()
    current = getattr(protocol, "pformat", None)
    if current is LazyPformat:
        return highlights
    if current is not pprint.pformat or "__str__" not in vars(protocol.Timings):
        return False

    def timings_text(self: Any) -> str:
        return pprint.pformat(self._timings)

    protocol.Timings.__str__ = timings_text  # type: ignore[method-assign]
    protocol.pformat = LazyPformat  # type: ignore[assignment]
    return highlights


# Connections a listening socket may queue before daphne accepts them (the kernel caps it at
# net.core.somaxconn, 4096 by default).
LISTEN_BACKLOG = 4096


def raise_listen_backlog(backlog: int = LISTEN_BACKLOG) -> bool:
    """Twisted's TCP and unix socket ports listen with at least `backlog` (idempotent).

    A hack on the ports' startListening: daphne builds its ports from endpoint strings
    (`-b`/`-p`, `-u`, `-e tcp:...`) with Twisted's default of 50 and offers no option for it
    short of an `-e ...:backlog=N` every command line would need. Called from livecharts/asgi.py,
    which daphne imports before it listens."""
    from twisted.internet import tcp, unix

    for port in (tcp.Port, unix.Port):
        start = port.__dict__["startListening"]
        if getattr(start, "livecharts_backlog", None) is not None:
            continue

        def start_listening(self: Any, start: Any = start) -> None:
            self.backlog = max(self.backlog, backlog)
            start(self)

        start_listening.livecharts_backlog = backlog  # type: ignore[attr-defined]
        port.startListening = start_listening  # type: ignore[method-assign]
    return True


class SocketAuthMiddleware(AuthMiddleware):
    """channels' AuthMiddleware without its thread hop for a socket that carries no session
    (no cookie): that viewer is anonymous, and there is nothing to read. A reconnect storm of
    anonymous viewers paid one database thread hop per handshake for it."""

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        if scope["session"].session_key is None:
            scope["user"]._wrapped = AnonymousUser()
            return
        await super().resolve_scope(scope)


# Origins an OriginValidatorWithMemory keeps its answers for (a few in practice: the site's own;
# past this many, from a client sending many, it starts over).
ORIGINS_REMEMBERED = 256


class OriginValidatorWithMemory(OriginValidator):
    """channels' OriginValidator answering each Origin header value once: it parsed the origin
    with urlparse, then again per allowed host (three urlparse calls a connection under the
    usual ALLOWED_HOSTS), a third of the channels stack's cost per connection. The answer
    depends only on that value and the allowed origins, fixed when it is made."""

    def __init__(self, application: Any, allowed_origins: list[str]) -> None:
        super().__init__(application, allowed_origins)
        self.answers: dict[bytes | None, bool] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            return await super().__call__(scope, receive, send)  # which refuses it
        origin = None
        for name, value in scope.get("headers", ()):
            if name == b"origin":  # the last one, as OriginValidator reads it
                origin = value
        valid = self.answers.get(origin)
        if valid is None:
            valid = self.valid_origin(parse_origin(origin))
            if len(self.answers) >= ORIGINS_REMEMBERED:
                self.answers.clear()
            self.answers[origin] = valid
        if valid:
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def parse_origin(value: bytes | None) -> Any:
    """An Origin header's value parsed as OriginValidator parses it (None when absent or not
    latin-1)."""
    if value is None:
        return None
    try:
        return urlparse(value.decode("latin1"))
    except UnicodeDecodeError:
        return None


def allowed_hosts_origin_validator(application: Any) -> OriginValidatorWithMemory:
    """channels' AllowedHostsOriginValidator (the origins ALLOWED_HOSTS allows), remembering."""
    return OriginValidatorWithMemory(application, AllowedHostsOriginValidator(application).allowed_origins)


class AnonymousSocketMiddleware:
    """channels' AuthMiddlewareStack in one step for a websocket that carries no session
    cookie: its cookies parsed, an empty session, an anonymous user, as that stack would put
    them in the scope (the session and user are not wrapped in lazy objects: nothing is left to
    resolve). Its three middlewares each copied the scope and wrapped the next call, and the
    session's wrapper wraps every send though it saves a session only on an HTTP response:
    about 16 us of CPU per connection, a few percent of a reconnect storm. Any other scope
    (a session cookie: a signed-in viewer) goes through `stack`, channels' own."""

    def __init__(self, inner: Any, *, stack: Any) -> None:
        self.inner = inner
        self.stack = stack

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket" or not {"cookies", "session", "user"}.isdisjoint(scope):
            return await self.stack(scope, receive, send)
        cookies: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            if name == b"cookie":  # CookieMiddleware's reading: the first Cookie header
                cookies = parse_cookie(value.decode("latin1"))
                break
        if settings.SESSION_COOKIE_NAME in cookies:
            return await self.stack(scope, receive, send)
        session = import_module(settings.SESSION_ENGINE).SessionStore(None)
        scope = dict(scope, cookies=cookies, session=session, user=AnonymousUser())
        return await self.inner(scope, receive, send)


def socket_auth_stack(inner: Any) -> Any:
    """channels' AuthMiddlewareStack with SocketAuthMiddleware, behind AnonymousSocketMiddleware."""
    return AnonymousSocketMiddleware(
        inner, stack=CookieMiddleware(SessionMiddleware(SocketAuthMiddleware(inner)))
    )

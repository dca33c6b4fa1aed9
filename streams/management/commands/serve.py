"""`manage.py serve`: the embedded one-process mode, daphne and the ingest supervisor on one loop."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from streams.config.demo import DEMO_LOGINS


class Command(BaseCommand):
    help = "Serve LiveCharts and run its feeds in one process (no Redis needed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-ingest", action="store_true", help="serve pages only, run no feeds")

    def handle(self, *args: Any, **options: Any) -> None:
        # Importing daphne.server installs Twisted's asyncio reactor: keep it inside handle().
        from channels.routing import get_default_application
        from daphne.server import Server
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred

        from streams.ingest.supervisor import Supervisor

        host, port = options["host"], options["port"]
        self.stop = asyncio.Event()

        def start_ingest() -> None:
            # Runs just before the reactor starts; the task runs on daphne's own event loop.
            if not options["no_ingest"]:
                supervisor = asyncio.get_event_loop().create_task(Supervisor().run(self.stop))
                reactor.addSystemEventTrigger("before", "shutdown", stop_ingest, supervisor)
            self.print_banner(host, port)

        def stop_ingest(supervisor: asyncio.Task[None]) -> Deferred:
            # Twisted waits for the returned Deferred: feeds stop and queued points are sent
            # before the loop closes (Ctrl-C, SIGTERM).
            self.stop.set()
            return Deferred.fromFuture(supervisor)

        class EmbeddedServer(Server):
            # daphne logs a failed listen as CRITICAL and returns from run() as if all went
            # well (exit status 0): keep the reason, and fail below with what to do about it.
            listen_failure: str | None = None

            def listen_error(self, failure: Any) -> None:
                self.listen_failure = failure.getErrorMessage()
                self.stop()

        server = EmbeddedServer(
            application=get_default_application(),
            endpoints=[f"tcp:port={port}:interface={host}"],
            ready_callable=start_ingest,
            verbosity=0,
        )
        server.run()
        if server.listen_failure is not None:
            raise CommandError(
                f"cannot listen on {host}:{port} ({_reason(server.listen_failure)}); "
                f"pick another port: make run PORT={port + 1}, or manage.py serve --port {port + 1}"
            )

    def print_banner(self, host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        self.stdout.write(self.style.SUCCESS(f"LiveCharts is running at http://{shown}:{port}/"))
        for username, password, what in _existing_demo_logins():
            self.stdout.write(f"  sign in as {username} / {password}  ({what})")
        self.stdout.write("  Ctrl-C stops")


def _reason(message: str) -> str:
    """Twisted's "Couldn't listen on 127.0.0.1:8000: [Errno 98] Address already in use." as
    "address already in use"."""
    reason = message.rsplit("]", 1)[-1] if "]" in message else message.rsplit(": ", 1)[-1]
    return reason.strip().rstrip(".").lower() or message


def _existing_demo_logins() -> list[tuple[str, str, str]]:
    from django.contrib.auth import get_user_model

    names = set(
        get_user_model()
        .objects.filter(username__in=[u for u, _, _ in DEMO_LOGINS])
        .values_list("username", flat=True)
    )
    return [login for login in DEMO_LOGINS if login[0] in names]

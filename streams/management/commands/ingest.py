"""`manage.py ingest`: the worker process that pulls every enabled feed (production mode)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from streams.ingest.supervisor import Supervisor, tune_gc


def require_shared_layer() -> None:
    backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]
    if backend.endswith("InMemoryChannelLayer"):
        raise CommandError(
            "manage.py ingest runs beside daphne as a separate process, so it needs a channel "
            "layer they share: set REDIS_URL (for example REDIS_URL=redis://127.0.0.1:6379/0). "
            "For one process on a laptop, use `manage.py serve` instead."
        )


class AnnouncingSupervisor(Supervisor):
    """A Supervisor that says once when its first look at the stream table is done: it holds
    the leases it could take and has started their feeds. Tests, scripts and operators wait
    for this line instead of sleeping."""

    def __init__(self, *, say: Callable[[str], None]) -> None:
        super().__init__()
        self.say = say
        self.announced = False

    async def sync(self) -> None:
        await super().sync()  # raises while the database is unreadable: not ready yet
        if not self.announced:
            self.announced = True
            slugs = sorted(self.tasks)
            self.say(f"ingest: ready, running {len(slugs)} streams: {', '.join(slugs) or '(none)'}")


class Command(BaseCommand):
    help = "Run the ingest worker: pull every enabled feed and broadcast its points."

    def handle(self, *args: Any, **options: Any) -> None:
        require_shared_layer()
        tune_gc()
        asyncio.run(self.main())

    async def main(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.stdout.write(f"ingest: running, tick {settings.LIVECHARTS_TICK_MS} ms; Ctrl-C or SIGTERM stops")
        await AnnouncingSupervisor(say=self.stdout.write).run(stop)
        self.stdout.write("ingest: stopped")

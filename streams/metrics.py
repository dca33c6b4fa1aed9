"""GET /metrics: this process's sockets and frames, and every stream's feed health, in
Prometheus' text format (version 0.0.4).

Per process (each daphne answers for itself; scrape every process, as Prometheus does):
sockets, subscriptions, frames/bytes/batches/points sent, drops, slow readers closed, the
fan-out tick, event streams open. Per stream, from the stored health that the ingest workers
keep (the same for every process): state, points and bad payloads counted, feed reconnects,
the age of the last point, and the lag from broadcast to this process.

Who may read it: staff, or a request bearing LIVECHARTS_METRICS_TOKEN (for the scraper).
Feed URLs and errors are not in it: stream slugs and numbers only.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

from streams.access import is_staff
from streams.fanout import all_hubs
from streams.health import STATES
from streams.history import get_history
from streams.revocation import all_watchers

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Exposition:
    """Metric families written once each, with HELP and TYPE, in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            shown = ",".join(f'{key}="{_label(text)}"' for key, text in labels.items())
            self.lines.append(f"{name}{{{shown}}} {value:g}" if shown else f"{name} {value:g}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def process_metrics(out: Exposition) -> None:
    hubs = all_hubs()

    def total(attribute: str) -> float:
        return float(sum(getattr(hub.stats, attribute) for hub in hubs))

    out.family(
        "livecharts_sockets", "gauge", "Open viewer sockets.", [({}, sum(len(h.sockets) for h in hubs))]
    )
    out.family("livecharts_streams_watched", "gauge", "Streams with a viewer here.", [({}, total("streams"))])
    out.family(
        "livecharts_event_streams",
        "gauge",
        "Open SSE responses (GET /streams/<slug>/events).",
        [({}, sum(watcher.open_count() for watcher in all_watchers()))],
    )
    counters = [
        ("frames_sent", "frames", "Points frames written to sockets."),
        (
            "frames_encoded",
            "frames_encoded",
            "Points frames encoded (shared by sockets with the same batches).",
        ),
        ("bytes_sent", "bytes_sent", "Bytes of points frames written to sockets."),
        ("batches_received", "batches_in", "Stream batches received from the channel layer."),
        ("batches_sent", "batches_out", "Stream batches handed to sockets (one per socket)."),
        ("points_sent", "points_out", "Points handed to sockets (one per socket)."),
        (
            "batches_dropped",
            "dropped_batches",
            "Batches dropped for sockets too far behind (refilled later).",
        ),
        ("slow_sockets_closed", "slow_closes", "Sockets closed (4008) for not reading."),
        ("tick_widened", "widened", "Times the fan-out tick was widened under load."),
    ]
    for name, attribute, help_text in counters:
        out.family(f"livecharts_{name}_total", "counter", help_text, [({}, total(attribute))])
    tick = max((hub.tick for hub in hubs), default=settings.LIVECHARTS_TICK_MS / 1000)
    out.family("livecharts_tick_seconds", "gauge", "The fan-out tick now (widened under load).", [({}, tick)])
    lags = {slug: lag for hub in hubs for slug, lag in hub.stats.lag_seconds.items()}
    out.family(
        "livecharts_stream_lag_seconds",
        "gauge",
        "From broadcast to this process, for the last batch of each watched stream.",
        [({"stream": slug}, lag) for slug, lag in sorted(lags.items())],
    )


def stream_metrics(out: Exposition, statuses: dict[str, dict[str, Any] | None], now: float) -> None:
    known = sorted((slug, status) for slug, status in statuses.items() if status)
    out.family(
        "livecharts_feed_state",
        "gauge",
        "1 for the state each stream's feed is in.",
        [
            ({"stream": slug, "state": state}, float(status.get("state") == state))
            for slug, status in known
            for state in STATES
        ],
    )
    for name, key, help_text in (
        ("feed_points", "points", "Points the feed delivered since its worker started it."),
        ("feed_bad_payloads", "bad_payloads", "Payloads the feed could not read (counted, skipped)."),
        ("feed_reconnects", "reconnects", "Times the feed reconnected since its worker started it."),
    ):
        out.family(
            f"livecharts_{name}_total",
            "counter",
            help_text,
            [({"stream": slug}, float(status.get(key) or 0)) for slug, status in known],
        )
    out.family(
        "livecharts_stream_last_point_age_seconds",
        "gauge",
        "Seconds since each stream's last point (absent before its first).",
        [
            ({"stream": slug}, max(0.0, now - status["last_point_at"]))
            for slug, status in known
            if status.get("last_point_at")
        ],
    )


def _stream_slugs() -> list[str]:
    from streams.models import Stream

    return list(Stream.objects.filter(enabled=True).order_by("slug").values_list("slug", flat=True))


def _allowed(request: HttpRequest) -> bool:
    token = settings.LIVECHARTS_METRICS_TOKEN
    offered = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
        return True
    return is_staff(getattr(request, "user", None))


@never_cache
async def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    user = await request.auser()
    request.user = user
    if not _allowed(request):
        return HttpResponse(
            "metrics are for staff, or send Authorization: Bearer <LIVECHARTS_METRICS_TOKEN>\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    out = Exposition()
    process_metrics(out)
    slugs = await database_sync_to_async(_stream_slugs)()
    try:
        statuses = await get_history().get_statuses(slugs)
    except Exception:
        statuses = {}  # Redis down: /readyz says so; the process metrics still answer
    stream_metrics(out, statuses, time.time())
    return HttpResponse(out.text(), content_type=CONTENT_TYPE)

"""GET /metrics: this process's sockets and frames, and every stream's feed health, in
Prometheus' text format (version 0.0.4), written by prometheus-client.

Per process (each daphne answers for itself; scrape every process, as Prometheus does):
sockets, subscriptions, frames/bytes/batches/points sent, drops, slow readers closed, the
fan-out tick, event streams open, two latency histograms (broadcast to a socket's write, and a
subscribe's access check + backfill), and prometheus-client's process_* and python_* families
(CPU, memory, open files, garbage collection). Per stream, from the stored health that the
ingest workers keep (the same for every process): state, points and bad payloads counted, feed
reconnects, the age of the last point, and the lag from broadcast to this process.

Who may read it: staff, or a request bearing LIVECHARTS_METRICS_TOKEN (for the scraper).
Feed URLs and errors are not in it: stream slugs and numbers only.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator, Sequence
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streams.delivery.latency import BROADCAST_TO_SOCKET, SUBSCRIBE

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# Collectors -------------------------------------------------------------------------------


def _family(kind: str, name: str, help_text: str, samples: Sequence[tuple[dict[str, str], float]]) -> Metric:
    labels = list(samples[0][0]) if samples else []
    family_class = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    family = family_class(name, help_text, labels=labels)
    for sample_labels, value in samples:
        family.add_metric([sample_labels[label] for label in labels], value)
    return family


# (metric name without livecharts_ and _total, HubStats attribute, help)
HUB_COUNTERS = (
    ("frames_sent", "frames", "Points frames written to sockets."),
    ("frames_encoded", "frames_encoded", "Points frames encoded (shared by sockets with the same batches)."),
    ("bytes_sent", "bytes_sent", "Bytes of points frames written to sockets."),
    ("batches_received", "batches_in", "Stream batches received from the channel layer."),
    ("batches_sent", "batches_out", "Stream batches handed to sockets (one per socket)."),
    ("points_sent", "points_out", "Points handed to sockets (one per socket)."),
    ("batches_dropped", "dropped_batches", "Batches dropped for sockets too far behind (refilled later)."),
    ("slow_sockets_closed", "slow_closes", "Sockets closed (4008) for not reading."),
    ("tick_widened", "widened", "Times the fan-out tick was widened under load."),
    (
        "backfill_frames",
        "backfill_frames",
        "Backfill frames written to sockets (each at most LIVECHARTS_BACKFILL_FRAME_BYTES).",
    ),
    ("backfill_bytes", "backfill_bytes", "Bytes of backfill frames written to sockets."),
    ("flush_errors", "flush_errors", "Viewers whose frame failed in a tick (asked again the next one)."),
)


class HubCollector:
    """This process's fan-out hubs (one per event loop), its SSE responses, and the histograms."""

    def collect(self) -> Iterator[Metric]:
        from streams.access.revocation import all_watchers
        from streams.delivery.hub import all_hubs

        hubs = all_hubs()

        def total(attribute: str) -> float:
            return float(sum(getattr(hub.stats, attribute) for hub in hubs))

        yield _family(
            "gauge", "livecharts_sockets", "Open viewer sockets.", [({}, sum(len(h.sockets) for h in hubs))]
        )
        yield _family(
            "gauge", "livecharts_streams_watched", "Streams with a viewer here.", [({}, total("streams"))]
        )
        yield _family(
            "gauge",
            "livecharts_event_streams",
            "Open SSE responses (GET /streams/<slug>/events).",
            [({}, sum(watcher.open_count() for watcher in all_watchers()))],
        )
        for name, attribute, help_text in HUB_COUNTERS:
            yield _family("counter", f"livecharts_{name}_total", help_text, [({}, total(attribute))])
        yield _family(
            "counter",
            "livecharts_layer_reconnects_total",
            "Times the fan-out hub's Redis pub/sub connection was opened again (batches published"
            " meanwhile are not delivered live; viewers refill them through prev).",
            [({}, float(sum(hub.layer_reconnects for hub in hubs)))],
        )
        tick = max((hub.tick for hub in hubs), default=settings.LIVECHARTS_TICK_MS / 1000)
        yield _family(
            "gauge", "livecharts_tick_seconds", "The fan-out tick now (widened under load).", [({}, tick)]
        )
        lags = {slug: lag for hub in hubs for slug, lag in hub.stats.lag_seconds.items()}
        yield _family(
            "gauge",
            "livecharts_stream_lag_seconds",
            "From broadcast to this process, for the last batch of each watched stream.",
            [({"stream": slug}, lag) for slug, lag in sorted(lags.items())],
        )
        yield BROADCAST_TO_SOCKET.family()
        yield SUBSCRIBE.family()
        yield from fallback_families()


def fallback_families() -> Iterator[Metric]:
    """The slower paths taken when a library's internals are not as the fast ones expect, and
    failed broadcast ticks: zero in a healthy process, each logged once per cause."""
    from streams.broadcast import all_broadcasters
    from streams.delivery import transport

    broadcasters = all_broadcasters()
    yield _family(
        "counter",
        "livecharts_publish_fallback_batches_total",
        "Batches published by plain group_send: channels_redis's internals were not as expected.",
        [({}, float(sum(b.stats.publish_fallbacks for b in broadcasters)))],
    )
    yield _family(
        "counter",
        "livecharts_broadcast_tick_errors_total",
        "Broadcast ticks that failed; their batches went back for the next tick.",
        [({}, float(sum(b.stats.tick_errors for b in broadcasters)))],
    )
    yield _family(
        "counter",
        "livecharts_direct_write_fallbacks_total",
        "Sockets served by plain ASGI sends: autobahn's or Twisted's internals were not as expected.",
        [({}, float(transport.stats.plain_fallbacks))],
    )


class StreamHealthCollector:
    """Every enabled stream's feed health as the workers stored it, read once per scrape."""

    def __init__(self, statuses: dict[str, dict[str, Any] | None], *, now: float) -> None:
        self.statuses, self.now = statuses, now

    def collect(self) -> Iterator[Metric]:
        from streams.ingest.feed_health import STATES

        known = sorted((slug, status) for slug, status in self.statuses.items() if status)
        yield _family(
            "gauge",
            "livecharts_feed_state",
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
            yield _family(
                "counter",
                f"livecharts_{name}_total",
                help_text,
                [({"stream": slug}, float(status.get(key) or 0)) for slug, status in known],
            )
        yield _family(
            "gauge",
            "livecharts_stream_last_point_age_seconds",
            "Seconds since each stream's last point (absent before its first).",
            [
                ({"stream": slug}, max(0.0, self.now - status["last_point_at"]))
                for slug, status in known
                if status.get("last_point_at")
            ],
        )


class _Scrape:
    """One scrape's collectors, in order, for generate_latest (which only calls collect())."""

    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


# prometheus-client's own collectors of this process (CPU, memory, file descriptors, GC),
# from its default registry's instances rather than the registry (whose other contents are
# whatever libraries put there).
PROCESS = CollectorRegistry(auto_describe=False)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    PROCESS.register(_collector)


def exposition(statuses: dict[str, dict[str, Any] | None], *, now: float) -> bytes:
    """The whole /metrics text for these stored stream statuses."""
    return generate_latest(_Scrape(HubCollector(), StreamHealthCollector(statuses, now=now), PROCESS))


# The view ---------------------------------------------------------------------------------


def _stream_slugs() -> list[str]:
    from streams.models import Stream

    return list(Stream.objects.filter(enabled=True).order_by("slug").values_list("slug", flat=True))


def _allowed(request: HttpRequest) -> bool:
    from streams.access.rules import is_staff

    token = settings.LIVECHARTS_METRICS_TOKEN
    offered = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
        return True
    return is_staff(getattr(request, "user", None))


@never_cache
async def metrics(request: HttpRequest) -> HttpResponse:
    from streams.storage.window import get_history

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
    slugs = await database_sync_to_async(_stream_slugs)()
    try:
        statuses = await get_history().get_statuses(slugs)
    except Exception:
        statuses = {}  # Redis down: /readyz says so; the process metrics still answer
    return HttpResponse(exposition(statuses, now=time.time()), content_type=CONTENT_TYPE)

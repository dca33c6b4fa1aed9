"""Pages and small endpoints. Thin: every access decision is streams.access.rules's."""

from __future__ import annotations

import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError

from streams.access import rules as access
from streams.delivery import sse
from streams.ingest.feed_health import stream_statuses
from streams.ingest.feeds.push import PushFeed
from streams.ingest.inbox import InboxFull, InboxUnavailable, get_inbox
from streams.ingest.push_api import (
    PushRefused,
    RateLimiter,
    active_push_token,
    read_points,
    retry_after_header,
)
from streams.models import PushToken, Stream
from streams.storage import export, ranges
from streams.web import figures
from streams.web.dashboards import page_context, visible_dashboards

log = logging.getLogger(__name__)

# The socket path the browser client connects to (streams/routing.py).
WS_PATH = "/ws/"


@require_GET
def stream_list(request: HttpRequest) -> HttpResponse:
    streams = list(Stream.objects.visible_to(request.user))
    statuses = stream_statuses([stream.slug for stream in streams])
    rows = [(stream, statuses[stream.slug]) for stream in streams]
    # The cards' sparklines subscribe to the enabled streams over one socket (streamlist.js).
    list_config = {
        "ws_path": WS_PATH,
        "streams": [
            {"slug": stream.slug, "decimals": stream.decimals} for stream in streams if stream.enabled
        ],
    }
    context = {"streams": rows, "dashboards": visible_dashboards(request.user), "list_config": list_config}
    return render(request, "streams/stream_list.html", context)


@require_GET
def dashboard_list(request: HttpRequest) -> HttpResponse:
    return render(request, "streams/dashboard_list.html", {"dashboards": visible_dashboards(request.user)})


@require_GET
def dashboard_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """Refused like a stream page; then only the panels whose every stream the user may see."""
    dashboard, allowed = access.viewable_dashboard(request.user, slug)
    if refused := _refuse_page(request, "dashboard", slug, found=dashboard is not None, allowed=allowed):
        return refused
    return render(request, "streams/dashboard.html", page_context(request.user, dashboard, ws_path=WS_PATH))


@require_GET
def stream_detail(request: HttpRequest, slug: str) -> HttpResponse:
    stream, allowed = access.viewable_stream(request.user, slug)
    if refused := _refuse_page(request, "stream", slug, found=stream is not None, allowed=allowed):
        return refused
    return render(
        request,
        "streams/stream_detail.html",
        {
            "stream": stream,
            "figure": figures.figure_json(stream),
            "live_config": live_config(stream),
            "health": stream_statuses([stream.slug])[stream.slug],
        },
    )


def _refuse_page(
    request: HttpRequest, what: str, slug: str, *, found: bool, allowed: bool
) -> HttpResponse | None:
    """A page's refusal (None: show it): 404 when there is no such thing, the sign-in page for
    the anonymous (or deactivated: signing in may be all it takes), else 403."""
    if not found:
        raise Http404(f"no {what} {slug!r}")
    if allowed:
        return None
    if not access.is_signed_in(request.user):
        return redirect_to_login(request.get_full_path())
    raise PermissionDenied(f"you may not see {what} {slug!r}")


def live_config(stream: Stream) -> dict[str, Any]:
    """What the browser client needs besides the figure (read by static/streams/live.js)."""
    return {
        "stream": stream.slug,
        "chart": "chart",
        "figure": "figure-data",
        "ws_path": WS_PATH,
        "window_points": stream.window_points,
        "window_seconds": stream.window_seconds,
        "new_trace": figures.new_trace_json(stream),
        "plotly_config": figures.PLOTLY_CONFIG,
        "decimals": stream.decimals,
        "fill_to_min": figures.fills_to_min(chart_type=stream.chart_type, fill=stream.area_fill),
    }


@require_GET
async def stream_events(request: HttpRequest, slug: str) -> HttpResponse:
    """The stream as Server-Sent Events (streams/delivery/sse.py); refusals are JSON, not events."""
    user = await request.auser()
    stream, allowed = await database_sync_to_async(access.viewable_stream)(user, slug)
    if stream is None:
        return _refuse(404, "not_found", f"no stream {slug!r}")
    if not allowed:
        if not access.is_signed_in(user):
            return _refuse(401, "unauthorized", f"sign in (at /accounts/login/) to see stream {slug!r}")
        return _refuse(403, "forbidden", f"you may not see stream {slug!r}")
    try:
        after = sse.resume_id(request)
    except ValueError:
        return _refuse(
            400, "bad_request", "Last-Event-ID (or ?after=) must be a point id like 1700000000000-0"
        )
    user_id = user.pk if access.is_signed_in(user) else None
    if user_id is not None and sse.get_watcher().open_for(user_id) >= sse.MAX_PER_USER:
        return _refuse(429, "rate_limited", f"at most {sse.MAX_PER_USER} open event streams per user")
    viewing = sse.Viewing(
        session_key=request.session.session_key if user_id is not None else None, user_id=user_id, slug=slug
    )
    return sse.event_response(stream=stream, viewing=viewing, after=after)


def _refuse(status: int, code: str, message: str, **extra: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message, **extra}, status=status)


_push_limiter: RateLimiter | None = None


def push_limiter() -> RateLimiter:
    global _push_limiter
    rate = settings.LIVECHARTS_PUSH_RATE
    if _push_limiter is None or _push_limiter.rate != rate:
        _push_limiter = RateLimiter(rate=rate, burst=2 * rate)
    return _push_limiter


@csrf_exempt
@never_cache
async def push_points(request: HttpRequest, slug: str) -> JsonResponse:
    """POST points to a push stream (see streams/ingest/feeds/push.py for the format). 202 once queued."""
    try:
        if request.method != "POST":
            raise PushRefused(405, "method_not_allowed", "POST points to this URL")
        token = await sync_to_async(active_push_token)(request.headers.get("Authorization", ""))
        stream = await _push_stream(token, slug)
        push_limiter().check(token.digest)
        points = read_points(
            _read_body(request),
            content_type=request.headers.get("Content-Type", ""),
            feed=PushFeed(stream.feed_settings),
            received_at=time.time(),
        )
        try:
            await get_inbox().put(slug, points)
        except InboxFull:
            raise PushRefused(
                503, "unavailable", "the stream's worker is not taking points; retry later", retry_after=5
            ) from None
        except (InboxUnavailable, RedisError, OSError) as error:
            # Redis down or failing over: nothing was acknowledged, so the pusher must know.
            log.warning("push to %s refused: Redis unavailable (%s)", slug, type(error).__name__)
            raise PushRefused(
                503, "unavailable", "storage is failing over or unreachable; retry shortly", retry_after=1
            ) from None
    except PushRefused as refused:
        response = JsonResponse({"error": refused.code, "message": refused.message}, status=refused.status)
        if refused.retry_after is not None:
            response["Retry-After"] = retry_after_header(refused.retry_after)
        if refused.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="livecharts"'
        if refused.status == 405:
            response["Allow"] = "POST"
        return response
    return JsonResponse({"stream": slug, "accepted": len(points)}, status=202)


async def _push_stream(token: PushToken, slug: str) -> Stream:
    stream = await Stream.objects.filter(slug=slug).afirst()
    if stream is None:
        raise PushRefused(404, "not_found", f"no stream {slug!r}")
    if not await token.streams.filter(pk=stream.pk).aexists():
        raise PushRefused(403, "forbidden", f"this token may not push to {slug!r}")
    if stream.feed_kind != PushFeed.kind:
        raise PushRefused(
            403, "forbidden", f"stream {slug!r} takes its points from its {stream.feed_kind} feed, not pushes"
        )
    if not stream.enabled:
        raise PushRefused(403, "forbidden", f"stream {slug!r} is disabled")
    return stream


def _read_body(request: HttpRequest) -> bytes:
    limit = settings.LIVECHARTS_PUSH_MAX_BYTES
    too_large = PushRefused(413, "too_large", f"the body is over the limit of {limit} bytes")
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise PushRefused(400, "bad_request", "Content-Length is not a number") from None
    if declared > limit:
        raise too_large
    if request.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise PushRefused(415, "unsupported_media_type", "send the body uncompressed")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise too_large
    return body


# Range and export (streams/storage/ranges.py, streams/storage/export.py) -----------------------------------


def _refusal(
    request: HttpRequest, slug: str, *, login_page: bool
) -> tuple[Stream | None, HttpResponse | None]:
    """(stream, None) when the user may read the stream's points, else (None, the answer):
    404, 401 for anonymous (or the sign-in page when `login_page`), 403 for the signed in."""
    stream, allowed = access.viewable_stream(request.user, slug)
    if stream is None:
        return None, _refuse(404, "not_found", f"no stream {slug!r}")
    if allowed:
        return stream, None
    if not access.is_signed_in(request.user):
        if login_page:
            return None, redirect_to_login(request.get_full_path())
        return None, _refuse(401, "unauthorized", f"sign in (at /accounts/login/) to see stream {slug!r}")
    return None, _refuse(403, "forbidden", f"you may not see stream {slug!r}")


@never_cache
@require_GET
def stream_range(request: HttpRequest, slug: str) -> HttpResponse:
    """A stream's stored points between `start` and `end`, thinned to about `points` rows."""
    # JSON for the page's scripts: a 401 they can act on, never a redirect to the sign-in page.
    stream, refusal = _refusal(request, slug, login_page=False)
    if refusal is not None:
        return refusal
    try:
        start, end = ranges.parse_bounds(request.GET)
        points = ranges.parse_points(request.GET.get("points"))
    except ranges.BadParameter as bad:
        return _refuse(400, "bad_request", bad.message, parameter=bad.name)
    answer = ranges.range_answer(stream, start=start, end=end, points=points)
    return JsonResponse(answer, json_dumps_params={"allow_nan": False})


@never_cache
@require_GET
def stream_export(request: HttpRequest, slug: str, fmt: export.Format) -> HttpResponse:
    """A stream's stored points between `start` and `end` as a CSV or JSON download, streamed."""
    # A browser following a download link is sent to sign in, like the page; curl and pandas get 401.
    stream, refusal = _refusal(request, slug, login_page="text/html" in request.headers.get("Accept", ""))
    if refusal is not None:
        return refusal
    try:
        start, end = ranges.parse_bounds(request.GET)
    except ranges.BadParameter as bad:
        return _refuse(400, "bad_request", bad.message, parameter=bad.name)
    job = export.Export(stream_id=stream.pk, start=start, end=end, fmt=fmt)
    # Under ASGI (daphne) an async iterator, or Django would buffer a sync one whole.
    chunks = job.achunks() if isinstance(request, ASGIRequest) else job.chunks()
    response = StreamingHttpResponse(chunks, content_type=export.CONTENT_TYPES[fmt])
    name = export.filename(stream.slug, start=start, end=end, fmt=fmt)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Accel-Buffering"] = "no"  # nginx: pass pages on, do not spool the export to disk
    return response

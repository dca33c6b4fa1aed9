"""Pages and small endpoints. Thin: every access decision is streams.access's."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from streams import access, figures
from streams.models import Stream

# The socket path the browser client connects to (streams/routing.py).
WS_PATH = "/ws/"


@require_GET
def stream_list(request: HttpRequest) -> HttpResponse:
    streams = Stream.objects.visible_to(request.user)
    return render(request, "streams/stream_list.html", {"streams": streams})


@require_GET
def stream_detail(request: HttpRequest, slug: str) -> HttpResponse:
    stream, allowed = access.viewable_stream(request.user, slug)
    if stream is None:
        raise Http404(f"no stream {slug!r}")
    if not allowed:
        if not access.is_signed_in(request.user):
            # Anonymous (or deactivated): signing in may be all it takes.
            return redirect_to_login(request.get_full_path())
        raise PermissionDenied(f"you may not see stream {slug!r}")
    return render(
        request,
        "streams/stream_detail.html",
        {"stream": stream, "figure": figures.figure_json(stream), "live_config": live_config(stream)},
    )


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
    }


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})

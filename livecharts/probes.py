"""Health probes and the metrics scrape answered on a daphne's own port, whatever the Host.

A load balancer, `curl http://127.0.0.1:8001/healthz` in the release loop, or Prometheus
scraping one process sends a Host that is not in ALLOWED_HOSTS (the public name is nginx's)
over plain HTTP, which SECURE_SSL_REDIRECT would bounce to https. Those requests got 400
DisallowedHost (with a traceback in the log each) or a redirect, so the documented release loop
never ended. The answers below use nothing of the Host (no links, no redirects, no cookies), so
checking it would protect nothing; /metrics keeps its own rule (the bearer token; staff in a
browser come through nginx with the public Host and take the ordinary path).
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse

PROBE_PATHS = frozenset({"/healthz", "/readyz"})
METRICS_PATH = "/metrics"


class ProbeMiddleware:
    """Before CommonMiddleware (the Host check); SECURE_REDIRECT_EXEMPT spares these paths the
    https redirect, and the security and CSP headers still apply to the answers."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        view = probe_view(request)
        if view is None:
            return await self.get_response(request)
        response = view(request)
        if inspect.isawaitable(response):
            response = await response
        return response


def probe_view(request: HttpRequest) -> Callable[[HttpRequest], Any] | None:
    """The view that answers `request` without the Host check, or None for the usual path."""
    from streams.web import metrics, probes

    if request.method not in ("GET", "HEAD"):
        return None
    if request.path in PROBE_PATHS:
        return probes.healthz if request.path == "/healthz" else probes.readyz
    if request.path == METRICS_PATH and bears_metrics_token(request):
        # No session or auth middleware ran: the scraper is anonymous, and its token is enough.
        request.user = AnonymousUser()
        request.auser = _anonymous  # type: ignore[attr-defined]
        return metrics.metrics
    return None


def bears_metrics_token(request: HttpRequest) -> bool:
    token = settings.LIVECHARTS_METRICS_TOKEN
    offered = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(offered.encode(), f"Bearer {token}".encode())


async def _anonymous() -> AnonymousUser:
    return AnonymousUser()

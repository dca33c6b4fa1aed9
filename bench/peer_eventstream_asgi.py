"""URLs and the ASGI application daphne serves for the django-eventstream peer.

Its settings are bench/peer_eventstream.py; the events view is at `/events/<stream>/`, one
eventstream channel per chart, as django-eventstream's README routes it.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peer_eventstream")

from django.core.asgi import get_asgi_application

application = get_asgi_application()

import django_eventstream  # noqa: E402 - reads settings at import: after setup
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import include, path  # noqa: E402


def healthz(_request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n")


urlpatterns = [
    path("healthz", healthz),
    path("events/<stream>/", include(django_eventstream.urls), {"format-channels": ["{stream}"]}),
]

"""The project's URLs: admin, the streams app, and /favicon.ico (browsers ask for it on every
site, whatever the page links; without it each first visit logged a 404)."""

from __future__ import annotations

from functools import cache

from django.contrib import admin
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_safe

FAVICON = "streams/admin/favicon.ico"


@cache
def _favicon() -> bytes:
    found = finders.find(FAVICON)
    assert isinstance(found, str), f"{FAVICON} is missing from the static files"
    with open(found, "rb") as icon:
        return icon.read()


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(_favicon(), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("", include("streams.urls")),
]

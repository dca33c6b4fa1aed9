"""Content-Security-Policy on every response (Django 5.2 has none built in).

Scripts only from our own origin, never inline: templates load static files and pass data with
`json_script` (type application/json, which browsers never execute), so an injected `<script>`
or `onclick=` does not run. What the pages need beyond `'self'`:

- `style-src 'unsafe-inline'`: plotly.js writes `<style>` elements and style attributes for
  every chart, and templates set CSS variables in `style=` (dashboard grid sizes). Styles
  cannot run code; scripts stay strict.
- `img-src data: blob:`: plotly's mode bar and "download plot as png" use them.
- `connect-src` the page's own host over ws:// and wss:// for the live socket (CSP Level 2
  browsers do not count ws: as `'self'`), and `'self'` for SSE, range and export requests.

No `'unsafe-eval'`: the SVG traces LiveCharts draws never evaluate strings (only plotly's
WebGL traces would, and LiveCharts uses none); tests/browser/test_csp.py checks in Chromium
that no violation is reported on the stream page, a dashboard and admin.
"""

from __future__ import annotations

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"
FIXED = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "font-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy(host: str | None) -> str:
    """The policy for a page served under `host` (None when the host is not known)."""
    connect = "'self'" if host is None else f"'self' ws://{host} wss://{host}"
    directives = {**FIXED, "connect-src": connect}
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Sets the policy on responses that have none of their own. A MiddlewareMixin, so it runs
    sync or async as the stack does (no thread hop for async views such as SSE output)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if HEADER not in response:
            try:
                host = request.get_host()
            except DisallowedHost:
                host = None
            response[HEADER] = policy(host)
        return response

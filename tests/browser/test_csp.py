"""The Content-Security-Policy in Chromium: the stream page, a dashboard and admin work under it
(charts draw, the socket goes live, admin widgets run) and the browser reports no violation."""

from __future__ import annotations

import pytest
import yaml

from tests import waits
from tests.browser.test_dashboard import TEMPS
from tests.processes import STACK_PASSWORD as PASSWORD
from tests.processes import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(150)]

BOARD = {
    "streams": [TEMPS],
    "dashboards": [
        {
            "slug": "board",
            "title": "Board",
            "visibility": "signed_in",
            "panels": [
                {"title": "Line", "type": "line", "streams": ["temps"], "width": 6},
                {"title": "Gauge", "type": "gauge", "streams": ["temps"], "series": "a", "min": -2, "max": 2},
                {
                    "title": "Candles",
                    "type": "candlestick",
                    "streams": ["temps"],
                    "series": "a",
                    "candle_seconds": 1,
                },
                {"title": "Bars", "type": "bar", "streams": ["temps"], "width": 6},
            ],
        }
    ],
}

# Before any page script: every violation event the document sees, with what it blocked.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""
CHART_POINTS = "(id) => document.getElementById(id).data.reduce((n, trace) => n + trace.x.length, 0)"


def wait_until(page, expression: str, *, show: str = "null") -> None:
    """Poll `expression` from Python: page.wait_for_function would eval() it in the page, which
    the policy under test refuses (page.evaluate goes through the DevTools protocol, which CSP
    does not govern)."""
    waits.wait_until(
        lambda: page.evaluate(expression), what=expression, seen=lambda: page.evaluate(show), poll=0.1
    )


def test_pages_and_admin_work_under_the_policy_with_no_violation(stack: Stack, browser, tmp_path):
    board = tmp_path / "board.yaml"
    board.write_text(yaml.safe_dump(BOARD), encoding="utf-8")
    assert stack.manage("provision", str(board)).returncode == 0
    stack.add_superuser()
    stack.start_ingest()
    stack.start_daphne()

    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=False)
    context.add_init_script(RECORD_VIOLATIONS)
    console: list[str] = []
    violations: list[str] = []
    page = context.new_page()

    def visit(path: str) -> None:
        """Open `path` in a new tab (one page's state never leaks into the next)."""
        nonlocal page
        violations.extend(page.evaluate("window.__violations"))
        page = context.new_page()
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
        response = page.goto(f"{stack.base_url}{path}")
        assert response is not None
        assert response.status == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy
        assert "unsafe-eval" not in policy

    visit("/accounts/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.base_url}/")

    # The dashboard: every panel kind draws over the one socket.
    visit("/dashboards/board/")
    wait_until(page, "document.body.dataset.connection === 'live'")
    panels = "window.livecharts.panels"
    wait_until(
        page, f"Object.values({panels}).every((panel) => panel.draws > 1)", show=f"JSON.stringify({panels})"
    )

    # The stream page: the chart draws live points, and a range view fetches stored ones.
    visit("/streams/line/")
    wait_until(page, "document.body.dataset.connection === 'live'")
    wait_until(page, f"({CHART_POINTS})('chart') > 20")
    with page.expect_response(lambda response: "/range" in response.url) as ranged:
        page.click("button[data-range='1h']")
    assert ranged.value.status == 200

    # Admin: the change list, a stream's form (its scripts: prepopulated slug, the two-box
    # viewer selector) and a dashboard's form with its inline panels.
    visit("/admin/streams/stream/")
    visit("/admin/streams/stream/add/")
    page.locator("input[name=title]").press_sequentially("Typed title")
    wait_until(page, "document.querySelector('input[name=slug]').value === 'typed-title'")
    assert page.locator("#id_viewers_from").count() == 1  # SelectFilter2 built its boxes
    visit("/admin/streams/dashboard/")
    page.click("text=Board")
    page.wait_for_load_state()
    violations.extend(page.evaluate("window.__violations"))
    context.close()

    refused = [line for line in console if "Content Security Policy" in line or "Refused to" in line]
    assert refused == []
    assert violations == []
    assert [line for line in console if line.startswith("pageerror")] == []

"""Admin in a real Chromium at 1280x800, under the site's Content-Security-Policy: the stream form
(settings editor, test in place, durations), the change list's columns, a dashboard's panels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.models import Dashboard, Panel, Stream

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def orm_beside_playwright(monkeypatch) -> None:
    """Playwright's sync API keeps an event loop running in this thread, which Django takes for
    an async context: the test's own ORM calls are plain sync calls, so allow them."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def admin_page(orm_beside_playwright, browser, live_server, admin_user) -> Iterator:
    """A signed-in admin tab; every response of 400 or more is recorded in `page.failed`."""
    context = browser.new_context(viewport=VIEWPORT, bypass_csp=False)
    page = context.new_page()
    page.failed = []
    page.errors = []
    page.on("response", lambda r: page.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.base = live_server.url
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    try:
        yield page
    finally:
        context.close()


def box(page, selector: str) -> dict:
    return page.locator(selector).first.bounding_box()


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_stream_form_sizes_numbers_says_durations_and_guides_the_settings(admin_page):
    page = admin_page
    page.goto(f"{page.base}/admin/streams/stream/add/")
    keep = page.locator("input[name=keep_seconds]")
    assert keep.input_value() == "2592000"
    # Every digit shows: nothing scrolled out of the box.
    assert keep.evaluate("(input) => input.scrollWidth <= input.clientWidth")
    words = page.locator("input[name=keep_seconds] + .lc-duration")
    assert words.inner_text() == "30 days"
    field, said = keep.bounding_box(), words.bounding_box()
    assert said["x"] >= field["x"] + field["width"] and abs(said["y"] - field["y"]) < field["height"]
    keep.fill("31536000000")
    assert words.inner_text() == "365,000 days"
    assert keep.evaluate("(input) => input.scrollWidth <= input.clientWidth")
    page.locator("input[name=window_seconds]").fill("5400")
    assert page.locator("input[name=window_seconds] + .lc-duration").inner_text() == "1 hour 30 minutes"
    shoot(page, "admin_stream_add.png")

    # Another kind: its keys beside the box, and its starter settings in it.
    assert page.locator('.lc-kind-help[data-kind="simulate"]').is_visible()
    page.select_option("select[name=feed_kind]", "mqtt")
    assert page.locator('.lc-kind-help[data-kind="mqtt"]').is_visible()
    assert not page.locator('.lc-kind-help[data-kind="simulate"]').is_visible()
    assert '"host": "broker.example.com"' in page.locator("textarea[name=feed_settings]").input_value()
    page.locator('.lc-kind-help[data-kind="mqtt"] a').wait_for()

    # What the operator typed stays when the kind changes again.
    page.select_option("select[name=feed_kind]", "simulate")
    page.fill("textarea[name=feed_settings]", '{"rate": 200, "series": ["clicked"]}')
    page.select_option("select[name=feed_kind]", "push")
    assert (
        page.locator("textarea[name=feed_settings]").input_value() == '{"rate": 200, "series": ["clicked"]}'
    )
    page.select_option("select[name=feed_kind]", "simulate")

    # Test the settings in the form, unsaved, in place.
    page.fill("input[name=title]", "Clicked")
    page.click("button.lc-test-feed")
    page.locator(".lc-probe-result #probe-ok").wait_for(timeout=20_000)
    assert page.locator(".lc-probe-result #probe-points th").all_text_contents() == ["time (UTC)", "clicked"]
    assert page.url.endswith("/admin/streams/stream/add/")  # still on the form, nothing lost
    assert page.locator("input[name=title]").input_value() == "Clicked"
    assert not Stream.objects.exists()
    shoot(page, "admin_stream_add_tested.png")
    assert page.errors == [] and page.failed == []


def test_stream_change_page_and_favicon(admin_page):
    page = admin_page
    stream = Stream.objects.create(
        slug="boiler",
        title="Boiler",
        feed_kind="poll",
        feed_settings={"url": "https://api.example/v1/boiler", "interval": 10, "extract": {"value": "t"}},
    )
    page.goto(f"{page.base}/admin/streams/stream/{stream.pk}/change/")
    assert page.locator('.lc-kind-help[data-kind="poll"]').is_visible()
    icon = page.evaluate("fetch('/favicon.ico').then((r) => r.status)")
    assert icon == 200
    shoot(page, "admin_stream_change.png")
    assert page.errors == [] and page.failed == []


def test_the_visibility_column_is_clear_of_the_filters(admin_page):
    page = admin_page
    for index, visibility in enumerate(["public", "signed_in", "restricted"]):
        Stream.objects.create(
            slug=f"stream-{index}", title=f"A stream with a longer title {index}", visibility=visibility
        )
    page.goto(f"{page.base}/admin/streams/stream/")
    header = box(page, "th.column-visibility_short")
    filters = box(page, "#changelist-filter")
    results = box(page, ".results")
    assert header["x"] + header["width"] <= filters["x"], (header, filters)
    assert header["x"] + header["width"] <= results["x"] + results["width"], (header, results)
    assert page.locator(".results").evaluate("(el) => el.scrollWidth <= el.clientWidth")
    assert page.locator("td.field-visibility_short").first.inner_text() == "public"
    shoot(page, "admin_stream_changelist.png")
    assert page.failed == []


def test_a_dashboard_form_shows_each_panel_only_its_own_fields(admin_page):
    page = admin_page
    stream = Stream.objects.create(slug="temps", title="Temperatures", feed_settings={"series": ["a", "b"]})
    board = Dashboard.objects.create(slug="board", title="Board")
    for position, (kind, extra) in enumerate(
        [
            ("line", {}),
            ("gauge", {"series": "a", "gauge_min": 0, "gauge_max": 10}),
            ("candlestick", {"series": "a"}),
        ]
    ):
        panel = Panel.objects.create(dashboard=board, position=position, chart_type=kind, **extra)
        panel.set_streams([stream])
    page.goto(f"{page.base}/admin/streams/dashboard/{board.pk}/change/")
    height = page.evaluate("document.documentElement.scrollHeight")
    page.screenshot(path=str(ARTIFACTS / "admin_dashboard_change_full.png"), full_page=True)
    # 4,289 px before; each panel also shows its `decimals` (every type draws numbers).
    assert height < 2100, height

    def shown(index: int, field: str) -> bool:
        return page.locator(f"#panels-{index} .form-row.field-{field}").is_visible()

    assert [shown(i, "candle_seconds") for i in range(3)] == [False, False, True]
    assert [shown(i, "gauge_min") for i in range(3)] == [False, True, False]
    assert all(shown(i, "chart_type") and shown(i, "panel_streams") for i in range(3))
    shoot(page, "admin_dashboard_change.png")

    page.select_option("select[name=panels-0-chart_type]", "candlestick")
    assert shown(0, "candle_seconds") and not shown(0, "gauge_min")
    page.select_option("select[name=panels-0-chart_type]", "gauge")
    assert shown(0, "gauge_min") and not shown(0, "candle_seconds")
    # A panel added on the page starts as a line: neither.
    page.click(".add-row a")
    assert not shown(3, "candle_seconds") and not shown(3, "gauge_min")
    page.select_option("select[name=panels-3-chart_type]", "candlestick")
    assert shown(3, "candle_seconds")
    assert page.errors == [] and page.failed == []
    print(f"dashboard form with 3 panels: {height} px tall")

"""Dashboards: panels and their validation, who sees which panel, the page, figures and admin."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.forms import modelform_factory
from django.test import Client
from django.urls import reverse

from streams.access import rules as access
from streams.admin import PanelForm
from streams.models import Dashboard, Panel, Stream
from streams.web import figures
from streams.web.dashboards import page_context, panels_of

pytestmark = pytest.mark.django_db

V = Stream.Visibility


def make_stream(slug: str, visibility: str = V.SIGNED_IN, *, series: list[str] | None = None, **fields: Any):
    return Stream.objects.create(
        slug=slug,
        title=fields.pop("title", slug.replace("-", " ").title()),
        visibility=visibility,
        feed_settings={"series": series or ["value"]},
        **fields,
    )


def add_panel(dashboard: Dashboard, streams: list[Stream], **fields: Any) -> Panel:
    fields.setdefault("position", dashboard.panels.count())
    panel = Panel.objects.create(dashboard=dashboard, **fields)
    panel.set_streams(streams)
    return panel


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def streams(alice: User, operators: Group) -> dict[str, Stream]:
    """Public, signed-in, and restricted to alice (who bob is not)."""
    secret = make_stream("secret-vault", V.RESTRICTED, title="Vault temperature")
    secret.viewers.add(alice)
    return {
        "weather": make_stream("weather", V.PUBLIC, series=["temp", "wind"]),
        "market": make_stream("market", series=["ACME", "GLOBEX"], y_unit="USD", window_seconds=300),
        "latency": make_stream("latency", series=["api"], y_unit="ms"),
        "secret": secret,
    }


@pytest.fixture
def ops(streams: dict[str, Stream]) -> Dashboard:
    """A signed-in dashboard: weather line, market candlestick, a panel on the secret stream."""
    dashboard = Dashboard.objects.create(slug="ops", title="Ops", visibility=V.SIGNED_IN)
    add_panel(dashboard, [streams["weather"]], title="Weather now", chart_type="line")
    add_panel(dashboard, [streams["market"]], chart_type="candlestick", series="ACME", candle_seconds=10)
    add_panel(dashboard, [streams["latency"], streams["secret"]], title="Latency and vault", width=12)
    return dashboard


# Validation ---------------------------------------------------------------------------------


def messages(error: ValidationError) -> dict[str, str]:
    return {field: " ".join(texts) for field, texts in error.message_dict.items()}


def test_a_panel_wider_than_the_grid_is_refused_naming_the_columns():
    dashboard = Dashboard.objects.create(slug="d", title="D", columns=4)
    with pytest.raises(ValidationError) as caught:
        Panel(dashboard=dashboard, width=6).full_clean()
    assert messages(caught.value)["width"] == "At most the dashboard's 4 columns, not 6."


def test_panel_width_is_checked_against_an_unsaved_dashboard_too():
    Panel(dashboard=Dashboard(slug="d", title="D", columns=12), width=12).full_clean(exclude=["dashboard"])
    with pytest.raises(ValidationError, match="not 13"):
        Panel(dashboard=Dashboard(slug="d", title="D", columns=12), width=13).full_clean(
            exclude=["dashboard"]
        )


@pytest.mark.parametrize(
    ("low", "high", "field", "message"),
    [
        (0, None, "gauge_max", "Set both gauge min and max for a dial, or neither for a big number."),
        (None, 5, "gauge_min", "Set both gauge min and max for a dial, or neither for a big number."),
        (5, 5, "gauge_max", "Must be above gauge min (5), not 5."),
    ],
)
def test_a_gauge_range_needs_both_ends_in_order(low, high, field, message):
    dashboard = Dashboard.objects.create(slug="d", title="D")
    with pytest.raises(ValidationError) as caught:
        Panel(dashboard=dashboard, chart_type="gauge", gauge_min=low, gauge_max=high).full_clean()
    assert messages(caught.value) == {field: message}


def test_a_gauge_without_a_range_is_a_big_number_and_valid():
    dashboard = Dashboard.objects.create(slug="d", title="D")
    Panel(dashboard=dashboard, chart_type="gauge").full_clean()


def test_a_panel_needs_a_stream(streams):
    with pytest.raises(ValidationError) as caught:
        Panel(chart_type="line").clean_streams([])
    assert messages(caught.value) == {"streams": "Choose at least one stream."}


@pytest.mark.parametrize("chart_type", ["candlestick", "gauge"])
def test_single_value_panels_take_exactly_one_stream(streams, chart_type):
    with pytest.raises(ValidationError) as caught:
        Panel(chart_type=chart_type, series="api").clean_streams([streams["latency"], streams["weather"]])
    assert messages(caught.value) == {
        "streams": f"A {chart_type} panel shows one series of one stream: choose exactly one stream, not 2."
    }


def test_a_candlestick_on_a_stream_of_several_series_must_name_one(streams):
    with pytest.raises(ValidationError) as caught:
        Panel(chart_type="candlestick").clean_streams([streams["market"]])
    assert messages(caught.value) == {
        "series": "Stream “market” has 2 series (ACME, GLOBEX): name the one to show."
    }
    Panel(chart_type="candlestick", series="GLOBEX").clean_streams([streams["market"]])


def test_a_candlestick_on_a_single_series_stream_needs_no_name(streams):
    Panel(chart_type="candlestick").clean_streams([streams["latency"]])


def test_an_unknown_series_is_refused_listing_the_streams_series(streams):
    with pytest.raises(ValidationError) as caught:
        Panel(chart_type="line", series="wind").clean_streams([streams["weather"], streams["market"]])
    assert messages(caught.value) == {
        "series": "No series “wind” on every stream: “market” has ACME, GLOBEX."
    }


def test_panel_streams_keep_the_order_they_were_given(ops, streams):
    panel = ops.panels.get(title="Latency and vault")
    assert [s.slug for s in panel.ordered_streams()] == ["latency", "secret-vault"]
    panel.set_streams([streams["secret"], streams["weather"], streams["latency"]])
    assert [s.slug for s in panel.ordered_streams()] == ["secret-vault", "weather", "latency"]


def test_a_panel_without_a_title_is_named_after_its_streams(ops):
    candles = ops.panels.get(chart_type="candlestick")
    assert candles.display_title() == "Market: ACME"
    assert ops.panels.get(title="Weather now").display_title() == "Weather now"


# Access ------------------------------------------------------------------------------------


def visible_dashboards(user) -> set[str]:
    return set(Dashboard.objects.visible_to(user).values_list("slug", flat=True))


def test_dashboard_visibility_follows_the_stream_rule(alice, bob, carol, staff, operators):
    Dashboard.objects.create(slug="public", title="P", visibility=V.PUBLIC)
    Dashboard.objects.create(slug="signed-in", title="S", visibility=V.SIGNED_IN)
    named = Dashboard.objects.create(slug="named", title="N", visibility=V.RESTRICTED)
    named.viewers.add(alice)
    grouped = Dashboard.objects.create(slug="grouped", title="G", visibility=V.RESTRICTED)
    grouped.viewer_groups.add(operators)
    Dashboard.objects.create(slug="nobody", title="X", visibility=V.RESTRICTED)

    assert visible_dashboards(None) == {"public"}
    assert visible_dashboards(bob) == {"public", "signed-in"}
    assert visible_dashboards(alice) == {"public", "signed-in", "named", "grouped"}
    assert visible_dashboards(carol) == {"public", "signed-in", "grouped"}
    assert visible_dashboards(staff) == {"public", "signed-in", "named", "grouped", "nobody"}


def test_the_stream_rule_is_unchanged_by_default(streams, bob):
    assert set(Stream.objects.filter(access.visibility_filter(bob)).values_list("slug", flat=True)) == {
        "weather",
        "market",
        "latency",
    }


def test_a_panel_shows_only_when_every_one_of_its_streams_may_be_seen(ops, alice, bob):
    def titles(user) -> list[str]:
        shown, _ = access.visible_panels(user, panels_of(ops))
        return [panel.display_title() for panel in shown]

    assert titles(alice) == ["Weather now", "Market: ACME", "Latency and vault"]
    # bob may see "latency" but not "secret-vault": the panel of both is not half-drawn for him.
    assert titles(bob) == ["Weather now", "Market: ACME"]
    assert access.visible_panels(bob, panels_of(ops))[1] == 1


def test_a_disabled_stream_hides_its_panels_from_all_but_staff(ops, streams, alice, staff):
    Stream.objects.filter(pk=streams["market"].pk).update(enabled=False)
    assert len(access.visible_panels(alice, panels_of(ops))[0]) == 2
    assert len(access.visible_panels(staff, panels_of(ops))[0]) == 3


def test_viewable_dashboard_tells_missing_from_forbidden(ops, bob):
    assert access.viewable_dashboard(bob, "nope") == (None, False)
    assert access.viewable_dashboard(None, "ops") == (ops, False)
    assert access.viewable_dashboard(bob, "ops") == (ops, True)


# The page ------------------------------------------------------------------------------------


def test_an_unknown_dashboard_is_404(bob):
    assert client_for(bob).get("/dashboards/nope/").status_code == 404


def test_anonymous_viewers_are_sent_to_sign_in_for_a_signed_in_dashboard(ops):
    response = client_for(None).get("/dashboards/ops/")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/dashboards/ops/"


def test_a_signed_in_viewer_not_on_a_restricted_dashboard_gets_403(ops, bob):
    ops.visibility = V.RESTRICTED
    ops.save()
    assert client_for(bob).get("/dashboards/ops/").status_code == 403


def test_forbidden_panels_are_not_in_the_page_at_all(ops, bob):
    response = client_for(bob).get("/dashboards/ops/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="card panel"') == 2
    assert "Weather now" in html
    # Not hidden by CSS: the panel's title, its streams and their slugs are nowhere in the page.
    for absent in ("Latency and vault", "secret-vault", "Vault temperature", '"latency"'):
        assert absent not in html
    config = json.loads(
        re.search(r'id="dashboard-config" type="application/json">(.*?)</script>', html).group(1)
    )
    assert [[s["slug"] for s in panel["streams"]] for panel in config["panels"]] == [["weather"], ["market"]]
    assert "1 panel of this dashboard shows streams you may not see, so it is left out." in " ".join(
        html.split()
    )


def test_alice_sees_every_panel_and_no_note(ops, alice):
    html = client_for(alice).get("/dashboards/ops/").content.decode()
    assert html.count('class="card panel"') == 3
    assert "Latency and vault" in html
    assert 'id="hidden-panels"' not in html


def test_a_dashboard_whose_panels_are_all_hidden_explains_instead_of_an_empty_grid(ops, bob):
    ops.panels.exclude(title="Latency and vault").delete()
    html = client_for(bob).get("/dashboards/ops/").content.decode()
    assert 'class="dashboard-grid"' not in html
    assert "dashboard.js" not in html  # no socket for nothing
    assert "Every panel of this dashboard shows streams you may not see" in html
    assert "Ask an operator for access to its streams." in html


def test_a_dashboard_without_panels_says_so(bob):
    Dashboard.objects.create(slug="empty", title="Empty")
    html = client_for(bob).get("/dashboards/empty/").content.decode()
    assert "This dashboard has no panels yet." in html


def test_the_page_loads_plotly_locally_and_one_client_module(ops, alice):
    html = client_for(alice).get("/dashboards/ops/").content.decode()
    assert "/static/plotly/plotly.min.js" in html
    assert html.count('type="module"') == 1
    assert "/static/streams/dashboard.js" in html
    # Every script and stylesheet comes from this server. (Not a search for "cdn": the page's
    # random CSRF token holds those three letters about once in 500 loads.)
    sources = re.findall(r'<script[^>]*\ssrc="([^"]+)"', html)
    assert sources and not [src for src in sources if re.match(r"(https?:)?//", src)]
    assert not re.search(r'<link[^>]+href="(https?:)?//', html)


def test_panel_grid_sizes_come_from_the_panels(ops, alice):
    html = client_for(alice).get("/dashboards/ops/").content.decode()
    assert 'style="--columns: 12"' in html
    assert "--w: 12; --h: 1" in html


def test_page_config_gives_each_panel_its_streams_windows_and_traces(ops, alice, streams):
    context = page_context(alice, ops, ws_path="/ws/")
    weather, candles, both = context["dashboard_config"]["panels"]
    assert weather["traces"] == [["weather", "temp"], ["weather", "wind"]]
    assert [trace["name"] for trace in weather["figure"]["data"]] == ["temp", "wind"]
    assert candles["chart_type"] == "candlestick"
    assert candles["series"] == "ACME"
    assert candles["candle_ms"] == 10_000
    assert candles["streams"][0]["window_seconds"] == 300
    # Several streams: trace names say which stream, each stream keeps its own window.
    assert [trace["name"] for trace in both["figure"]["data"]] == [
        "Latency · api",
        "Vault temperature · value",
    ]
    assert [s["label"] for s in both["streams"]] == ["Latency", "Vault temperature"]


def test_the_stream_list_lists_only_the_dashboards_a_viewer_may_open(ops, bob):
    Dashboard.objects.create(slug="board-room", title="Board room", visibility=V.RESTRICTED)
    html = client_for(bob).get("/").content.decode()
    assert reverse("dashboard-detail", args=["ops"]) in html
    assert "Board room" not in html
    listing = client_for(bob).get("/dashboards/").content.decode()
    assert "/dashboards/ops/" in listing
    assert "Board room" not in listing


def test_the_stream_list_has_no_dashboard_section_without_dashboards(streams, bob):
    assert "Dashboards" not in client_for(bob).get("/").content.decode().split("<main", 1)[1]


# Figures --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chart_type", [choice for choice, _ in Panel.ChartType.choices])
def test_no_panel_draws_with_webgl(streams, chart_type):
    """Browsers keep ~16 WebGL contexts per page: a dashboard of gl traces would lose charts."""
    panel = Panel(chart_type=chart_type, series="ACME")
    figure = figures.panel_figure_json(panel, [streams["market"]])
    types = {trace["type"] for trace in figure["data"]}
    assert types <= {"scatter", "bar", "indicator", "candlestick"}
    assert not any(t.endswith("gl") for t in types)


def test_a_gauge_with_a_range_is_a_dial_else_a_big_number(streams):
    dial = figures.panel_figure_json(
        Panel(chart_type="gauge", gauge_min=0, gauge_max=250), [streams["latency"]]
    )
    number = figures.panel_figure_json(Panel(chart_type="gauge"), [streams["latency"]])
    assert dial["data"][0]["mode"] == "gauge+number+delta"
    assert dial["data"][0]["gauge"]["axis"]["range"] == [0, 250]
    assert number["data"][0]["mode"] == "number+delta"
    assert number["data"][0]["number"]["suffix"] == " ms"


def test_a_candlestick_has_a_date_axis_and_no_range_slider(streams):
    figure = figures.panel_figure_json(Panel(chart_type="candlestick", series="ACME"), [streams["market"]])
    assert figure["data"][0]["type"] == "candlestick"
    assert figure["data"][0]["name"] == "ACME"
    assert figure["layout"]["xaxis"]["type"] == "date"
    assert figure["layout"]["xaxis"]["rangeslider"]["visible"] is False
    assert figure["layout"]["yaxis"]["title"]["text"] == "USD"


def test_a_panel_series_limits_the_traces(streams):
    figure = figures.panel_figure_json(Panel(chart_type="bar", series="wind"), [streams["weather"]])
    assert [trace["name"] for trace in figure["data"]] == ["wind"]
    assert figure["layout"]["showlegend"] is False


def test_streams_with_the_same_title_are_told_apart_by_slug(streams):
    twin = make_stream("weather-2", V.PUBLIC, title="Weather")
    labels = figures.stream_labels([streams["weather"], twin])
    assert labels == {"weather": "weather", "weather-2": "weather-2"}


def test_the_y_axis_is_titled_only_when_every_stream_agrees(streams):
    both = figures.panel_figure_json(Panel(chart_type="line"), [streams["market"], streams["latency"]])
    assert both["layout"]["yaxis"].get("title") is None
    one = figures.panel_figure_json(Panel(chart_type="line"), [streams["latency"]])
    assert one["layout"]["yaxis"]["title"]["text"] == "ms"


# Admin ----------------------------------------------------------------------------------------

ADD_URL = reverse("admin:streams_dashboard_add")


def admin_form(panels: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """The dashboard add form with its panel inline, as a browser posts it."""
    data: dict[str, Any] = {
        "title": "Plant",
        "slug": "plant",
        "description": "",
        "columns": "12",
        "visibility": "signed_in",
        "panels-TOTAL_FORMS": str(len(panels)),
        "panels-INITIAL_FORMS": "0",
        "panels-MIN_NUM_FORMS": "0",
        "panels-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for index, panel in enumerate(panels):
        fields = {
            "position": str(index),
            "title": "",
            "chart_type": "line",
            "series": "",
            "width": "6",
            "height": "1",
            "candle_seconds": "60",
            "gauge_min": "",
            "gauge_max": "",
            **panel,
        }
        data.update({f"panels-{index}-{key}": value for key, value in fields.items()})
    data.update(overrides)
    return data


def test_admin_makes_a_dashboard_with_panels_and_their_streams(admin_client: Client, streams):
    response = admin_client.post(
        ADD_URL,
        admin_form(
            [
                {"panel_streams": [streams["weather"].pk, streams["latency"].pk], "title": "Both"},
                {"panel_streams": [streams["market"].pk], "chart_type": "gauge", "series": "ACME"},
            ]
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    dashboard = Dashboard.objects.get(slug="plant")
    panels = list(dashboard.panels.all())
    assert [p.chart_type for p in panels] == ["line", "gauge"]
    assert {s.slug for s in panels[0].ordered_streams()} == {"weather", "latency"}


def test_admin_refuses_a_candlestick_of_two_streams_saying_why(admin_client: Client, streams):
    response = admin_client.post(
        ADD_URL,
        admin_form(
            [{"panel_streams": [streams["weather"].pk, streams["market"].pk], "chart_type": "candlestick"}]
        ),
    )
    assert response.status_code == 200
    assert "choose exactly one stream, not 2" in response.content.decode()
    assert not Dashboard.objects.exists()


def test_admin_refuses_narrowing_the_grid_under_a_panel(admin_client: Client, ops):
    panels = list(ops.panels.all())
    data = admin_form([], title="Ops", slug="ops", columns="6")
    data.update({"panels-TOTAL_FORMS": str(len(panels)), "panels-INITIAL_FORMS": str(len(panels))})
    for index, panel in enumerate(panels):
        for key in ("position", "title", "chart_type", "series", "width", "height", "candle_seconds"):
            data[f"panels-{index}-{key}"] = str(getattr(panel, key))
        data[f"panels-{index}-id"] = str(panel.pk)
        data[f"panels-{index}-dashboard"] = str(ops.pk)
        data[f"panels-{index}-panel_streams"] = [s.pk for s in panel.ordered_streams()]
    response = admin_client.post(reverse("admin:streams_dashboard_change", args=[ops.pk]), data)
    assert response.status_code == 200
    assert "At most the dashboard&#x27;s 6 columns, not 12." in response.content.decode()
    ops.refresh_from_db()
    assert ops.columns == 12


def test_admin_keeps_the_order_of_streams_already_on_a_panel(admin_client: Client, ops, streams):
    panel = ops.panels.get(title="Latency and vault")
    panel.set_streams([streams["secret"], streams["latency"]])  # not alphabetical, not by pk
    response = admin_client.get(reverse("admin:streams_dashboard_change", args=[ops.pk]))
    assert response.status_code == 200
    # The panel form as admin builds it, chosen streams sent in list order (as a select sends them).
    form_class = modelform_factory(
        Panel,
        form=PanelForm,
        fields=["position", "chart_type", "width", "height", "candle_seconds", "panel_streams"],
    )
    form = form_class(
        instance=panel,
        data={
            "position": "2",
            "chart_type": "line",
            "width": "12",
            "height": "1",
            "candle_seconds": "60",
            "panel_streams": [streams["latency"].pk, streams["secret"].pk, streams["weather"].pk],
        },
    )
    form.instance.dashboard = ops
    assert form.is_valid(), form.errors
    form.save()
    assert [s.slug for s in panel.ordered_streams()] == ["secret-vault", "latency", "weather"]


def test_admin_lists_dashboards_with_a_link_to_view_each(admin_client: Client, ops):
    html = admin_client.get(reverse("admin:streams_dashboard_changelist")).content.decode()
    assert 'href="/dashboards/ops/">View dashboard</a>' in html


def test_a_panel_formats_values_with_its_decimals_else_its_first_streams(streams):
    streams["market"].decimals = 3
    own = figures.panel_figure_json(Panel(chart_type="line", decimals=1), [streams["market"]])
    inherited = figures.panel_figure_json(Panel(chart_type="line"), [streams["market"]])
    gauge = figures.panel_figure_json(Panel(chart_type="gauge", series="ACME"), [streams["market"]])
    assert own["layout"]["yaxis"]["tickformat"] == ",.1f"
    assert inherited["layout"]["yaxis"]["hoverformat"] == ",.3f"
    assert gauge["data"][0]["number"]["valueformat"] == ",.3f"
    assert gauge["data"][0]["delta"]["valueformat"] == ",.3f"

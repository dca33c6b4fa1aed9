"""Dashboards as code: the `dashboards:` list of a provision file, beside `streams:`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import Group, User
from django.core.management import CommandError

from streams.access import rules as access
from streams.config.provisioning import load_file, provision
from streams.models import Dashboard, Panel, Stream
from streams.web.dashboards import panels_of
from tests.config.test_provisioning import refused, run

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DEMO_FILE = ROOT / "demo" / "streams.yaml"


def stream(slug: str, **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "slug": slug,
        "title": slug.title(),
        "feed": {"kind": "simulate", "series": ["a", "b"]},
        "visibility": "signed_in",
    }
    value.update(overrides)
    return value


def dashboard(slug: str = "ops", **overrides: Any) -> dict[str, Any]:
    """A valid dashboard entry over streams "cpu" and "prices"."""
    value: dict[str, Any] = {
        "slug": slug,
        "title": "Operations",
        "panels": [
            {"title": "CPU", "type": "area", "streams": ["cpu"], "width": 8, "height": 2},
            {"type": "candlestick", "streams": ["prices"], "series": "a", "candle_seconds": 30, "width": 4},
        ],
    }
    value.update(overrides)
    return value


@pytest.fixture
def base() -> None:
    provision({"streams": [stream("cpu"), stream("prices"), stream("memory")]})


def snapshot() -> list[tuple]:
    """Every dashboard, panel and panel stream row, to show a run changed nothing."""
    return [
        (
            *Dashboard.objects.filter(pk=board.pk).values_list().get(),
            sorted(board.viewers.values_list("username", flat=True)),
            sorted(board.viewer_groups.values_list("name", flat=True)),
            [
                (
                    *Panel.objects.filter(pk=panel.pk).values_list().get(),
                    [s.slug for s in panel.ordered_streams()],
                )
                for panel in board.panels.all()
            ],
        )
        for board in Dashboard.objects.order_by("slug")
    ]


# Creating, updating, re-running


def test_a_dashboard_is_created_with_its_panels_in_order(base, alice, operators):
    report = provision(
        {
            "dashboards": [
                dashboard(
                    description="The floor",
                    visibility="restricted",
                    viewers=["alice"],
                    groups=["operators"],
                    columns=16,
                )
            ]
        }
    )
    assert report.dashboards_created == ["ops"]
    assert report.created == []  # streams untouched
    board = Dashboard.objects.get(slug="ops")
    assert (board.title, board.description, board.visibility, board.columns) == (
        "Operations",
        "The floor",
        "restricted",
        16,
    )
    assert list(board.viewers.values_list("username", flat=True)) == ["alice"]
    assert list(board.viewer_groups.values_list("name", flat=True)) == ["operators"]
    area, candles = board.panels.all()
    assert (area.position, area.title, area.chart_type, area.width, area.height) == (0, "CPU", "area", 8, 2)
    assert [s.slug for s in area.ordered_streams()] == ["cpu"]
    assert (candles.chart_type, candles.series, candles.candle_seconds, candles.width) == (
        "candlestick",
        "a",
        30,
        4,
    )


def test_streams_and_dashboards_in_one_file_panels_naming_new_streams(db):
    report = provision({"streams": [stream("cpu"), stream("prices")], "dashboards": [dashboard()]})
    assert report.created == ["cpu", "prices"]
    assert report.dashboards_created == ["ops"]
    assert Dashboard.objects.get().panels.count() == 2


def test_keys_left_out_take_their_defaults(base):
    provision({"dashboards": [{"slug": "tiny", "title": "Tiny", "panels": [{"streams": ["cpu"]}]}]})
    board = Dashboard.objects.get(slug="tiny")
    assert (board.visibility, board.columns, board.description) == ("signed_in", 12, "")
    panel = board.panels.get()
    assert (panel.chart_type, panel.width, panel.height, panel.candle_seconds, panel.gauge_min) == (
        "line",
        6,
        1,
        60,
        None,
    )


def test_a_panel_on_a_narrow_grid_defaults_to_the_whole_width(base):
    provision({"dashboards": [{"slug": "n", "title": "N", "columns": 4, "panels": [{"streams": ["cpu"]}]}]})
    assert Panel.objects.get().width == 4


def test_rerunning_the_same_file_changes_nothing_and_says_unchanged(base, alice):
    data = {"dashboards": [dashboard(viewers=["alice"], groups=["ops-team"])]}
    provision(data)
    before = snapshot()
    report = provision(data)
    assert report.dashboards_unchanged == ["ops"]
    assert (report.dashboards_created, report.dashboards_updated) == ([], [])
    assert snapshot() == before  # same rows, same ids, same `updated`


def test_a_changed_panel_replaces_the_panels_as_a_whole(base):
    provision({"dashboards": [dashboard()]})
    old_ids = set(Panel.objects.values_list("pk", flat=True))
    changed = dashboard()
    changed["panels"][1]["candle_seconds"] = 60
    changed["panels"].append({"type": "gauge", "streams": ["memory"], "series": "b", "min": 0, "max": 1.5})
    report = provision({"dashboards": [changed]})
    assert report.dashboards_updated == ["ops"]
    panels = list(Dashboard.objects.get().panels.all())
    assert [p.chart_type for p in panels] == ["area", "candlestick", "gauge"]
    assert panels[1].candle_seconds == 60
    assert (panels[2].gauge_min, panels[2].gauge_max) == (0, 1.5)
    assert not old_ids & {p.pk for p in panels}


def test_reordering_streams_on_a_panel_is_a_change(base):
    provision({"dashboards": [{"slug": "o", "title": "O", "panels": [{"streams": ["cpu", "memory"]}]}]})
    report = provision(
        {"dashboards": [{"slug": "o", "title": "O", "panels": [{"streams": ["memory", "cpu"]}]}]}
    )
    assert report.dashboards_updated == ["o"]
    assert [s.slug for s in Panel.objects.get().ordered_streams()] == ["memory", "cpu"]


def test_changing_only_the_viewers_updates_without_touching_the_panels(base, alice, bob):
    provision({"dashboards": [dashboard(viewers=["alice"])]})
    ids = list(Panel.objects.values_list("pk", flat=True))
    report = provision({"dashboards": [dashboard(viewers=["bob"])]})
    assert report.dashboards_updated == ["ops"]
    assert list(Panel.objects.values_list("pk", flat=True)) == ids
    assert list(Dashboard.objects.get().viewers.values_list("username", flat=True)) == ["bob"]


def test_dashboards_not_in_the_file_are_left_alone(base):
    provision({"dashboards": [dashboard("one"), dashboard("two")]})
    provision({"dashboards": [dashboard("one", title="Renamed")]})
    assert set(Dashboard.objects.values_list("slug", flat=True)) == {"one", "two"}


def test_a_dashboard_made_in_admin_is_taken_over_by_slug(base):
    Dashboard.objects.create(slug="ops", title="Made by hand", columns=24)
    report = provision({"dashboards": [dashboard()]})
    assert report.dashboards_updated == ["ops"]
    assert Dashboard.objects.get().columns == 12


# Refused files


def test_an_unknown_stream_is_refused_naming_the_panel(base):
    data = dashboard()
    data["panels"][0]["streams"] = ["cpu", "nope"]
    assert refused({"dashboards": [data]}) == [
        'dashboard "ops": panels[0] ("CPU"): streams: no such stream "nope"'
    ]
    assert not Dashboard.objects.exists()


def test_a_panel_without_a_title_is_named_by_its_index(base):
    data = dashboard()
    data["panels"][1]["streams"] = ["ghost"]
    assert refused({"dashboards": [data]}) == ['dashboard "ops": panels[1]: streams: no such stream "ghost"']


def test_a_candlestick_on_a_stream_of_several_series_must_name_one(base):
    data = dashboard()
    del data["panels"][1]["series"]
    assert refused({"dashboards": [data]}) == [
        'dashboard "ops": panels[1]: series: Stream “prices” has 2 series (a, b): name the one to show.'
    ]


@pytest.mark.parametrize(
    ("panel", "expected"),
    [
        (
            {"streams": ["cpu"], "type": "pie"},
            "type: must be one of line, area, scatter, bar, gauge, candlestick",
        ),
        ({"streams": ["cpu"], "width": 13}, "width: At most the dashboard's 12 columns, not 13."),
        ({"streams": ["cpu"], "width": "wide"}, "width: must be a whole number, not 'wide'"),
        ({"streams": ["cpu"], "height": 9}, "height: Ensure this value is less than or equal to 4."),
        ({"streams": ["cpu"], "type": "gauge", "series": "a", "min": 1}, "max: Set both gauge min and max"),
        ({"streams": ["cpu"], "type": "gauge", "series": "a", "min": "0", "max": 1}, "min: must be a number"),
        ({"streams": ["cpu", "prices"], "type": "gauge", "series": "a"}, "choose exactly one stream, not 2"),
        ({"streams": ["cpu"], "series": "zzz"}, "series: No series “zzz” on every stream"),
        ({"streams": []}, "streams: Choose at least one stream."),
        ({}, "streams: missing"),
        ({"streams": "cpu"}, "streams: must be a list of stream slugs"),
        ({"streams": ["cpu", "cpu"]}, "streams: a stream is listed twice"),
        ({"streams": ["cpu"], "colour": "red"}, 'unknown key "colour"'),
        (
            {"streams": ["cpu"], "candle_seconds": 0},
            "candle_seconds: Ensure this value is greater than or equal",
        ),
        ("cpu", "panels[0]: must be an object"),
    ],
)
def test_bad_panels_are_refused_saying_what_is_wrong(base, panel, expected):
    errors = refused({"dashboards": [{"slug": "d", "title": "D", "panels": [panel]}]})
    assert len(errors) == 1, errors
    assert errors[0].startswith('dashboard "d": panels[0]')
    assert expected in errors[0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"visibility": "everyone"}, "visibility: must be one of public, signed_in, restricted"),
        ({"columns": 0}, "columns: Ensure this value is greater than or equal to 1."),
        ({"viewers": ["zed"]}, 'viewers: no such user "zed"'),
        ({"panels": {"streams": ["cpu"]}}, "panels: must be a list of panels"),
        ({"slug": "not a slug"}, "slug: Enter a valid “slug”"),
        ({"layout": "grid"}, 'unknown key "layout" (known: slug, title, description, visibility, viewers'),
    ],
)
def test_bad_dashboards_are_refused_saying_what_is_wrong(base, overrides, expected):
    errors = refused({"dashboards": [dashboard(**overrides)]})
    assert any(expected in error for error in errors), errors


def test_a_panel_sets_its_decimals_and_area_fill_and_a_change_of_them_is_a_change(base):
    panel = {"title": "Load", "type": "area", "streams": ["cpu"], "decimals": 2, "area_fill": "zero"}
    provision({"dashboards": [dashboard(panels=[panel])]})
    stored = Panel.objects.get(dashboard__slug="ops")
    assert (stored.decimals, stored.area_fill) == (2, "zero")
    assert provision({"dashboards": [dashboard(panels=[panel])]}).dashboards_unchanged == ["ops"]
    report = provision({"dashboards": [dashboard(panels=[{**panel, "decimals": None}])]})
    assert report.dashboards_updated == ["ops"]
    assert Panel.objects.get(dashboard__slug="ops").decimals is None


@pytest.mark.parametrize(
    ("panel", "expected"),
    [
        ({"decimals": 99}, "panels[0]: decimals: Ensure this value is less than or equal to 10."),
        ({"decimals": "two"}, "panels[0]: decimals: must be a whole number or null, not 'two'"),
        ({"area_fill": "down"}, "panels[0]: area_fill: "),
    ],
)
def test_bad_decimals_or_area_fill_on_a_panel_are_refused(base, panel, expected):
    errors = refused({"dashboards": [dashboard(panels=[{"streams": ["cpu"], **panel}])]})
    assert len(errors) == 1 and expected in errors[0], errors


def test_unknown_panel_key_is_refused_listing_the_known_ones(base):
    errors = refused(
        {"dashboards": [{"slug": "d", "title": "D", "panels": [{"streams": ["cpu"], "colour": 1}]}]}
    )
    assert errors == [
        'dashboard "d": panels[0]: unknown key "colour" (known: title, type, streams, series, width, height, '
        "candle_seconds, min, max, decimals, area_fill)"
    ]


def test_the_same_dashboard_slug_twice_is_refused(base):
    errors = refused({"dashboards": [dashboard(), dashboard()]})
    assert errors == ['dashboard "ops": slug: used twice in this file (dashboards[0] and [1])']


def test_a_dashboard_without_a_slug_is_named_by_its_index(base):
    assert refused({"dashboards": [{"title": "X", "panels": []}]}) == ["dashboards[0]: slug: missing"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"dashboards": "ops"}, '"dashboards" must be a list of dashboards'),
        ({"dashboard": []}, 'unknown top-level key "dashboard" (known: streams, dashboards)'),
        ({"dashboards": [7]}, "dashboards[0]: must be an object"),
    ],
)
def test_badly_shaped_dashboard_sections_are_refused(data, expected):
    assert expected in refused(data)[0]


def test_every_error_of_streams_and_dashboards_is_reported_and_nothing_changes(base):
    before_streams = list(Stream.objects.values_list())
    data = {
        "streams": [stream("cpu", title="Changed"), stream("broken", feed={"kind": "simulate", "rate": 0})],
        "dashboards": [
            dashboard(),
            {
                "slug": "bad",
                "title": "Bad",
                "panels": [{"streams": ["nope"]}, {"streams": ["broken"], "type": "pie"}],
            },
        ],
    }
    errors = refused(data)
    assert errors == [
        'stream "broken": feed.rate: must be at least 1, not 0',
        'dashboard "bad": panels[0]: streams: no such stream "nope"',
        # The refused stream of the same file is not reported again as unknown.
        'dashboard "bad": panels[1]: type: must be one of line, area, scatter, bar, gauge, candlestick, '
        "not 'pie'",
    ]
    assert list(Stream.objects.values_list()) == before_streams
    assert not Dashboard.objects.exists()


def test_a_file_with_a_bad_dashboard_creates_none_of_its_groups(base):
    refused({"dashboards": [dashboard(groups=["fresh"]), dashboard("bad", columns="wide")]})
    assert not Group.objects.filter(name="fresh").exists()


def test_dry_run_reports_and_writes_nothing(base):
    report = provision({"dashboards": [dashboard()]}, dry_run=True)
    assert report.dashboards_created == ["ops"]
    assert not Dashboard.objects.exists()


# The command and the demo


def test_provision_command_reports_dashboards_beside_streams(tmp_path, base):
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump({"dashboards": [dashboard()]}), encoding="utf-8")
    output = run("provision", str(path))
    assert "created dashboard ops" in output
    assert "Dashboards: created 1, updated 0, unchanged 0" in output
    assert "Dashboards: created 0, updated 0, unchanged 1" in run("provision", str(path))


def test_provision_command_names_the_panel_of_an_unknown_stream(tmp_path, base):
    path = tmp_path / "board.yaml"
    data = dashboard()
    data["panels"][0]["streams"] = ["gone"]
    path.write_text(yaml.safe_dump({"dashboards": [data]}), encoding="utf-8")
    with pytest.raises(CommandError) as caught:
        run("provision", str(path))
    assert (
        '1 error, nothing changed:\n  dashboard "ops": panels[0] ("CPU"): streams: no such stream "gone"'
        in str(caught.value)
    )


def test_the_demo_dashboard_shows_every_chart_type(settings):
    data = load_file(DEMO_FILE)
    types = {panel.get("type", "line") for board in data["dashboards"] for panel in board["panels"]}
    assert types == {"line", "area", "scatter", "bar", "gauge", "candlestick"}
    report = provision(data, dry_run=True)
    assert report.dashboards_created == ["operations"]


def test_the_demo_login_sees_the_operators_panel_but_not_the_staff_one(settings):
    settings.DEBUG = True
    output = run("demo")
    assert "Dashboards: created 1, updated 0, unchanged 0" in output
    board = Dashboard.objects.get(slug="operations")
    demo, admin = User.objects.get(username="demo"), User.objects.get(username="admin")

    def shown(user) -> list[str]:
        return [panel.display_title() for panel in access.visible_panels(user, panels_of(board))[0]]

    assert "Factory temperatures (operators)" in shown(demo)
    assert "Payment queue (staff only)" not in shown(demo)
    assert len(shown(admin)) == board.panels.count()
    assert "Dashboards: created 0, updated 0, unchanged 1" in run("demo")


def test_every_dashboard_example_in_the_readme_is_valid(alice):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", readme, re.S)]
    # The examples use the README's own streams and the demo's `market`.
    provision({"streams": load_file(DEMO_FILE)["streams"]})
    for data in blocks:
        if "streams" in data:
            provision({"streams": data["streams"]})
    boards = [data for data in blocks if "dashboards" in data]
    assert boards, "README.md has no dashboard example"
    for data in boards:
        provision(data, dry_run=True)

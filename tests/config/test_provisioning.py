"""Streams as code: `manage.py provision FILE` and the demo command built on it."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command

from streams.access.rules import can_view
from streams.config.demo import DEMO_LOGINS
from streams.config.provisioning import ProvisionError, load_file, provision
from streams.models import Stream

pytestmark = pytest.mark.django_db

DEMO_FILE = Path(__file__).resolve().parents[2] / "demo" / "streams.yaml"


def entry(slug: str = "line-1", **overrides: Any) -> dict[str, Any]:
    """A valid stream entry; keyword arguments replace its keys."""
    value: dict[str, Any] = {
        "slug": slug,
        "title": f"Stream {slug}",
        "feed": {"kind": "simulate", "rate": 5, "series": ["a", "b"]},
        "chart": {"type": "area", "window_points": 300, "window_seconds": 60, "y_title": "Load", "unit": "%"},
        "visibility": "public",
    }
    value.update(overrides)
    return value


def refused(data: Any) -> list[str]:
    with pytest.raises(ProvisionError) as caught:
        provision(data)
    return caught.value.errors


def snapshot() -> list[tuple]:
    """Every stream row with its access lists, to show a run changed nothing."""
    return [
        (
            *Stream.objects.filter(pk=stream.pk).values_list().get(),
            sorted(stream.viewers.values_list("username", flat=True)),
            sorted(stream.viewer_groups.values_list("name", flat=True)),
        )
        for stream in Stream.objects.order_by("slug")
    ]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# Creating, updating, re-running


def test_provision_creates_a_stream_with_every_key_applied():
    report = provision({"streams": [entry(description="CPU", enabled=False)]})
    assert report.created == ["line-1"]
    stream = Stream.objects.get(slug="line-1")
    assert stream.title == "Stream line-1"
    assert stream.description == "CPU"
    assert stream.enabled is False
    assert stream.feed_kind == "simulate"
    assert stream.feed_settings["rate"] == 5
    assert stream.series_names == ["a", "b"]
    assert (stream.chart_type, stream.window_points, stream.window_seconds) == ("area", 300, 60)
    assert (stream.y_title, stream.y_unit) == ("Load", "%")
    assert stream.visibility == Stream.Visibility.PUBLIC


def test_chart_decimals_and_area_fill_are_set_and_go_back_to_their_defaults():
    chart = {"type": "area", "decimals": 1, "area_fill": "next"}
    provision([entry(chart=chart)])
    stream = Stream.objects.get(slug="line-1")
    assert (stream.decimals, stream.area_fill) == (1, "next")
    assert provision([entry(chart=chart)]).unchanged == ["line-1"]
    provision([entry(chart={"type": "area"})])
    stream.refresh_from_db()
    assert (stream.decimals, stream.area_fill) == (None, "")


@pytest.mark.parametrize(
    ("chart", "expected"),
    [
        ({"decimals": 99}, "chart.decimals: "),
        ({"decimals": 1.5}, "chart.decimals: must be a whole number or null"),
        ({"area_fill": "down"}, "chart.area_fill: "),
    ],
)
def test_bad_chart_decimals_or_area_fill_are_refused_naming_the_key(chart, expected):
    errors = refused([entry(chart=chart)])
    assert len(errors) == 1 and expected in errors[0], errors


def test_a_bare_list_is_accepted():
    assert provision([entry("a"), entry("b")]).created == ["a", "b"]


def test_feed_kind_alone_is_a_valid_stream_with_every_default():
    provision([{"slug": "bare", "title": "Bare", "feed": {"kind": "simulate"}}])
    stream = Stream.objects.get(slug="bare")
    assert stream.feed_settings["rate"] == 10
    assert stream.series_names == ["value"]
    assert stream.chart_type == "line"
    assert stream.window_points == 1000
    assert stream.visibility == Stream.Visibility.SIGNED_IN


def test_provision_updates_a_changed_stream():
    provision([entry()])
    changed = entry(title="Renamed", chart={"type": "bar", "window_seconds": 10, "window_points": None})
    report = provision([changed])
    assert (report.created, report.updated, report.unchanged) == ([], ["line-1"], [])
    stream = Stream.objects.get(slug="line-1")
    assert (stream.title, stream.chart_type, stream.window_points, stream.window_seconds) == (
        "Renamed",
        "bar",
        None,
        10,
    )


def test_keys_left_out_go_back_to_their_defaults():
    provision([entry(description="Set once")])
    provision([{key: value for key, value in entry().items() if key != "chart"}])
    stream = Stream.objects.get(slug="line-1")
    assert stream.description == ""
    assert (stream.chart_type, stream.window_points, stream.window_seconds) == ("line", 1000, None)


def test_rerunning_the_same_file_changes_nothing(alice, operators):
    data = {"streams": [entry("a", viewers=["alice"], groups=["operators"]), entry("b")]}
    provision(data)
    before = snapshot()
    report = provision(data)
    assert (report.created, report.updated, report.unchanged) == ([], [], ["a", "b"])
    assert report.summary() == "created 0, updated 0, unchanged 2"
    # `updated` (auto_now) would move on any save: the rows were not written at all.
    assert snapshot() == before


def test_streams_not_in_the_file_are_left_alone():
    provision([entry("keep"), entry("other")])
    provision([entry("other", title="Changed")])
    assert Stream.objects.get(slug="keep").title == "Stream keep"


def test_stream_made_in_admin_is_taken_over_by_slug():
    Stream.objects.create(slug="line-1", title="By hand", feed_settings={})
    report = provision([entry()])
    assert report.updated == ["line-1"]
    assert Stream.objects.count() == 1


# Access lists


def test_viewers_and_groups_are_set_and_replaced(alice, bob, operators):
    provision([entry(visibility="restricted", viewers=["alice", "bob"], groups=["operators"])])
    stream = Stream.objects.get(slug="line-1")
    assert set(stream.viewers.values_list("username", flat=True)) == {"alice", "bob"}
    assert list(stream.viewer_groups.all()) == [operators]

    report = provision([entry(visibility="restricted", viewers=["bob"])])
    assert report.updated == ["line-1"]
    assert list(stream.viewers.values_list("username", flat=True)) == ["bob"]
    assert not stream.viewer_groups.exists()
    assert can_view(bob, stream)
    assert not can_view(alice, stream)


def test_changing_only_the_viewers_counts_as_an_update(alice, bob):
    provision([entry(visibility="restricted", viewers=["alice"])])
    first = Stream.objects.get(slug="line-1").updated
    report = provision([entry(visibility="restricted", viewers=["alice", "bob"])])
    assert report.updated == ["line-1"]
    assert Stream.objects.get(slug="line-1").updated > first


def test_unknown_groups_are_created_and_reported():
    report = provision([entry(visibility="restricted", groups=["night-shift"])])
    assert report.groups_created == ["night-shift"]
    group = Group.objects.get(name="night-shift")
    assert list(Stream.objects.get(slug="line-1").viewer_groups.all()) == [group]
    assert provision([entry(visibility="restricted", groups=["night-shift"])]).groups_created == []


def test_unknown_username_is_refused_naming_it_and_no_user_is_created(alice):
    errors = refused([entry(viewers=["alice", "zed", "quux"])])
    assert errors == ['stream "line-1": viewers: no such user "zed", "quux"']
    assert not User.objects.filter(username__in=["zed", "quux"]).exists()
    assert not Stream.objects.exists()


# Refusals name the stream and the key


def test_unknown_key_is_refused_naming_stream_and_key():
    errors = refused([entry("x", colour="red")])
    assert len(errors) == 1
    assert errors[0].startswith('stream "x": unknown key "colour"')


def test_unknown_chart_key_is_refused_with_its_path():
    errors = refused([entry("x", chart={"type": "line", "colour": "red"})])
    assert errors[0].startswith('stream "x": unknown key "chart.colour"')


def test_unknown_keys_are_refused_listing_the_known_ones():
    errors = refused([entry("x", colour="red", chart={"colour": "red"}, storage={"days": 3})])
    assert errors == [
        'stream "x": unknown key "colour" (known: slug, title, description, enabled, feed, chart, storage, '
        "visibility, viewers, groups)",
        'stream "x": unknown key "chart.colour" (known: type, window_points, window_seconds, y_title, unit, '
        "decimals, area_fill)",
        'stream "x": unknown key "storage.days" (known: store, keep_seconds, keep_points)',
    ]


def test_bad_feed_setting_is_refused_naming_stream_and_key():
    errors = refused([entry(feed={"kind": "simulate", "rate": 5000})])
    assert errors == ['stream "line-1": feed.rate: must be at most 1000, not 5000']


def test_unknown_feed_setting_and_kind_are_refused_naming_the_key():
    errors = refused([entry("a", feed={"kind": "simulate", "colour": 1}), entry("b", feed={"kind": "fax"})])
    assert errors[0].startswith('stream "a": feed.colour: unknown setting')
    assert errors[1].startswith("stream \"b\": feed.kind: unknown feed kind 'fax' (known: ")
    assert "simulate" in errors[1]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"visibility": "secret"}, "visibility: must be one of public, signed_in, restricted, not 'secret'"),
        ({"chart": {"type": "pie"}}, "chart.type: must be one of line, scatter, bar, area, not 'pie'"),
        ({"chart": {"window_points": 0}}, "chart.window_points: "),
        ({"chart": {"window_points": None}}, "chart.window_points: Set a window"),
        ({"chart": {"window_seconds": "1m"}}, "chart.window_seconds: must be a whole number or null"),
        ({"title": 2024}, "title: must be a string, not 2024"),
        ({"title": ""}, "title: "),
        ({"enabled": "sometimes"}, "enabled: must be true or false"),
        ({"feed": "simulate"}, "feed: must be an object"),
        ({"feed": {"rate": 5}}, "feed.kind: missing"),
        ({"viewers": "alice"}, "viewers: must be a list of names"),
        ({"groups": ["x" * 151]}, "groups: names are at most 150 characters"),
        ({"slug": "Not a slug!"}, "slug: "),
    ],
)
def test_bad_value_is_refused_naming_stream_and_key(overrides, expected):
    errors = refused([entry(**overrides)])
    slug = overrides.get("slug", "line-1")
    assert len(errors) == 1, errors
    assert errors[0].startswith(f'stream "{slug}": {expected}')


def test_yaml_number_keys_in_feed_settings_are_refused_naming_them():
    errors = refused([entry(feed={"kind": "simulate", "series": [{"name": "a", 5: 1}]})])
    assert errors == ['stream "line-1": feed.series[0].5: setting names must be text']


def test_stream_without_a_slug_is_named_by_its_index():
    errors = refused([entry("a"), {"title": "Anonymous", "feed": {"kind": "simulate"}}])
    assert errors == ["streams[1]: slug: missing"]


def test_the_same_slug_twice_is_refused():
    errors = refused([entry("a"), entry("a")])
    assert errors == ['stream "a": slug: used twice in this file (streams[0] and [1])']


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"stream": []}, 'unknown top-level key "stream"'),
        ({}, 'top-level "streams"'),
        ({"streams": {"slug": "a"}}, '"streams" must be a list'),
        ("streams", '"streams" must be a list'),
        ([7], "streams[0]: must be an object"),
    ],
)
def test_badly_shaped_files_are_refused(data, expected):
    assert expected in refused(data)[0]


def test_every_error_in_the_file_is_reported_not_just_the_first():
    errors = refused(
        [
            entry("a", colour="red", feed={"kind": "simulate", "rate": 0}),
            entry("b"),
            entry("c", visibility="everyone"),
        ]
    )
    assert len(errors) == 3
    assert errors[0].startswith('stream "a": unknown key "colour"')
    assert errors[1].startswith('stream "a": feed.rate: must be at least 1')
    assert errors[2].startswith('stream "c": visibility: ')


def test_a_file_with_one_good_and_one_bad_stream_changes_nothing():
    provision([entry("existing")])
    before = snapshot()
    errors = refused(
        [
            entry("existing", title="Changed"),
            entry("new"),
            entry("bad", feed={"kind": "simulate", "rate": -1}),
        ]
    )
    assert len(errors) == 1
    assert snapshot() == before
    assert not Group.objects.exists()


def test_a_file_with_a_bad_stream_creates_none_of_its_groups():
    refused([entry("good", groups=["fresh"]), entry("bad", colour="red")])
    assert not Group.objects.filter(name="fresh").exists()


def test_dry_run_reports_and_writes_nothing():
    report = provision([entry()], dry_run=True)
    assert report.created == ["line-1"]
    assert not Stream.objects.exists()


# Files


def test_yaml_file_is_loaded_and_provisioned(tmp_path):
    path = tmp_path / "streams.yaml"
    path.write_text(yaml.safe_dump({"streams": [entry()]}), encoding="utf-8")
    assert provision(load_file(path)).created == ["line-1"]


def test_json_file_is_loaded_and_provisioned(tmp_path):
    path = tmp_path / "streams.json"
    path.write_text(json.dumps([entry()]), encoding="utf-8")
    assert provision(load_file(path)).created == ["line-1"]


@pytest.mark.parametrize("dump", [json.dumps, yaml.safe_dump])
def test_a_file_without_a_known_extension_is_read_by_its_content(tmp_path, dump):
    path = tmp_path / "streams.conf"
    path.write_text(dump({"streams": [entry()]}), encoding="utf-8")
    assert load_file(path) == {"streams": [entry()]}


def test_yaml_written_by_hand_with_flow_style_and_comments_loads(tmp_path):
    path = tmp_path / "streams.yml"
    path.write_text(
        "# the ops wall\n"
        "streams:\n"
        "  - slug: pumps\n"
        "    title: Pumps\n"
        "    feed: {kind: simulate, rate: 20, series: [inlet, outlet]}\n"
        "    chart: {type: scatter, window_seconds: 120}\n",
        encoding="utf-8",
    )
    provision(load_file(path))
    stream = Stream.objects.get(slug="pumps")
    assert (stream.chart_type, stream.window_seconds, stream.series_names) == (
        "scatter",
        120,
        ["inlet", "outlet"],
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.json", "{nope", "not valid JSON"),
        ("bad.yaml", "streams: [unclosed", "not valid YAML"),
        ("empty.yaml", "", "the file is empty"),
    ],
)
def test_unreadable_files_are_refused_naming_the_problem(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProvisionError, match=expected):
        load_file(path)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ProvisionError, match="cannot read"):
        load_file(tmp_path / "nope.yaml")


# The command


def test_provision_command_reports_created_updated_and_unchanged(tmp_path):
    path = tmp_path / "streams.yaml"
    path.write_text(yaml.safe_dump([entry("a"), entry("b")]), encoding="utf-8")
    assert "created 2, updated 0, unchanged 0" in run("provision", str(path))
    path.write_text(yaml.safe_dump([entry("a"), entry("b", title="New title")]), encoding="utf-8")
    output = run("provision", str(path))
    assert "updated b" in output
    assert "created 0, updated 1, unchanged 1" in output


def test_provision_command_lists_every_error_and_changes_nothing(tmp_path):
    path = tmp_path / "streams.json"
    path.write_text(json.dumps([entry("a", colour=1), entry("b", feed={"kind": "simulate", "rate": 5000})]))
    with pytest.raises(CommandError) as caught:
        run("provision", str(path))
    message = str(caught.value)
    assert "2 errors, nothing changed" in message
    assert 'stream "a": unknown key "colour"' in message
    assert 'stream "b": feed.rate: must be at most 1000, not 5000' in message
    assert not Stream.objects.exists()


def test_provision_command_refuses_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run("provision", str(tmp_path / "nope.yaml"))


def test_provision_command_dry_run_writes_nothing(tmp_path):
    path = tmp_path / "streams.yaml"
    path.write_text(yaml.safe_dump([entry()]), encoding="utf-8")
    assert "dry run" in run("provision", str(path), "--dry-run")
    assert not Stream.objects.exists()


# The demo command


def test_demo_file_is_a_valid_provisioning_file_showing_every_chart_type():
    data = load_file(DEMO_FILE)
    report = provision(data, dry_run=True)
    assert len(report.created) >= 4
    assert {stream["chart"]["type"] for stream in data["streams"]} == {"line", "area", "scatter", "bar"}


def test_demo_runs_twice_and_the_second_run_changes_nothing(settings):
    settings.DEBUG = True
    count = len(load_file(DEMO_FILE)["streams"])
    first = run("demo")
    assert f"created {count}, updated 0, unchanged 0" in first
    before = snapshot()
    users = list(User.objects.order_by("username").values_list("username", "password", "is_staff"))
    second = run("demo")
    assert f"created 0, updated 0, unchanged {count}" in second
    assert snapshot() == before
    assert list(User.objects.order_by("username").values_list("username", "password", "is_staff")) == users


def test_demo_logins_work_and_show_the_three_levels_of_access(settings):
    settings.DEBUG = True
    output = run("demo")
    for username, password, _ in DEMO_LOGINS:
        assert authenticate(username=username, password=password) is not None
        assert f"{username} / {password}" in output
    demo = User.objects.get(username="demo")
    admin = User.objects.get(username="admin")
    assert not demo.is_staff and not demo.is_superuser
    assert list(demo.groups.values_list("name", flat=True)) == ["operators"]
    assert admin.is_staff and admin.is_superuser

    visible_to_demo = set(Stream.objects.visible_to(demo).values_list("slug", flat=True))
    everything = set(Stream.objects.values_list("slug", flat=True))
    assert "factory-sensors" in visible_to_demo  # restricted, through the operators group
    assert everything - visible_to_demo == {"payment-queue"}  # restricted to nobody: staff only
    assert set(Stream.objects.visible_to(admin).values_list("slug", flat=True)) == everything
    assert set(Stream.objects.visible_to(None).values_list("slug", flat=True)) == {"public-sine"}


def test_demo_repairs_a_changed_demo_password(settings):
    settings.DEBUG = True
    run("demo")
    demo = User.objects.get(username="demo")
    demo.set_password("something-else")
    demo.save()
    run("demo")
    passwords = {username: password for username, password, _ in DEMO_LOGINS}
    assert authenticate(username="demo", password=passwords["demo"]) is not None


def test_demo_refuses_to_run_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="known passwords"):
        run("demo")
    assert not User.objects.exists()
    assert not Stream.objects.exists()


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "feeds.yaml"


def test_the_examples_file_holds_one_valid_stream_per_feed_kind():
    from streams.ingest.feeds import FEED_KINDS

    result = provision(load_file(EXAMPLES))
    kinds = set(Stream.objects.filter(slug__in=result.created).values_list("feed_kind", flat=True))
    assert kinds == set(FEED_KINDS)


DOCS_WITH_EXAMPLES = [
    EXAMPLES.parent.parent / "README.md",
    *sorted((EXAMPLES.parent.parent / "docs" / "feeds").glob("*.md")),
]


@pytest.mark.parametrize("doc", DOCS_WITH_EXAMPLES, ids=lambda p: p.stem)
def test_every_provision_example_in_the_readme_and_feed_docs_is_valid(doc, alice):
    blocks = re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    whole = [yaml.safe_load(block) for block in blocks if block.lstrip().startswith("streams:")]
    assert whole, f"{doc.name} has no provision example"
    for data in whole:
        provision(data, dry_run=True)

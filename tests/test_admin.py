"""Stream admin: operators configure streams there, and bad feed settings are refused by name."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from streams.models import Stream

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:streams_stream_add")
LIST_URL = reverse("admin:streams_stream_changelist")


def form(**overrides: Any) -> dict[str, Any]:
    """The add form as a browser posts it."""
    data: dict[str, Any] = {
        "title": "Boiler",
        "slug": "boiler",
        "description": "",
        "enabled": "on",
        "feed_kind": "simulate",
        "feed_settings": json.dumps({"rate": 20, "series": ["inlet", "outlet"]}),
        "chart_type": "line",
        "window_points": "1000",
        "window_seconds": "",
        "y_title": "Temperature",
        "y_unit": "°C",
        "visibility": "restricted",
        "_save": "Save",
    }
    data.update(overrides)
    return data


@pytest.fixture
def streams() -> list[Stream]:
    return [
        Stream.objects.create(slug="public-sine", title="Public sine", visibility="public"),
        Stream.objects.create(slug="hidden", title="Hidden away", visibility="restricted", enabled=False),
    ]


def test_changelist_shows_every_stream_to_staff_even_disabled_and_restricted(admin_client: Client, streams):
    response = admin_client.get(LIST_URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Public sine" in body
    assert "Hidden away" in body


def test_changelist_search_finds_by_slug(admin_client: Client, streams):
    body = admin_client.get(LIST_URL, {"q": "hidden"}).content.decode()
    assert "Hidden away" in body
    assert "Public sine" not in body


def test_add_form_shows_the_sections_and_a_roomy_json_box(admin_client: Client):
    body = admin_client.get(ADD_URL).content.decode()
    headings = re.findall(r'<h2[^>]*class="fieldset-heading">([^<]*)</h2>', body)
    assert headings == ["Stream", "Feed", "Chart", "Access"]
    assert re.search(r'<textarea name="feed_settings"[^>]*rows="14"', body)
    # filter_horizontal: the two-box chooser, not a bare multi-select.
    assert re.search(r'<select name="viewers"[^>]*class="selectfilter"[^>]*data-is-stacked="0"', body)
    assert re.search(r'<select name="viewer_groups"[^>]*class="selectfilter"', body)


def test_change_form_also_shows_when_the_stream_was_created_and_updated(admin_client: Client, streams):
    body = admin_client.get(reverse("admin:streams_stream_change", args=[streams[0].pk])).content.decode()
    headings = re.findall(r'<h2[^>]*class="fieldset-heading">([^<]*)</h2>', body)
    assert headings == ["Stream", "Feed", "Chart", "Access", "History"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rate": 5000}, "rate: must be at most 1000, not 5000"),
        ({"colour": "red"}, "colour: unknown setting"),
        ({"series": ["a", "a"]}, "series[1].name: &#x27;a&#x27; is used twice"),
    ],
)
def test_add_form_refuses_bad_feed_settings_naming_the_field(admin_client: Client, settings, message):
    response = admin_client.post(ADD_URL, form(feed_settings=json.dumps(settings)))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Stream.objects.exists()


def test_add_form_refuses_settings_that_are_not_json(admin_client: Client):
    response = admin_client.post(ADD_URL, form(feed_settings="{rate: 5"))
    assert response.status_code == 200
    assert "Enter a valid JSON" in response.content.decode()
    assert not Stream.objects.exists()


def test_add_form_refuses_a_stream_without_a_window(admin_client: Client):
    response = admin_client.post(ADD_URL, form(window_points="", window_seconds=""))
    assert response.status_code == 200
    assert "Set a window in points, in seconds, or both." in response.content.decode()
    assert not Stream.objects.exists()


def test_good_post_creates_the_stream_with_the_feed_defaults_filled_in(
    admin_client: Client, alice, operators
):
    response = admin_client.post(ADD_URL, form(viewers=[alice.pk], viewer_groups=[operators.pk]))
    assert response.status_code == 302
    stream = Stream.objects.get(slug="boiler")
    assert stream.series_names == ["inlet", "outlet"]
    assert stream.feed_settings["rate"] == 20
    assert stream.feed_settings["shape"] == "sine"
    assert list(stream.viewers.all()) == [alice]
    assert list(stream.viewer_groups.all()) == [operators]


def test_empty_feed_settings_are_valid(admin_client: Client):
    response = admin_client.post(ADD_URL, form(feed_settings="{}"))
    assert response.status_code == 302
    assert Stream.objects.get(slug="boiler").series_names == ["value"]


def test_disable_action_turns_streams_off(admin_client: Client, streams):
    response = admin_client.post(
        LIST_URL, {"action": "disable_streams", "_selected_action": [stream.pk for stream in streams]}
    )
    assert response.status_code == 302
    assert not Stream.objects.filter(enabled=True).exists()


def test_staff_without_permissions_cannot_change_streams(client: Client, staff, streams):
    client.force_login(staff)
    assert client.get(LIST_URL).status_code == 403

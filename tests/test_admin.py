"""Stream admin: operators configure streams there, and bad feed settings are refused by name."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from streams.admin import duration_words
from streams.config.secrets import MASK
from streams.models import Stream
from tests.json_api import serve_json_api

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
        "store_points": "on",
        "keep_seconds": "2592000",
        "keep_points": "5000000",
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
    assert headings == ["Stream", "Feed", "Chart", "Stored points", "Access"]
    assert re.search(r'<textarea name="feed_settings"[^>]*rows="14"', body)
    assert '<div id="site-name"><a href="/admin/">LiveCharts administration</a></div>' in body
    assert '<link rel="icon" href="/favicon.ico"' in body
    # filter_horizontal: the two-box chooser, not a bare multi-select.
    assert re.search(r'<select name="viewers"[^>]*class="selectfilter"[^>]*data-is-stacked="0"', body)
    assert re.search(r'<select name="viewer_groups"[^>]*class="selectfilter"', body)


def test_change_form_also_shows_when_the_stream_was_created_and_updated(admin_client: Client, streams):
    body = admin_client.get(reverse("admin:streams_stream_change", args=[streams[0].pk])).content.decode()
    headings = re.findall(r'<h2[^>]*class="fieldset-heading">([^<]*)</h2>', body)
    assert headings == ["Stream", "Feed", "Chart", "Stored points", "Access", "History"]


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


def errors_of(page: str) -> list[str]:
    """Every error message a form page shows, field and form errors alike."""
    lists = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.S)
    return [html.unescape(item) for found in lists for item in re.findall(r"<li>(.*?)</li>", found, re.S)]


def test_settings_that_are_not_json_get_one_error_that_says_where(admin_client: Client):
    # A websocket stream: its check of `{}` would have added "url: ... not None" as a second error.
    response = admin_client.post(ADD_URL, form(feed_kind="websocket", feed_settings='{url: "wss://x"}'))
    assert response.status_code == 200
    assert errors_of(response.content.decode()) == [
        "Not valid JSON: expecting property name enclosed in double quotes at line 1, column 2."
    ]
    assert not Stream.objects.exists()


def test_a_required_setting_left_out_is_named_in_words_not_as_none(admin_client: Client):
    response = admin_client.post(ADD_URL, form(feed_kind="mqtt", feed_settings='{"topics": ["a/#"]}'))
    page = response.content.decode()
    assert errors_of(page) == [
        "host: required, and missing. The broker's host name or IP address (not a URL)."
    ]
    assert "None" not in "".join(errors_of(page))
    response = admin_client.post(ADD_URL, form(feed_settings='{"rate": null}'))
    assert errors_of(response.content.decode()) == ["rate: must be a number, not null"]


def test_settings_that_are_not_an_object_are_refused_in_words(admin_client: Client):
    response = admin_client.post(ADD_URL, form(feed_settings="[1, 2]"))
    assert errors_of(response.content.decode()) == ["settings must be a JSON object ({...}), not a list"]


def test_typed_settings_are_saved_as_typed_and_shown_back_pretty_printed(admin_client: Client):
    typed = {"series": [{"name": "inlet", "period": 30}, "outlet"], "rate": 20}
    response = admin_client.post(ADD_URL, form(feed_settings=json.dumps(typed)))
    assert response.status_code == 302
    stream = Stream.objects.get(slug="boiler")
    # No default filled in: what was typed is what is stored (the kind fills defaults when it runs).
    assert stream.feed_settings == typed
    assert stream.series_names == ["inlet", "outlet"]
    change = reverse("admin:streams_stream_change", args=[stream.pk])
    page = admin_client.get(change).content.decode()
    box = re.search(r'<textarea name="feed_settings"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    assert html.unescape(box).strip() == json.dumps(typed, indent=2)
    # Saved again unchanged: still as typed.
    assert admin_client.post(change, form(feed_settings=html.unescape(box))).status_code == 302
    stream.refresh_from_db()
    assert stream.feed_settings == typed


def test_settings_changed_outside_admin_are_shown_as_stored(admin_client: Client):
    assert admin_client.post(ADD_URL, form(feed_settings='{"series": ["a"], "rate": 20}')).status_code == 302
    # As `manage.py provision` would: the text kept from admin no longer reads as the settings.
    Stream.objects.filter(slug="boiler").update(feed_settings={"rate": 5})
    stream = Stream.objects.get(slug="boiler")
    page = admin_client.get(reverse("admin:streams_stream_change", args=[stream.pk])).content.decode()
    box = re.search(r'<textarea name="feed_settings"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    assert html.unescape(box).strip() == json.dumps({"rate": 5}, indent=2)


def test_empty_settings_box_saves_an_empty_object(admin_client: Client):
    assert admin_client.post(ADD_URL, form(feed_settings="  ")).status_code == 302
    assert Stream.objects.get(slug="boiler").feed_settings == {}


def test_the_settings_box_lists_the_chosen_kinds_keys_with_a_link_to_its_docs(admin_client: Client):
    page = admin_client.get(ADD_URL).content.decode()
    shown = re.findall(r'<section class="lc-kind-help" data-kind="(\w+)">', page)
    assert shown == ["simulate"]  # the others are rendered hidden, for the kind selector
    assert re.findall(r'data-kind="(\w+)" hidden', page) == ["websocket", "sse", "poll", "mqtt", "push"]
    assert "<code>rate</code></td><td>number</td><td>10</td><td>Points per second (1-1000).</td>" in page
    docs = reverse("admin:streams_stream_feed_docs", args=["mqtt"])
    assert f'href="{docs}"' in page
    doc = admin_client.get(docs)
    assert doc.status_code == 200 and "# The `mqtt` feed" in doc.content.decode()
    assert admin_client.get(reverse("admin:streams_stream_feed_docs", args=["nope"])).status_code == 404
    # A bound form with another kind shows that kind's keys.
    response = admin_client.post(ADD_URL, form(feed_kind="mqtt", feed_settings="{}"))
    assert re.findall(r'<section class="lc-kind-help" data-kind="(\w+)">', response.content.decode()) == [
        "mqtt"
    ]


def test_add_form_refuses_a_stream_without_a_window(admin_client: Client):
    response = admin_client.post(ADD_URL, form(window_points="", window_seconds=""))
    assert response.status_code == 200
    assert "Set a window in points, in seconds, or both." in response.content.decode()
    assert not Stream.objects.exists()


def test_good_post_creates_the_stream(admin_client: Client, alice, operators):
    response = admin_client.post(ADD_URL, form(viewers=[alice.pk], viewer_groups=[operators.pk]))
    assert response.status_code == 302
    stream = Stream.objects.get(slug="boiler")
    assert stream.series_names == ["inlet", "outlet"]
    assert stream.feed_settings == {"rate": 20, "series": ["inlet", "outlet"]}
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


# Secrets, health columns, "Test this feed" and push tokens.


def test_secrets_are_masked_in_the_change_form_and_kept_when_saved_unchanged(admin_client: Client):
    settings = {
        "url": "https://api.example/v1/price?api_key=q-789",
        "headers": {"X-Api-Key": "k-123"},
        "extract": {"value": "price"},
    }
    stream = Stream.objects.create(slug="priced", title="Priced", feed_kind="poll", feed_settings=settings)
    change_url = reverse("admin:streams_stream_change", args=[stream.pk])
    page = admin_client.get(change_url).content.decode()
    assert "k-123" not in page and "q-789" not in page and "••••••••" in page
    shown = re.search(r'<textarea name="feed_settings"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    shown = json.loads(shown.replace("&quot;", '"'))
    shown["interval"] = 30
    response = admin_client.post(
        change_url,
        form(
            slug="priced",
            title="Priced",
            feed_kind="poll",
            feed_settings=json.dumps(shown),
            visibility="public",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    stream.refresh_from_db()
    assert stream.feed_settings["headers"] == {"X-Api-Key": "k-123"}
    assert stream.feed_settings["url"].endswith("api_key=q-789")
    assert stream.feed_settings["interval"] == 30


def test_a_mask_where_no_secret_is_stored_is_refused_by_name(admin_client: Client):
    response = admin_client.post(
        ADD_URL,
        form(
            feed_kind="poll",
            feed_settings=json.dumps({"url": "http://x/", "headers": {"X-Api-Key": "••••••••"}}),
        ),
    )
    assert response.status_code == 200
    assert "headers.X-Api-Key: type the secret in" in response.content.decode()


def test_the_changelist_shows_each_stream_feed_health(admin_client: Client, memory_layer):
    import time

    from asgiref.sync import async_to_sync

    from streams.storage.window import get_history

    Stream.objects.create(slug="flaky", title="Flaky")
    status = {"state": "error", "points": 4321, "bad_payloads": 12, "reconnects": 5, "error": "HTTP 503"}
    async_to_sync(get_history().set_status)(
        "flaky", {**status, "last_point_at": time.time() - 120, "at": time.time()}
    )
    page = admin_client.get(LIST_URL).content.decode()
    row = page[page.index("Flaky") :]
    for shown in ("error", "4,321 · 12 · 5", "2 min ago", 'title="HTTP 503"'):
        assert shown in row, shown


def test_test_this_feed_shows_the_first_points_without_publishing(admin_client: Client, memory_layer):
    from asgiref.sync import async_to_sync

    from streams.core.retention import Retention
    from streams.storage.window import get_history

    stream = Stream.objects.create(slug="sim", title="Sim", feed_settings={"rate": 200, "series": ["x"]})
    change = admin_client.get(reverse("admin:streams_stream_change", args=[stream.pk])).content.decode()
    test_url = reverse("admin:streams_stream_test_feed", args=[stream.pk])
    assert test_url in change
    page = admin_client.get(test_url).content.decode()
    assert 'id="probe-ok"' in page and "the first 20 points" in page and "<th>x</th>" in page
    backfill = async_to_sync(get_history().read)("sim", after=None, retention=Retention(points=10))
    assert backfill.entries == []


def test_test_this_feed_shows_the_error_of_a_broken_feed(admin_client: Client):
    stream = Stream.objects.create(
        slug="broken",
        title="Broken",
        feed_kind="poll",
        feed_settings={"url": "http://127.0.0.1:9/", "timeout": 1},
    )
    page = admin_client.get(reverse("admin:streams_stream_test_feed", args=[stream.pk])).content.decode()
    assert 'id="probe-error"' in page and "127.0.0.1:9" in page


def test_a_push_token_is_shown_once_stored_hashed_and_revocable(admin_client: Client):
    from streams.models import PushToken

    pushed = Stream.objects.create(slug="pushed", title="Pushed", feed_kind="push")
    response = admin_client.post(
        reverse("admin:streams_pushtoken_add"),
        {"name": "gateway", "streams": [pushed.pk], "_save": "Save"},
        follow=True,
    )
    page = response.content.decode()
    token = re.search(r"\b(lc_[A-Za-z0-9_-]{30,})", page).group(1)
    row = PushToken.objects.get()
    assert row.digest == PushToken.hash(token) and token not in (row.digest, row.prefix)
    assert list(row.streams.all()) == [pushed]
    # Never shown again: not on the list, not on the change page.
    for url in (
        reverse("admin:streams_pushtoken_changelist"),
        reverse("admin:streams_pushtoken_change", args=[row.pk]),
    ):
        assert token not in admin_client.get(url).content.decode()
    admin_client.post(
        reverse("admin:streams_pushtoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [row.pk]},
    )
    row.refresh_from_db()
    assert row.revoked is not None and not PushToken.objects.active().exists()


# "Test this feed" on the form's settings, who may test, durations, favicon.

TEST_UNSAVED = reverse("admin:streams_stream_test_unsaved_feed")


def probe_form(**overrides: Any) -> dict[str, Any]:
    return {**form(), **overrides}


def test_unsaved_settings_are_tested_from_the_add_form(admin_client: Client):
    page = admin_client.post(TEST_UNSAVED, probe_form(feed_settings='{"rate": 200, "series": ["typed"]}'))
    body = page.content.decode()
    assert page.status_code == 200
    assert 'id="probe-ok"' in body and "<th>typed</th>" in body and "not saved" in body
    assert not Stream.objects.exists()
    add = admin_client.get(ADD_URL).content.decode()
    assert f'formaction="{TEST_UNSAVED}"' in add


def test_the_change_form_tests_its_edited_settings_not_the_saved_ones(admin_client: Client):
    stream = Stream.objects.create(slug="sim", title="Sim", feed_settings={"series": ["saved"]})
    url = reverse("admin:streams_stream_test_feed", args=[stream.pk])
    assert (
        f'formaction="{url}"'
        in admin_client.get(reverse("admin:streams_stream_change", args=[stream.pk])).content.decode()
    )
    body = admin_client.post(url, probe_form(feed_settings='{"rate": 200, "series": ["edited"]}')).content
    assert b"<th>edited</th>" in body and b"<th>saved</th>" not in body
    stream.refresh_from_db()
    assert stream.feed_settings == {"series": ["saved"]}


def test_unsaved_settings_are_checked_in_words_before_any_connection(admin_client: Client):
    body = admin_client.post(TEST_UNSAVED, probe_form(feed_kind="poll", feed_settings="{}")).content.decode()
    assert "Not tested: url: required, and missing." in body
    body = admin_client.post(TEST_UNSAVED, probe_form(feed_settings="{rate")).content.decode()
    assert "Not tested: Not valid JSON" in body


@pytest.mark.parametrize(
    "where", ["{served}", "http://169.254.169.254/latest/meta-data/", "http://localhost:{port}/"]
)
def test_testing_unsaved_settings_cannot_reach_private_addresses(admin_client: Client, settings, where):
    settings.LIVECHARTS_ALLOW_PRIVATE_FEEDS = False
    with serve_json_api() as (state, served):
        url = where.format(served=served, port=served.split(":")[2].split("/")[0])
        body = admin_client.post(
            TEST_UNSAVED, probe_form(feed_kind="poll", feed_settings=json.dumps({"url": url}))
        ).content.decode()
    assert 'id="probe-error"' in body and "Not tested: url:" in body
    assert state.requests == []  # the local server behind that address was never asked


def test_a_masked_secret_in_tested_settings_takes_the_saved_value(admin_client: Client, settings):
    settings.LIVECHARTS_ALLOW_PRIVATE_FEEDS = True
    with serve_json_api() as (state, url):
        state.body = {"price": 3}
        stream = Stream.objects.create(
            slug="priced",
            title="Priced",
            feed_kind="poll",
            feed_settings={"url": url, "headers": {"X-Api-Key": "k-123"}, "extract": {"value": "price"}},
        )
        shown = {"url": url, "headers": {"X-Api-Key": MASK}, "interval": 0.2, "extract": {"value": "price"}}
        test_url = reverse("admin:streams_stream_test_feed", args=[stream.pk])
        body = admin_client.post(test_url, probe_form(feed_kind="poll", feed_settings=json.dumps(shown)))
        assert b'id="probe-ok"' in body.content and b"k-123" not in body.content
        assert state.requests[0]["headers"]["X-Api-Key"] == "k-123"
        # Not on the add form: there is no saved secret to take.
        body = admin_client.post(TEST_UNSAVED, probe_form(feed_kind="poll", feed_settings=json.dumps(shown)))
        assert b"type the secret in" in body.content


@pytest.fixture
def viewer(staff):
    """sam, staff who may view streams but not change them."""
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_stream"))
    return staff


def test_view_only_staff_are_refused_the_feed_test_with_403_not_500(client: Client, viewer, streams):
    client.force_login(viewer)
    stream = streams[0]
    change = client.get(reverse("admin:streams_stream_change", args=[stream.pk]))
    assert change.status_code == 200
    url = reverse("admin:streams_stream_test_feed", args=[stream.pk])
    assert url not in change.content.decode()
    assert client.get(url).status_code == 403
    assert client.post(url, probe_form()).status_code == 403
    assert client.post(TEST_UNSAVED, probe_form()).status_code == 403


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (2592000, "30 days"),
        (5400, "1 hour 30 minutes"),
        (60, "1 minute"),
        (90061, "1 day 1 hour"),
        (0, "0 seconds"),
    ],
)
def test_durations_are_said_in_words(seconds, words):
    assert duration_words(seconds) == words


def test_keep_for_shows_every_digit_and_the_duration_in_words(admin_client: Client):
    page = admin_client.get(ADD_URL).content.decode()
    field = re.search(
        r'(<input type="number" name="keep_seconds"[^>]*>)<span class="lc-duration"[^>]*>([^<]*)', page
    )
    assert 'value="2592000"' in field.group(1) and 'style="width: 11ch"' in field.group(1)
    assert field.group(2) == "30 days"


def test_favicon_is_served_on_every_page(client: Client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO file

"""Pages: sign in and out, the stream list, the stream page, static files and feed health."""

from __future__ import annotations

import json
import re
import time

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from streams.models import Stream
from streams.storage.window import get_history
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def streams(alice: User, operators: Group) -> dict[str, Stream]:
    """One stream per visibility, plus a disabled one; alice is named on the restricted one."""
    public = Stream.objects.create(slug="weather", title="Weather", visibility=Stream.Visibility.PUBLIC)
    signed_in = Stream.objects.create(
        slug="boiler",
        title="Boiler",
        description="Flow temperature of the boiler",
        visibility=Stream.Visibility.SIGNED_IN,
        chart_type=Stream.ChartType.AREA,
        y_title="Temperature",
        y_unit="°C",
        feed_settings={"series": ["flow", "return"]},
    )
    restricted = Stream.objects.create(
        slug="vault", title="Vault", visibility=Stream.Visibility.RESTRICTED, window_seconds=600
    )
    restricted.viewers.add(alice)
    grouped = Stream.objects.create(slug="ops", title="Ops", visibility=Stream.Visibility.RESTRICTED)
    grouped.viewer_groups.add(operators)
    disabled = Stream.objects.create(
        slug="old", title="Old", visibility=Stream.Visibility.PUBLIC, enabled=False
    )
    return {
        "public": public,
        "signed_in": signed_in,
        "restricted": restricted,
        "grouped": grouped,
        "disabled": disabled,
    }


def signed_in_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def listed_slugs(client: Client) -> set[str]:
    response = client.get(reverse("stream-list"))
    assert response.status_code == 200
    return {stream.slug for stream, _health in response.context["streams"]}


# Sign in and out --------------------------------------------------------------------------


def test_login_page_is_our_styled_form(client: Client) -> None:
    response = client.get(reverse("login"))
    body = response.content.decode()
    assert response.status_code == 200
    assert '<form method="post"' in body
    assert 'name="username"' in body
    assert 'name="password"' in body
    assert "/static/streams/style.css" in body
    assert "LiveCharts" in body


def test_login_works_with_csrf_enforced(alice: User) -> None:
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(reverse("login"))
    token = page.cookies["csrftoken"].value
    response = browser.post(
        reverse("login"), {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert response.url == reverse("stream-list")
    assert browser.get(reverse("stream-list")).context["user"] == alice


def test_login_without_csrf_token_is_refused(alice: User) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get(reverse("login"))
    response = browser.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403


def test_wrong_password_shows_error_on_the_form(alice: User, client: Client) -> None:
    response = client.post(reverse("login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "banner-error" in response.content.decode()
    assert not response.context["user"].is_authenticated


def test_login_follows_next(alice: User, client: Client, streams: dict[str, Stream]) -> None:
    target = reverse("stream-detail", args=["vault"])
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD, "next": target})
    assert response.status_code == 302
    assert response.url == target


def test_logout_by_post_signs_out(alice: User) -> None:
    browser = signed_in_client(alice)
    assert 'action="/accounts/logout/"' in browser.get(reverse("stream-list")).content.decode()
    response = browser.post(reverse("logout"))
    assert response.status_code == 302
    assert not browser.get(reverse("stream-list")).context["user"].is_authenticated


def test_logout_by_get_is_not_allowed(alice: User) -> None:
    browser = signed_in_client(alice)
    assert browser.get(reverse("logout")).status_code == 405
    assert browser.get(reverse("stream-list")).context["user"] == alice


# Stream list -------------------------------------------------------------------------------


def test_anonymous_list_shows_public_streams_and_sign_in(client: Client, streams: dict[str, Stream]) -> None:
    assert listed_slugs(client) == {"weather"}
    body = client.get(reverse("stream-list")).content.decode()
    assert reverse("login") in body
    assert "Boiler" not in body


def test_alice_lists_public_signed_in_and_her_restricted_streams(
    alice: User, streams: dict[str, Stream]
) -> None:
    assert listed_slugs(signed_in_client(alice)) == {"weather", "boiler", "vault", "ops"}


def test_bob_lists_no_restricted_stream(bob: User, streams: dict[str, Stream]) -> None:
    assert listed_slugs(signed_in_client(bob)) == {"weather", "boiler"}


def test_staff_lists_every_stream_even_disabled(staff: User, streams: dict[str, Stream]) -> None:
    assert listed_slugs(signed_in_client(staff)) == {"weather", "boiler", "vault", "ops", "old"}


def test_list_shows_each_streams_details_and_link(alice: User, streams: dict[str, Stream]) -> None:
    body = signed_in_client(alice).get(reverse("stream-list")).content.decode()
    assert "Boiler" in body
    assert "Flow temperature of the boiler" in body
    assert "Area" in body
    assert "last 1,000 points" in body
    assert "last 600 s" in body
    assert f'href="{reverse("stream-detail", args=["boiler"])}"' in body
    assert "alice" in body


# Stream page -------------------------------------------------------------------------------


def json_script(body: str, element_id: str) -> object:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', body, re.S)
    assert match, f"no json_script #{element_id}"
    return json.loads(match.group(1))


def test_stream_page_renders_figure_and_client(alice: User, streams: dict[str, Stream]) -> None:
    response = signed_in_client(alice).get(reverse("stream-detail", args=["boiler"]))
    body = response.content.decode()
    assert response.status_code == 200
    figure = json_script(body, "figure-data")
    assert [trace["name"] for trace in figure["data"]] == ["flow", "return"]
    assert all(trace["x"] == [] and trace["fill"] == "tozeroy" for trace in figure["data"])
    assert figure["layout"]["yaxis"]["title"]["text"] == "Temperature (°C)"
    config = json_script(body, "livechart-config")
    assert config["stream"] == "boiler"
    assert config["ws_path"] == "/ws/"
    assert config["window_points"] == 1000
    assert config["window_seconds"] is None
    assert config["decimals"] is None
    assert config["fill_to_min"] is True  # an area chart: its axis fitted to the values by default
    assert 'id="connection-badge"' in body
    assert 'data-range="1h"' in body and 'id="custom-range"' in body
    assert 'id="chart"' in body


def test_the_list_subscribes_the_enabled_streams_for_their_sparklines(
    staff: User, streams: dict[str, Stream]
) -> None:
    body = signed_in_client(staff).get(reverse("stream-list")).content.decode()
    config = json_script(body, "stream-list-config")
    assert config["ws_path"] == "/ws/"
    slugs = [each["slug"] for each in config["streams"]]
    assert "boiler" in slugs and "old" not in slugs  # staff see the disabled one, with no sparkline
    assert '<script type="module" src="/static/streams/streamlist.js">' in body
    assert 'data-card="boiler"' in body


def test_stream_page_loads_plotly_locally_and_no_cdn(alice: User, streams: dict[str, Stream]) -> None:
    body = signed_in_client(alice).get(reverse("stream-detail", args=["boiler"])).content.decode()
    sources = re.findall(r'<script[^>]*\ssrc="([^"]+)"', body)
    assert "/static/plotly/plotly.min.js" in sources
    assert "/static/streams/live.js" in sources
    assert sources.index("/static/plotly/plotly.min.js") < sources.index("/static/streams/live.js")
    assert '<script type="module" src="/static/streams/live.js">' in body
    assert not [src for src in sources if re.match(r"(https?:)?//", src)]
    assert not re.search(r'<link[^>]+href="(https?:)?//', body)


def test_restricted_stream_is_forbidden_to_bob(bob: User, streams: dict[str, Stream]) -> None:
    response = signed_in_client(bob).get(reverse("stream-detail", args=["vault"]))
    assert response.status_code == 403
    assert "not shared with you" in response.content.decode()


def test_restricted_stream_opens_for_a_group_member(alice: User, streams: dict[str, Stream]) -> None:
    assert signed_in_client(alice).get(reverse("stream-detail", args=["ops"])).status_code == 200


def test_anonymous_is_sent_to_sign_in_with_next(client: Client, streams: dict[str, Stream]) -> None:
    path = reverse("stream-detail", args=["boiler"])
    response = client.get(path)
    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={path}"


def test_anonymous_may_open_a_public_stream(client: Client, streams: dict[str, Stream]) -> None:
    assert client.get(reverse("stream-detail", args=["weather"])).status_code == 200


def test_disabled_stream_is_not_shown_to_viewers(alice: User, streams: dict[str, Stream]) -> None:
    assert signed_in_client(alice).get(reverse("stream-detail", args=["old"])).status_code == 403


def test_unknown_stream_is_404(alice: User) -> None:
    assert signed_in_client(alice).get(reverse("stream-detail", args=["nope"])).status_code == 404


# Static files and health -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/static/plotly/plotly.min.js", "/static/streams/live.js"])
def test_scripts_are_served_as_javascript(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]


async def _store_status(slug: str, status: dict) -> None:
    await get_history().set_status(slug, status)


@pytest.mark.parametrize("mode", ["memory_layer", "redis_layer"])
def test_stream_list_and_page_show_the_feed_health_the_worker_stored(request, mode, client, alice):
    request.getfixturevalue(mode)
    Stream.objects.create(slug="healthy", title="Healthy", visibility="public")
    now = time.time()
    status = {"state": "error", "points": 1234, "bad_payloads": 7, "reconnects": 3, "last_point_at": now - 42}
    async_to_sync(_store_status)("healthy", {**status, "error": "HTTP 503 from http://x/", "at": now})
    page = client.get("/").content.decode()
    assert 'data-state="error"' in page and "42 s ago" in page and "1234" in page
    detail = client.get("/streams/healthy/").content.decode()
    assert 'id="feed-health"' in detail and "HTTP 503 from http://x/" in detail and ">7<" in detail


def test_a_status_nobody_refreshed_for_a_while_shows_unknown(client, memory_layer):
    Stream.objects.create(slug="orphan", title="Orphan", visibility="public")
    async_to_sync(_store_status)("orphan", {"state": "live", "at": time.time() - 3600})
    page = client.get("/").content.decode()
    assert 'data-state="unknown"' in page and 'data-state="live"' not in page

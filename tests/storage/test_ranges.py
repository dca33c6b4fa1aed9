"""Range views: stored points between two times, thinned to about `points` rows however many are
stored, with spikes and gaps still visible; access and parameters checked like the page.

Runs on SQLite and again on PostgreSQL (make test)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from streams.core.ids import IdClock, format_id
from streams.core.points import Entry, Point
from streams.models import Stream
from streams.storage.ranges import Columns, columns_of, thin_rows
from streams.storage.store import DecodedRow, prune_stream, save_batches

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000.0  # seconds
T0_MS = 1_700_000_000_000

Values = Mapping[str, float | None]


# One clock for every store(): a fresh clock in the same millisecond would hand out smaller ids.
_clock = IdClock()


def store(slug: str, points: Sequence[tuple[float, Values]], *, batch: int = 50) -> None:
    """Store points as the broadcaster does: batches of `batch` points with increasing ids."""
    entries = [Entry(id=format_id(_clock.next()), point=Point(t=t, values=values)) for t, values in points]
    save_batches([(slug, entries[i : i + batch]) for i in range(0, len(entries), batch)])


def as_client(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def fetch(client: Client, slug: str, **query: object) -> dict:
    response = client.get(f"/streams/{slug}/range", query)
    assert response.status_code == 200, response.content
    assert b"NaN" not in response.content and b"Infinity" not in response.content
    return json.loads(response.content)


@pytest.fixture
def line() -> Stream:
    return Stream.objects.create(slug="line", title="Line", visibility=Stream.Visibility.PUBLIC)


@pytest.fixture
def anyone() -> Client:
    return Client()


# Thinning -------------------------------------------------------------------------------------


def test_a_lone_spike_among_100000_flat_points_survives_thinning(line, anyone):
    points = [(T0 + i, {"v": 1.0}) for i in range(100_000)]
    points[61_234] = (T0 + 61_234, {"v": 250.0})
    store("line", points, batch=500)
    answer = fetch(anyone, "line")
    assert answer["stored"] == 100_000 and answer["downsampled"] is True
    assert answer["returned"] == len(answer["t"]) <= 2_000
    assert max(answer["y"]["v"]) == 250.0
    assert answer["t"][answer["y"]["v"].index(250.0)] == (T0 + 61_234) * 1000


def test_dips_survive_as_well_as_spikes(line, anyone):
    points = [(T0 + i, {"v": math.sin(i / 500)}) for i in range(50_000)]
    points[7_777] = (T0 + 7_777, {"v": -40.0})
    store("line", points, batch=500)
    assert min(fetch(anyone, "line", points=500)["y"]["v"]) == -40.0


def test_every_series_keeps_to_the_cap_in_a_huge_range():
    rng = np.random.default_rng(7)
    size = 1_000_000
    columns = Columns(
        t=np.arange(size, dtype=np.float64) * 0.05 + T0,
        y={name: rng.normal(size=size).cumsum() for name in ("a", "b", "c")},
    )
    rows = thin_rows(columns, points=2_000)
    assert rows is not None
    # One shared time axis: every series has a value on each of at most 2,000 rows, and each
    # series' own picks are not crowded out by the others (about the cap in all).
    assert 1_500 <= len(rows) <= 2_000
    assert np.all(np.diff(rows) > 0) and rows[0] == 0 and rows[-1] == size - 1
    for values in columns.y.values():
        picked = values[rows]
        assert picked.max() == values.max() and picked.min() == values.min()


def test_points_stored_after_the_count_was_taken_still_fit():
    # read_columns sizes its arrays from a count taken before reading; writes may land between.
    batches = [
        DecodedRow(ids=["1-0", "2-0"], t=[1.0, 2.0], y={"a": [1.0, None]}),
        DecodedRow(
            ids=["3-0", "4-0", "5-0"], t=[3.0, 4.0, 5.0], y={"a": [3.0, 4.0, 5.0], "b": [0.5, None, 1.5]}
        ),
    ]
    columns = columns_of(batches, start=None, end=None, capacity=1)
    assert columns.t.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert np.array_equal(columns.y["a"], [1.0, np.nan, 3.0, 4.0, 5.0], equal_nan=True)
    assert np.array_equal(columns.y["b"], [np.nan, np.nan, 0.5, np.nan, 1.5], equal_nan=True)


def test_series_that_move_together_still_get_about_the_cap():
    size = 200_000
    wave = np.sin(np.arange(size) / 3_000) + np.random.default_rng(1).normal(scale=0.01, size=size)
    columns = Columns(t=np.arange(size, dtype=np.float64), y={"a": wave, "b": wave * 2})
    rows = thin_rows(columns, points=2_000)
    assert rows is not None and 1_500 <= len(rows) <= 2_000


def test_three_series_that_move_together_get_about_the_budget_each_over_24_hours(line, anyone):
    # A day at one point a second: read from the rollup tiers. Each series has a value on every
    # row, so about 2,000 rows is about 2,000 points per series (670 rows before).
    day = 24 * 3600
    wave = np.sin(np.arange(day) / 2_000) + np.random.default_rng(5).normal(scale=0.01, size=day)
    store(
        "line",
        [(T0 + i, {"a": float(w), "b": float(w) * 2, "c": float(w) + 1}) for i, w in enumerate(wave)],
        batch=1_000,
    )
    answer = fetch(anyone, "line", start=T0_MS, end=T0_MS + day * 1000)
    assert answer["stored"] == day and answer["downsampled"] is True
    assert 1_800 <= answer["returned"] <= 2_000
    assert all(sum(v is not None for v in values) == answer["returned"] for values in answer["y"].values())


def test_a_range_asked_far_wider_than_what_is_stored_still_gets_the_budget(line, anyone):
    # Two days asked, a little under an hour stored: the tier follows the stored hour.
    store("line", [(T0 + i * 0.05, {"v": math.sin(i / 300)}) for i in range(60_000)], batch=1_000)
    answer = fetch(anyone, "line", start=T0_MS - 86_400_000, end=T0_MS + 86_400_000, points=1_000)
    assert answer["stored"] == 60_000 and 900 <= answer["returned"] <= 1_000


def test_the_cap_holds_through_the_endpoint_and_points_asks_for_fewer(line, anyone):
    store("line", [(T0 + i / 10, {"a": float(i % 97), "b": float(i % 89)}) for i in range(30_000)])
    answer = fetch(anyone, "line", points=300)
    assert answer["stored"] == 30_000 and len(answer["t"]) <= 300
    assert len(answer["y"]["a"]) == len(answer["y"]["b"]) == len(answer["t"])
    assert fetch(anyone, "line", points=99_999)["returned"] <= 5_000  # asks above the cap get the cap


def test_a_range_under_the_cap_comes_back_whole_and_exact(line, anyone):
    points = [
        (T0 + i * 0.25, {"temp": 20 + i / 8, "flow": None if i % 7 == 3 else float(i)}) for i in range(400)
    ]
    store("line", points)
    answer = fetch(anyone, "line", start=T0_MS + 10_000, end=T0_MS + 20_000)
    inside = [(t, v) for t, v in points if T0 + 10 <= t <= T0 + 20]
    assert answer["downsampled"] is False and answer["stored"] == answer["returned"] == len(inside) == 41
    assert answer["t"] == [round(t * 1000, 3) for t, _ in inside]
    assert answer["y"] == {"temp": [v["temp"] for _, v in inside], "flow": [v["flow"] for _, v in inside]}
    assert (answer["stream"], answer["start"], answer["end"]) == ("line", T0_MS + 10_000, T0_MS + 20_000)


def test_nulls_in_a_thinned_range_stay_null_and_do_not_shred_the_line(line, anyone):
    rng = np.random.default_rng(3)
    values: list[float | None] = list(np.sin(np.arange(100_000) / 2_000))
    for i in rng.choice(100_000, size=100, replace=False):  # scattered single nulls
        values[i] = None
    values[40_000:45_000] = [None] * 5_000  # the sensor was off for a while
    values[70_001] = None
    values[70_000] = 9.0  # a spike right beside a null
    store("line", [(T0 + i, {"v": v}) for i, v in enumerate(values)], batch=500)
    answer = fetch(anyone, "line")
    t, v = answer["t"], answer["y"]["v"]
    gap = ((T0 + 40_000) * 1000, (T0 + 45_000) * 1000)
    in_gap = [value for time, value in zip(t, v, strict=True) if gap[0] <= time < gap[1]]
    assert in_gap and all(value is None for value in in_gap)  # the chart breaks its line there
    assert 9.0 in v
    assert sum(value is None for value in v) <= 2_000 // 4  # tsdownsample's NaN variant gave ~30 %


def test_a_gap_in_a_short_range_is_kept_as_null(line, anyone):
    store("line", [(T0 + i, {"v": None if 3 <= i < 6 else float(i)}) for i in range(10)])
    assert fetch(anyone, "line")["y"]["v"] == [0.0, 1.0, 2.0, None, None, None, 6.0, 7.0, 8.0, 9.0]


def test_series_of_different_lengths_share_the_time_axis(line, anyone):
    first = [(T0 + i, {"a": float(i)}) for i in range(100)]
    later = [(T0 + 100 + i, {"a": float(i), "b": -float(i)}) for i in range(50)]
    store("line", first + later)
    answer = fetch(anyone, "line")
    assert len(answer["t"]) == len(answer["y"]["a"]) == len(answer["y"]["b"]) == 150
    assert answer["y"]["b"][:100] == [None] * 100 and answer["y"]["b"][100:] == [-float(i) for i in range(50)]
    # Thinned too: b is drawn over its own 50 points, still null before it began.
    store("line", [(T0 + 200 + i, {"a": float(i % 13)}) for i in range(20_000)], batch=500)
    thinned = fetch(anyone, "line", points=200)
    assert len(thinned["t"]) <= 200 and len(thinned["y"]["b"]) == len(thinned["t"])
    assert {value for value in thinned["y"]["b"] if value is not None} <= {-float(i) for i in range(50)}


def test_points_stored_out_of_time_order_come_back_sorted(line, anyone):
    store("line", [(T0 + 5, {"v": 5.0}), (T0 + 1, {"v": 1.0}), (T0 + 3, {"v": 3.0})])
    store("line", [(T0 + 2, {"v": 2.0}), (T0 + 4, {"v": 4.0})])  # a late batch
    answer = fetch(anyone, "line")
    assert answer["t"] == [(T0 + i) * 1000 for i in range(1, 6)]
    assert answer["y"]["v"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert fetch(anyone, "line", start=T0_MS + 2_000, end=T0_MS + 3_000)["y"]["v"] == [2.0, 3.0]


# Ends of the range ------------------------------------------------------------------------------


def test_an_empty_range_answers_with_no_points(line, anyone):
    empty = {"t": [], "y": {}, "stored": 0, "returned": 0, "downsampled": False}
    assert fetch(anyone, "line") | empty == fetch(anyone, "line")  # nothing stored yet
    store("line", [(T0 + i, {"v": 1.0}) for i in range(10)])
    answer = fetch(anyone, "line", start=T0_MS + 60_000, end=T0_MS + 70_000)
    assert {key: answer[key] for key in empty} == empty


def test_open_ends_reach_the_first_and_the_newest_point(line, anyone):
    store("line", [(T0 + i, {"v": float(i)}) for i in range(10)])
    assert fetch(anyone, "line", start=T0_MS + 7_000)["y"]["v"] == [7.0, 8.0, 9.0]
    assert fetch(anyone, "line", end=T0_MS + 2_000)["y"]["v"] == [0.0, 1.0, 2.0]
    both_open = fetch(anyone, "line", start="", end="")
    assert both_open["stored"] == 10 and (both_open["start"], both_open["end"]) == (None, None)


def test_a_range_across_the_retention_edge_covers_what_is_kept(line, anyone):
    line.keep_points, line.keep_seconds = 100, None
    line.save()
    store("line", [(T0 + i, {"v": float(i)}) for i in range(500)], batch=50)
    assert prune_stream(line) > 0
    answer = fetch(anyone, "line", start=T0_MS, end=T0_MS + 1_000_000)
    assert answer["stored"] == 100 and answer["y"]["v"] == [float(i) for i in range(400, 500)]


def test_iso_times_are_accepted_with_or_without_an_offset(line, anyone):
    store("line", [(T0 + i, {"v": float(i)}) for i in range(10)])  # 2023-11-14T22:13:20Z on
    cases = [
        {"start": "2023-11-14T22:13:25Z"},
        {"start": "2023-11-14T22:13:25.000+00:00"},
        {"start": "2023-11-14T23:13:25+01:00"},
        {"start": "2023-11-14T23:13:25 01:00"},  # "+" sent unencoded arrives as a space
        {"start": "2023-11-14T22:13:25"},  # no offset: UTC
    ]
    for query in cases:
        assert fetch(anyone, "line", **query)["y"]["v"] == [5.0, 6.0, 7.0, 8.0, 9.0], query


# Access and parameters --------------------------------------------------------------------------


@pytest.fixture
def streams(alice: User) -> dict[str, Stream]:
    signed_in = Stream.objects.create(slug="boiler", title="Boiler", visibility=Stream.Visibility.SIGNED_IN)
    vault = Stream.objects.create(slug="vault", title="Vault", visibility=Stream.Visibility.RESTRICTED)
    vault.viewers.add(alice)
    for stream in (signed_in, vault):
        store(stream.slug, [(T0 + i, {"v": float(i)}) for i in range(5)])
    return {"signed_in": signed_in, "vault": vault}


@pytest.mark.parametrize(
    ("who", "slug", "status", "error"),
    [
        ("anonymous", "boiler", 401, "unauthorized"),
        ("anonymous", "vault", 401, "unauthorized"),
        ("bob", "vault", 403, "forbidden"),
        ("alice", "nowhere", 404, "not_found"),
        ("anonymous", "nowhere", 404, "not_found"),
    ],
)
def test_refusals_are_json_with_the_right_status(request, streams, who, slug, status, error):
    user = None if who == "anonymous" else request.getfixturevalue(who)
    response = as_client(user).get(f"/streams/{slug}/range")
    assert response.status_code == status and response["Content-Type"] == "application/json"
    assert json.loads(response.content)["error"] == error  # never a redirect to the sign-in page


@pytest.mark.parametrize(("who", "slug"), [("alice", "vault"), ("bob", "boiler"), ("staff", "vault")])
def test_who_may_see_the_page_may_read_its_range(request, streams, who, slug):
    assert fetch(as_client(request.getfixturevalue(who)), slug)["stored"] == 5


def test_a_disabled_stream_is_refused_to_viewers(streams, alice):
    Stream.objects.filter(slug="vault").update(enabled=False)
    assert as_client(alice).get("/streams/vault/range").status_code == 403


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"start": "yesterday"}, "start"),
        ({"end": "2024-13-45T00:00:00Z"}, "end"),
        ({"start": "1e400"}, "start"),
        ({"start": "99999999999999999999"}, "start"),
        ({"start": T0_MS + 5_000, "end": T0_MS}, "start"),
        ({"points": "many"}, "points"),
        ({"points": "2.5"}, "points"),
        ({"points": "9"}, "points"),
        ({"points": "-100"}, "points"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(line, anyone, query, parameter):
    response = anyone.get("/streams/line/range", query)
    body = json.loads(response.content)
    assert response.status_code == 400 and body["error"] == "bad_request"
    assert body["parameter"] == parameter and body["message"]


def test_a_range_is_never_cached(line, anyone):
    assert "no-store" in anyone.get("/streams/line/range")["Cache-Control"]

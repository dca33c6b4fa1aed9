"""Export: a range of stored points as a CSV or JSON download, streamed page by page with
bounded memory, access-checked like the page; under ASGI it stops when the client leaves.

Runs on SQLite and again on PostgreSQL (make test)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import tracemalloc
import warnings

import pytest
from django.contrib.auth.models import User
from django.test import Client

from livecharts.asgi import application
from streams.models import Stream
from streams.storage import export
from streams.storage.export import Export, series_in
from streams.storage.store import encode_entries
from tests.asgi_get import AsgiGet
from tests.storage.test_ranges import T0, T0_MS, as_client, store

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def line() -> Stream:
    return Stream.objects.create(slug="line", title="Line", visibility=Stream.Visibility.PUBLIC)


def download(client: Client, path: str, **query: object) -> tuple[str, dict[str, str]]:
    response = client.get(path, query)
    assert response.status_code == 200, response.content
    assert response.streaming
    return b"".join(response.streaming_content).decode(), dict(response.headers)


@pytest.fixture
def small(line) -> None:
    """Seven points in batches of three, b null on most, then c from a later batch on."""
    store("line", [(T0 + i * 0.5, {"a": float(i), "b": None if i % 3 else i * 2}) for i in range(7)], batch=3)
    store("line", [(T0 + 10.25, {"a": 1.5, "c": -1})])


def test_csv_is_wide_with_iso_utc_times_and_empty_cells_for_null(small):
    body, headers = download(Client(), "/streams/line/export.csv", start=T0_MS + 1_000)
    assert body == (
        "time,a,b,c\r\n"
        "2023-11-14T22:13:21.000Z,2.0,,\r\n"
        "2023-11-14T22:13:21.500Z,3.0,6,\r\n"
        "2023-11-14T22:13:22.000Z,4.0,,\r\n"
        "2023-11-14T22:13:22.500Z,5.0,,\r\n"
        "2023-11-14T22:13:23.000Z,6.0,12,\r\n"
        "2023-11-14T22:13:30.250Z,1.5,,-1\r\n"
    )
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="line_20231114T221321Z_now.csv"'


def test_json_is_one_record_per_point_with_every_series(small):
    body, headers = download(Client(), "/streams/line/export.json", start=T0_MS + 2_500)
    assert body == (
        "[\n"
        '{"t":1700000002500,"a":5.0,"b":null,"c":null},\n'
        '{"t":1700000003000,"a":6.0,"b":12,"c":null},\n'
        '{"t":1700000010250,"a":1.5,"b":null,"c":-1}\n'
        "]\n"
    )
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Disposition"] == ('attachment; filename="line_20231114T221322Z_now.json"')


def test_the_survey_only_names_series_of_batches_in_the_range(small):
    # c's batch is outside: no c column.
    body, _ = download(Client(), "/streams/line/export.csv", end=T0_MS + 3_000)
    assert body.splitlines()[0] == "time,a,b" and len(body.splitlines()) == 8


def test_an_empty_range_is_a_header_or_an_empty_array(line):
    assert download(Client(), "/streams/line/export.csv")[0] == "time\r\n"
    assert json.loads(download(Client(), "/streams/line/export.json")[0]) == []


def test_fractional_milliseconds_survive_in_json(line):
    store("line", [(T0 + 0.0005, {"v": 1.0}), (T0 + 1, {"v": 2.0})])
    records = json.loads(download(Client(), "/streams/line/export.json")[0])
    assert [record["t"] for record in records] == [T0_MS + 0.5, T0_MS + 1_000]


def test_series_named_like_the_time_column_are_renamed_not_lost(line):
    store("line", [(T0, {"time": 1.0, "t": 2.0, "t_": 3.0})])
    assert download(Client(), "/streams/line/export.csv")[0].splitlines()[0] == "time,time_,t,t_"
    assert json.loads(download(Client(), "/streams/line/export.json")[0]) == [
        {"t": T0_MS, "time": 1.0, "t_": 2.0, "t__": 3.0}
    ]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(line):
    names = ["=1+2", "+SUM(1)", "-2+3", "@cmd", '=HYPERLINK("http://x","y")', "\tt", "\rr", "plain"]
    store("line", [(T0, dict.fromkeys(names, -1.5)), (T0 + 1, {"plain": 2.0})])
    rows = list(csv.reader(io.StringIO(download(Client(), "/streams/line/export.csv")[0])))
    assert rows[0] == [
        "time",
        "'=1+2",
        "'+SUM(1)",
        "'-2+3",
        "'@cmd",
        '\'=HYPERLINK("http://x","y")',
        "'\tt",
        "'\rr",
        "plain",
    ]
    # Numbers stay numbers: a negative value is data, not a formula.
    assert rows[1][1:] == ["-1.5"] * len(names)
    assert rows[2][1:] == [""] * (len(names) - 1) + ["2.0"]
    # JSON is not opened as a spreadsheet: names as they are.
    assert list(json.loads(download(Client(), "/streams/line/export.json")[0])[0])[1:] == names


def test_a_name_already_quoted_before_a_formula_gets_one_more_quote_so_names_round_trip(line):
    names = ["'=x", "=x", "'plain", "a=b", "-"]
    store("line", [(T0, dict.fromkeys(names, 1.0))])
    header = next(csv.reader(io.StringIO(download(Client(), "/streams/line/export.csv")[0])))
    assert header[1:] == ["''=x", "'=x", "'plain", "a=b", "'-"]
    # The rule a reader undoes: one leading ' dropped before quotes and a formula character.
    undone = [re.sub(r"^'('*[=+\-@\t\r])", r"\1", cell) for cell in header[1:]]
    assert undone == names


def test_text_values_in_stored_rows_are_neutralised_too(line):
    # Stored values are numbers; a row written by other means must still not become a formula.
    store("line", [(T0, {"v": "=cmd|' /C calc'!A0"}), (T0 + 1, {"v": -3.0}), (T0 + 2, {"v": "ok"})])
    rows = list(csv.reader(io.StringIO(download(Client(), "/streams/line/export.csv")[0])))
    assert [row[1] for row in rows[1:]] == ["'=cmd|' /C calc'!A0", "-3.0", "ok"]


def test_series_names_are_read_from_stored_text_as_json_would_read_them():
    from streams.core.points import Entry, Point

    names = ['a "quoted" name', "back\\slash", "ünï", "y", "ids", "x:[", ""]
    data = encode_entries([Entry(id="1-0", point=Point(t=1.0, values=dict.fromkeys(names, 1.0)))])
    assert series_in(data) == names == list(json.loads(data)["y"])


def test_points_stored_after_the_export_began_are_left_out(small):
    job = Export(stream_id=Stream.objects.get(slug="line").pk, start=None, end=None, fmt="csv")
    assert job.step() == "time,a,b,c\r\n"
    store("line", [(T0 + 20, {"a": 9.0, "late": 1.0})])  # a new series, after the header
    body = "".join(job.chunks())
    assert len(body.splitlines()) == 8 and "9.0" not in body


# Streaming ----------------------------------------------------------------------------------------


def test_a_large_export_streams_with_bounded_memory(line):
    total = 300_000
    store("line", [(T0 + i * 0.05, {"a": i * 0.5, "b": float(i % 1000)}) for i in range(total)], batch=500)
    response = Client().get("/streams/line/export.csv")
    size = rows = 0
    tracemalloc.start()
    try:
        for chunk in response.streaming_content:
            size += len(chunk)
            rows += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == total + 1  # the header and every point
    # About 12 MB of CSV from about 20 MB of stored JSON; holding either would show here. A page
    # of 5,000 points being formatted is about 3 MB.
    assert size > 10_000_000
    assert peak < size / 3, f"peak {peak:,} bytes for {size:,} bytes of CSV"


class Download(AsgiGet):
    """One GET through the whole ASGI app (as daphne calls it); the test decides when to leave."""

    def __init__(self, path: str, *, leave_after: int | None = None) -> None:
        super().__init__(path)
        self.leave_after = leave_after
        self.status: int | None = None
        self.parts: list[bytes] = []
        self.finished = False

    async def _send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            if message.get("body"):
                self.parts.append(message["body"])
            self.finished = not message.get("more_body", False)
            if self.leave_after is not None and len(self.parts) >= self.leave_after:
                self._leave.set()

    async def run(self) -> Download:
        await asyncio.wait_for(application(self.scope, self._receive, self._send), 30)
        return self


@pytest.fixture
def pages(monkeypatch, line) -> list[int]:
    """Small pages (200 points) over 20,000 points; records each page read."""
    store("line", [(T0 + i, {"v": float(i)}) for i in range(20_000)], batch=50)
    monkeypatch.setattr(export, "PAGE_POINTS", 200)
    read: list[int] = []
    page = Export._page

    def counted(self, *fields, points):
        read.append(points)
        return page(self, *fields, points=points)

    monkeypatch.setattr(Export, "_page", counted)
    return read


async def test_under_asgi_the_export_is_sent_page_by_page_as_it_is_read(pages):
    with warnings.catch_warnings():
        # Django warns when it must buffer a sync iterator whole under ASGI; ours is async.
        warnings.simplefilter("error")
        done = await Download("/streams/line/export.csv").run()
    assert done.status == 200 and done.finished
    assert len(done.parts) > 50  # one body message per page, not one at the end
    body = b"".join(done.parts).decode()
    expected, _ = await asyncio.to_thread(lambda: download(Client(), "/streams/line/export.csv"))
    assert body == expected and len(body.splitlines()) == 20_001


async def test_a_client_that_leaves_mid_export_stops_the_reading(pages):
    gone = await Download("/streams/line/export.json", leave_after=3).run()
    assert gone.status == 200 and not gone.finished
    # 1 survey page + 100 pages to write; the client left after 3 pieces of body.
    assert len(pages) < 10, f"{len(pages)} pages read after the client left"


# Access and parameters ----------------------------------------------------------------------------


@pytest.fixture
def vault(alice: User) -> Stream:
    stream = Stream.objects.create(slug="vault", title="Vault", visibility=Stream.Visibility.RESTRICTED)
    stream.viewers.add(alice)
    store("vault", [(T0 + i, {"v": float(i)}) for i in range(3)])
    return stream


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_export_is_refused_like_the_page(vault, bob, fmt):
    path = f"/streams/vault/export.{fmt}"
    anonymous = Client().get(path)
    assert anonymous.status_code == 401 and json.loads(anonymous.content)["error"] == "unauthorized"
    browser = Client().get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.status_code == 302 and browser["Location"].startswith("/accounts/login/?next=")
    assert as_client(bob).get(path).status_code == 403
    assert Client().get(f"/streams/nowhere/export.{fmt}").status_code == 404


def test_who_may_see_the_page_may_export(vault, alice, staff):
    for user in (alice, staff):
        body, _ = download(as_client(user), "/streams/vault/export.csv")
        assert body.splitlines() == ["time,v", *(f"2023-11-14T22:13:2{i}.000Z,{i}.0" for i in range(3))]


@pytest.mark.parametrize("query", [{"start": "soon"}, {"start": T0_MS + 1, "end": T0_MS}])
def test_bad_parameters_are_400_naming_the_parameter(line, query):
    response = Client().get("/streams/line/export.csv", query)
    assert response.status_code == 400 and json.loads(response.content)["parameter"] == "start"

"""The peers bench's viewer clients read each peer's real messages as the peer writes them."""

from __future__ import annotations

import json

import pytest
import redis

from bench.peer_clients import SseReader, bokeh_points, dash_answer, dash_request
from bench.peer_feed import entry_of, stream_key
from tests.services import require_package, require_redis

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def chunked(body: bytes, size: int) -> bytes:
    """`body` as an HTTP/1.1 chunked body of `size`-byte chunks, ended."""
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def test_dash_app_answers_the_interval_request_and_its_points_are_read(
    monkeypatch: pytest.MonkeyPatch, redis_prefix: str
) -> None:
    require_package("dash")
    from bench import peer_dash

    client = redis.Redis.from_url(require_redis())
    monkeypatch.setattr(peer_dash, "store", client)
    monkeypatch.setattr(peer_dash, "PREFIX", redis_prefix)
    client.xadd(stream_key(redis_prefix, "s"), entry_of([(1_700_000_000_000.5, 1.0)]))
    client.xadd(stream_key(redis_prefix, "s"), entry_of([(1_700_000_000_001.25, 2.0)]))
    web = peer_dash.server.test_client()
    assert web.get("/_dash-layout").status_code == 200
    post = {"path": "/_dash-update-component", "content_type": "application/json"}

    answer = web.post(**post, data=dash_request(n_intervals=1, last={"stream": "s", "id": "0-0"}))
    assert answer.status_code == 200, answer.data[:300]
    times, last = dash_answer(answer.data)
    assert times == [1_700_000_000_000.5, 1_700_000_000_001.25]
    assert last["stream"] == "s" and last["id"] != "0-0"

    # Nothing after the viewer's last point: Dash's "no update" (204), nothing to read.
    assert web.post(**post, data=dash_request(n_intervals=2, last=last)).status_code == 204
    client.xadd(stream_key(redis_prefix, "s"), entry_of([(3.5, 3.0), (4.5, 4.0)]))
    times, _ = dash_answer(web.post(**post, data=dash_request(n_intervals=3, last=last)).data)
    assert times == [3.5, 4.5]


def test_bokeh_patch_of_a_streamed_source_gives_the_streamed_times() -> None:
    require_package("bokeh")
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from bokeh.protocol import Protocol

    document, events = Document(), []
    source = ColumnDataSource(data={"t": [], "y": []})
    document.add_root(source)
    document.callbacks.on_change(events.append)
    source.stream({"t": [1.5, 2.5, 4.0], "y": [1.0, 2.0, 3.0]}, rollover=10_000)
    source.stream({"t": [5.0], "y": [4.0]}, rollover=10_000)
    message = Protocol().create("PATCH-DOC", events)
    assert message.header.get("num_buffers", 0) == 0  # lists go as JSON, not binary buffers
    assert bokeh_points(message.content_json) == [1.5, 2.5, 4.0, 5.0]
    # Other events (a property set) carry no points.
    assert bokeh_points(json.dumps({"events": [{"kind": "ModelChanged", "attr": "title"}]})) == []


@pytest.mark.parametrize("size", [1, 7, 64, 4096])
def test_event_stream_is_read_whole_events_whatever_the_chunks_and_reads(size: int) -> None:
    require_package("django_eventstream")
    from django_eventstream.utils import sse_encode_event

    body = ":" + " " * 2048 + "\n\nevent: stream-open\ndata:\n\n"
    sent = [{"n": 2, "t": [1.5, 2.5], "y": [1.0, 2.0]}, {"n": 1, "t": [3.5], "y": [3.0]}]
    body += "".join(sse_encode_event("message", data, json_encode=True) for data in sent)
    body += "event: keep-alive\ndata:\n\n"
    wire = chunked(body.encode(), size)
    reader, events = SseReader(), []
    for at in range(0, len(wire), 5):  # reads that split chunk sizes, data and CRLFs alike
        events += reader.feed(wire[at : at + 5])
    assert [kind for kind, _ in events] == ["stream-open", "message", "message", "keep-alive"]
    assert [json.loads(data) for kind, data in events if kind == "message"] == sent
    assert reader.ended

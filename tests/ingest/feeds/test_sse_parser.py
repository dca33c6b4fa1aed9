"""The text/event-stream parser, held to the WHATWG rules and the web-platform-tests cases.

Cases named format-* follow web-platform-tests/wpt eventsource/format-*.  Their server
(resources/message.py) appends a blank line to each message; the streams here spell it out.
"""

from __future__ import annotations

import tracemalloc

import pytest

from streams.ingest.feeds.sse_parser import Event, SSEParser

LONG = "x" * 2048


def parse(stream: bytes | str, *, last_event_id: str | None = None) -> list[Event]:
    """Every event of one whole stream, fed in one chunk then closed."""
    raw = stream.encode() if isinstance(stream, str) else stream
    parser = SSEParser(last_event_id=last_event_id)
    return parser.feed(raw) + parser.close()


def parse_chunks(*chunks: bytes | str) -> list[Event]:
    parser = SSEParser()
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk.encode() if isinstance(chunk, str) else chunk)
    return events + parser.close()


def datas(stream: bytes | str) -> list[str]:
    return [event.data for event in parse(stream)]


# --- BOM (format-bom, format-bom-2) ---


def test_leading_bom_is_stripped_and_a_later_one_spoils_its_line():
    # format-bom: the second BOM makes "\ufeffdata" an unknown field, so "2" never arrives.
    assert datas(b"\xef\xbb\xbfdata:1\n\n\xef\xbb\xbfdata:2\n\ndata:3\n\n") == ["1", "3"]


def test_only_one_leading_bom_is_stripped():
    # format-bom-2: the second of two leading BOMs belongs to the first line.
    assert datas(b"\xef\xbb\xbf\xef\xbb\xbfdata:1\n\ndata:2\n\ndata:3\n\n") == ["2", "3"]


def test_bom_split_across_chunks_is_still_stripped():
    assert [e.data for e in parse_chunks(b"\xef", b"\xbb", b"\xbfdata:1\n\n")] == ["1"]


# --- comments and fields (format-comments, format-field-*) ---


def test_comments_are_ignored_whatever_the_line_ending():
    # format-comments: comments between data lines, ended by CR, LF and CRLF, some long.
    stream = f"data:1\r:\0\n:\r\ndata:2\n:{LONG}\rdata:3\n:data:fail\r:{LONG}\ndata:4\n\n"
    assert datas(stream) == ["1\n2\n3\n4"]


def test_data_lines_join_with_newline_and_lose_the_final_one():
    # format-field-data: "data:" alone is an empty line of data; "data" without colon too.
    assert datas("data:\n\ndata\ndata\n\ndata:test\n\n") == ["", "\n", "test"]


def test_event_field_names_only_its_own_event():
    # format-field-event
    events = parse("event:test\ndata:x\n\ndata:x\n\n")
    assert [e.type for e in events] == ["test", "message"]


def test_empty_event_field_means_message():
    # format-field-event-empty
    assert parse("event: \ndata:data\n\n") == [Event(type="message", data="data")]


def test_event_type_is_reset_even_when_nothing_is_dispatched():
    assert parse("event: lost\n\ndata: x\n\n") == [Event(type="message", data="x")]


def test_field_name_and_value_split_at_the_first_colon():
    assert parse("event:a:b\ndata: c: d\n\n") == [Event(type="a:b", data="c: d")]


def test_only_one_leading_space_is_removed_from_a_value():
    # format-leading-space
    assert datas("data:  two\n\ndata:\tTab\n\ndata:none\n\n") == [" two", "\tTab", "none"]


def test_unknown_fields_are_ignored():
    # format-field-unknown: " data" (leading space) is a different, unknown field.
    stream = "data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n"
    assert datas(stream) == ["test\n\ntest"]


def test_nul_in_data_is_kept():
    # format-null-character
    assert datas("data:\0\n\n") == ["\0"]


# --- id (format-field-id, format-field-id-2, format-field-id-null) ---


def test_last_event_id_persists_across_events():
    events = parse("id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n")
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("b", "1"), ("c", "2")]


def test_resumed_stream_keeps_the_id_it_resumed_from():
    # format-field-id / -2: the second connection sends no id, the event still carries "…".
    first = SSEParser()
    assert first.feed("id: …\nretry: 200\ndata: hello\n\n".encode()) == [
        Event(data="hello", id="…", retry=200)
    ]
    second = SSEParser(last_event_id=first.last_event_id)
    assert second.feed("data: …\n\n".encode()) == [Event(data="…", id="…")]


def test_id_with_nul_is_ignored():
    # format-field-id-null: the id keeps its previous value (here none, then "1").
    assert parse("id: \0\0\ndata: hello\n\n") == [Event(data="hello", id=None)]
    events = parse("id: 1\ndata: a\n\nid: a\0b\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]


def test_empty_id_resets_the_last_event_id():
    events = parse("id: 1\ndata: a\n\nid\ndata: b\n\nid: 3\ndata: c\n\nid:\ndata: d\n\n")
    assert [e.id for e in events] == ["1", "", "3", ""]


def test_id_without_data_moves_the_last_event_id_without_an_event():
    parser = SSEParser()
    assert parser.feed(b"id: 7\n\n") == []
    assert parser.last_event_id == "7"


def test_id_of_an_event_cut_off_by_the_end_of_stream_is_not_taken():
    parser = SSEParser(last_event_id="1")
    parser.feed(b"id: 2\ndata: half")
    assert parser.close() == []
    assert parser.last_event_id == "1"


# --- retry (format-field-retry, -bogus, -empty) ---


def test_retry_sets_the_reconnection_time():
    parser = SSEParser()
    assert parser.feed(b"retry: 1000\ndata: x\n\n") == [Event(data="x", retry=1000)]
    assert parser.feed(b"retry:03000\n\n") == []
    assert parser.retry_ms == 3000


@pytest.mark.parametrize("bogus", ["1000x", "abc", "10s", "1.5", "-1", "+5", "  5", "5 ", "²", "١٢"])
def test_bogus_retry_is_ignored(bogus: str):
    # format-field-retry-bogus. "  5": only one space is stripped; "²" and "١٢" are digits
    # to str.isdigit() but not ASCII digits.
    parser = SSEParser()
    events = parser.feed(f"retry:2000\nretry:{bogus}\ndata:x\n\n".encode())
    assert events == [Event(data="x", retry=2000)]
    assert parser.retry_ms == 2000


def test_empty_retry_is_ignored():
    # format-field-retry-empty
    parser = SSEParser()
    assert parser.feed(b"retry\ndata:test\n\n") == [Event(data="test")]
    assert parser.retry_ms is None


# --- line endings (format-newlines) ---


@pytest.mark.parametrize(
    "stream",
    [
        "data:test\r\ndata\ndata:test\r\n\r\n",
        "data:test\rdata\rdata:test\r\r",
        "data:test\ndata\r\ndata:test\r\r\n",
    ],
    ids=["crlf-lf", "cr", "mixed"],
)
def test_cr_lf_and_crlf_all_end_lines(stream: str):
    assert datas(stream) == ["test\n\ntest"]


def test_only_cr_lf_and_crlf_end_lines():
    # str.splitlines() would split on these; the spec does not.
    assert datas("data:a\x0bb\x0cc\x1cd\u2028e\x85f\n\n") == ["a\x0bb\x0cc\x1cd\u2028e\x85f"]


def test_crlf_split_between_chunks_ends_one_line():
    # Were the LF counted again, it would be a blank line and dispatch "a" alone.
    assert [e.data for e in parse_chunks("data:a\r", "\ndata:b\r\n\r\n")] == ["a\nb"]


def test_crlf_split_by_an_empty_chunk_still_ends_one_line():
    assert [e.data for e in parse_chunks("data:a\r", b"", "\ndata:b\n\n")] == ["a\nb"]


def test_cr_at_chunk_end_followed_by_cr_is_a_blank_line():
    assert [e.data for e in parse_chunks("data:a\r", "\rdata:b\n\n")] == ["a", "b"]


# --- decoding (format-utf-8) ---


def test_stream_is_utf8():
    assert datas(b"data:ok\xe2\x80\xa6\n\n") == ["ok…"]


def test_utf8_sequence_split_between_chunks():
    assert [e.data for e in parse_chunks(b"data:ok\xe2", b"\x80", b"\xa6\n\n")] == ["ok…"]


def test_invalid_utf8_is_replaced_not_fatal():
    assert datas(b"data:\xff\xfeok\n\ndata:\xe2\x80\n\ndata:after\n\n") == [
        "\ufffd\ufffdok",
        "\ufffd",
        "after",
    ]


# --- end of stream (format-data-before-final-empty-line) ---


def test_unterminated_last_event_is_discarded():
    assert datas("data: a\n\ndata: b\n") == ["a"]
    assert datas("data: a\n\ndata: b") == ["a"]


def test_truncated_utf8_at_end_of_stream_is_discarded_quietly():
    assert datas(b"data: a\n\ndata: \xe2\x80") == ["a"]


def test_parser_reads_a_new_stream_after_close():
    parser = SSEParser()
    parser.feed(b"retry: 500\nid: 1\ndata: a\n\nevent: x\ndata: half")
    parser.close()
    # A fresh stream: its BOM is stripped again, no data or type leaks from the cut event.
    assert parser.feed(b"\xef\xbb\xbfdata: b\n\n") == [Event(data="b", id="1", retry=500)]


# --- chunking ---

SAMPLE = (
    b"\xef\xbb\xbf: hello\r\n"
    b"retry: 1500\r\n"
    b"id: 1\rdata: caf\xc3\xa9\r\ndata:  two\n\n"
    b'event: update\ndata\ndata: {"a": 1}\r\n\r\n'
    b"id: \xe2\x80\xa6\r\r"
    b"event: skip\n\n"
    b"data: \xf0\x9f\x93\x88 last\r\n\r"
    b"data: cut"
)
SAMPLE_EVENTS = [
    Event(data="café\n two", id="1", retry=1500),
    Event(type="update", data='\n{"a": 1}', id="1", retry=1500),
    Event(data="📈 last", id="…", retry=1500),
]


def test_sample_stream_parses_as_expected():
    assert parse(SAMPLE) == SAMPLE_EVENTS


@pytest.mark.parametrize("cut", range(len(SAMPLE) + 1))
def test_any_split_into_two_chunks_gives_the_same_events(cut: int):
    assert parse_chunks(SAMPLE[:cut], SAMPLE[cut:]) == SAMPLE_EVENTS


def test_byte_by_byte_gives_the_same_events():
    assert parse_chunks(*(SAMPLE[i : i + 1] for i in range(len(SAMPLE)))) == SAMPLE_EVENTS


# --- size bound (not in the spec: our own guard against endless events) ---

LIMIT = 1000


def parse_bounded(*chunks: bytes) -> list[Event]:
    parser = SSEParser(max_data=LIMIT)
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


def test_data_up_to_the_limit_is_kept():
    exact = b"x" * LIMIT
    split = b"y" * (LIMIT // 2 - 1)
    events = parse_bounded(b"data: " + exact + b"\n\ndata: " + split + b"\ndata: " + split + b"z\n\n")
    assert [(len(event.data), event.oversize) for event in events] == [(LIMIT, False), (LIMIT, False)]


@pytest.mark.parametrize(
    "stream",
    [
        b"data: " + b"x" * (LIMIT + 1) + b"\n\n",
        b"data: " + b"x" * 600 + b"\ndata: " + b"x" * 600 + b"\n\n",
        b"data: " + b"x" * 5000 + b"\n\n",
    ],
    ids=["one-line-over", "lines-add-up", "far-over"],
)
def test_an_event_over_the_limit_is_dispatched_empty_and_marked(stream: bytes):
    events = parse_bounded(b"id: 7\nevent: tick\n" + stream + b"data: next\n\n")
    assert events == [Event(type="tick", id="7", oversize=True), Event(data="next", id="7")]


def test_an_overlong_line_split_across_chunks_spoils_its_event_and_the_stream_goes_on():
    chunks = [b"event: big\ndata: "] + [b"x" * 300] * 20 + [b"\ndata: more\n\nid: 2\ndata: after\n\n"]
    assert parse_bounded(*chunks) == [
        Event(type="big", oversize=True),
        Event(data="after", id="2"),
    ]


def test_an_overlong_comment_or_unknown_field_is_dropped_without_spoiling_the_event():
    chunks = [b"data: a\n:", b"c" * 3000, b"\nfoo: ", b"f" * 3000, b"\ndata: b\n\n"]
    assert parse_bounded(*chunks) == [Event(data="a\nb")]


def test_an_endless_event_is_never_buffered_whole():
    # Without the bound the parser would hold all 16 MiB; with it, about max_data.
    parser = SSEParser(max_data=1024 * 1024)
    chunk = b"x" * 65536
    tracemalloc.start()
    try:
        parser.feed(b"data: ")
        for _ in range(256):
            parser.feed(chunk)
        parser.feed(b"\ndata: " + chunk + b"\n" + b"data: " + chunk + b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parser.feed(b"\n") == [Event(oversize=True)]
    assert peak < 4 * 1024 * 1024


def test_without_a_limit_big_events_are_kept():
    assert [len(e.data) for e in parse(b"data: " + b"x" * 100_000 + b"\n\n")] == [100_000]

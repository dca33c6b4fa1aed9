"""An incremental parser of `text/event-stream`, as EventSource reads it.

Follows the WHATWG HTML Standard, section 9.2.6 "Interpreting an event stream"
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation),
with the decoding rules of 9.2.5 "Parsing an event stream": UTF-8 with replacement, one
leading BOM stripped, lines ended by CRLF, LF or CR, an unterminated event at the end of
the stream discarded. Bytes may arrive split anywhere; `feed()` keeps what it cannot use yet.

The spec sets no size limit; `max_data` adds one so a server cannot make us buffer without
end: an event whose data grows past it is dispatched as `oversize`, with its data dropped.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

# Only these three end a line; str.splitlines() would also split on \v, \f, U+2028 etc.
_LINE_END = re.compile(r"\r\n|\r|\n")
# With `max_data`, a line may be this much longer than the data it carries ("data: " and the
# like) before the parser stops buffering it.
LINE_SLACK = 64
# An overlong line of these fields spoils its event; any other one is ignored anyway.
_EVENT_FIELDS = ("data", "event", "id")


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event.

    `id` is the last event id in effect when it was dispatched (None until the stream or the
    caller ever set one); `retry` is the reconnection time in ms in effect (None if never set).
    `oversize` is True when the data went over the parser's `max_data`: `data` is then empty.
    """

    type: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    oversize: bool = False


class SSEParser:
    """Turns the bytes of one event stream into events; `last_event_id` and `retry_ms` persist."""

    def __init__(self, *, last_event_id: str | None = None, max_data: int | None = None) -> None:
        self.max_data = max_data
        # The id to resume from seeds the buffer, so events without an `id:` on a resumed
        # stream still carry it (what browsers do; WPT eventsource/format-field-id).
        self.last_event_id: str | None = last_event_id
        self.retry_ms: int | None = None
        self._id_buffer: str | None = last_event_id
        self._reset_stream()

    def _reset_stream(self) -> None:
        # utf-8-sig strips exactly one leading BOM, even one split across chunks.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._partial: list[str] = []
        self._partial_len = 0
        # An overlong line was cut: what remains of it, up to its line end, is thrown away.
        self._discarding_line = False
        # A chunk ended in CR: an LF starting the next chunk belongs to the same line end.
        self._skip_lf = False
        self._data: list[str] = []
        self._data_len = 0
        self._oversize = False
        self._event_type = ""

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse more bytes; return the events they complete, in order."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._skip_lf and text[0] == "\n":
            text = text[1:]
        self._skip_lf = text.endswith("\r")
        events: list[Event] = []
        start = 0
        for match in _LINE_END.finditer(text):
            line = text[start : match.start()]
            start = match.end()
            if self._discarding_line:
                self._discarding_line = False
                continue
            if self._partial:
                line = "".join(self._partial) + line
                self._partial.clear()
                self._partial_len = 0
            if self._line_too_long(len(line)):
                self._drop_line(line)
                continue
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        if start < len(text) and not self._discarding_line:
            self._partial.append(text[start:])
            self._partial_len += len(text) - start
            if self._line_too_long(self._partial_len):
                # Keep only the field name's worth to judge the line by, then stop buffering.
                self._drop_line("".join(self._partial)[:LINE_SLACK])
                self._partial.clear()
                self._partial_len = 0
                self._discarding_line = True
        return events

    def close(self) -> list[Event]:
        """End of stream: an event not ended by a blank line is discarded, per the spec.

        Always returns an empty list (kept for symmetry with `feed`). The parser may then read
        a new stream (a reconnection), keeping `last_event_id` and `retry_ms`.
        """
        self._reset_stream()
        return []

    def _line_too_long(self, length: int) -> bool:
        return self.max_data is not None and length > self.max_data + LINE_SLACK

    def _drop_line(self, head: str) -> None:
        """An overlong line is not kept; if it carried data, an event type or an id, the event
        it belongs to cannot be dispatched as sent, so it is marked oversize."""
        if head.partition(":")[0] in _EVENT_FIELDS:
            self._spoil()

    def _spoil(self) -> None:
        self._oversize = True
        self._data = []
        self._data_len = 0

    def _process_line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            if self._oversize:
                return None
            # Joined with LF: every line after the first adds one character.
            self._data_len += len(value) + (1 if self._data else 0)
            if self.max_data is not None and self._data_len > self.max_data:
                self._spoil()
            else:
                self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        # isdigit() alone accepts "²" or Arabic-Indic digits; the spec wants ASCII digits only.
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        # The id is taken even when nothing is dispatched: "id: 5" then a blank line moves it.
        self.last_event_id = self._id_buffer
        if not self._data and not self._oversize:
            self._event_type = ""
            return None
        # Joining with LF is the spec's "append LF per line, drop the final LF".
        event = Event(
            type=self._event_type or "message",
            data="\n".join(self._data),
            id=self.last_event_id,
            retry=self.retry_ms,
            oversize=self._oversize,
        )
        self._data = []
        self._data_len = 0
        self._oversize = False
        self._event_type = ""
        return event

"""bench/send_floor.py: a real points frame, and sends timed with the peers drained in process
or read by a reader process that goes away with the measurement."""

from __future__ import annotations

import json
import os

import pytest

from bench import send_floor


def test_the_points_frame_is_a_text_frame_of_one_batch_of_that_many_points() -> None:
    frame = send_floor.points_frame_bytes(50)
    assert frame[0] == 0x81 and frame[1] == 126
    assert int.from_bytes(frame[2:4], "big") == len(frame) - 4
    message = json.loads(frame[4:])
    assert message["op"] == "points"
    (batch,) = message["data"]
    assert len(batch["t"]) == 50 and len(batch["y"]["y"]) == 50


def test_a_short_payload_has_a_one_byte_length() -> None:
    assert send_floor.ws_frame(b"abc") == b"\x81\x03abc"
    with pytest.raises(ValueError, match="65,536"):
        send_floor.ws_frame(b"x" * 65536)


@pytest.mark.parametrize("reader", ["none", "process"])
def test_a_measurement_times_the_sends_and_leaves_no_reader_behind(reader: str) -> None:
    before = children()
    us = send_floor.measure(20, send_floor.points_frame_bytes(50), 3, reader=reader)
    assert us > 0
    assert children() <= before


def children() -> set[str]:
    """This process's children (every thread's), from /proc."""
    found: set[str] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children", encoding="ascii") as listing:
            found.update(listing.read().split())
    return found

"""The viewer clients' fast reading of points frames agrees with decoding them."""

from __future__ import annotations

import json

from bench.clients import scan_batches
from streams.core.frames import batch_text, points_frame
from streams.core.points import Entry, Point


def test_scanning_a_frame_finds_each_batchs_stream_ids_and_point_count() -> None:
    texts = []
    for i, size in enumerate([1, 7, 50]):
        entries = [
            Entry(
                id=f"{i}-{j}",
                point=Point(t=1.7e9 + j / 3, values={"a": j * 0.1, "b": None if j % 2 else 1.0}),
            )
            for j in range(size)
        ]
        texts.append(batch_text(slug=f"plant-{i}", prev=None if i == 0 else f"{i - 1}-0", entries=entries))
    frame = points_frame(texts)
    decoded = [(b["stream"], b["prev"], b["id"], len(b["t"])) for b in json.loads(frame)["data"]]
    assert list(scan_batches(frame)) == decoded
    assert [points for *_, points in decoded] == [1, 7, 50]

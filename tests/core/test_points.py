"""Entries, broadcast's batch of ids and points: a Sequence of Entry like a list, and its
columns, made once and joined, always those frames.columns makes of its points."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.frames import batch_text, columns, fill_ms_times, ms_times, times_and_columns
from streams.core.points import Entries, Entry, Point, ids_and_points, last_id
from streams.storage.store import encode_entries, merge_batches

value = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32))
point = st.builds(
    Point,
    t=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    values=st.fixed_dictionaries({}, optional={"a": value, "b": value, "c": value}),
)


def entries_of(points: list[Point], start: int) -> Entries:
    return Entries([f"1-{start + n}" for n in range(len(points))], points)


def test_entries_read_as_a_list_of_entry():
    points = [Point(1.0, {"a": 1.0}), Point(2.0, {"a": 2.0}), Point(3.0, {"a": None})]
    entries = entries_of(points, 0)
    as_list = [Entry("1-0", points[0]), Entry("1-1", points[1]), Entry("1-2", points[2])]
    assert len(entries) == 3 and list(entries) == as_list and entries == as_list
    assert entries[1] == as_list[1] and entries[-1] == as_list[-1]
    assert entries[1:] == as_list[1:] and isinstance(entries[1:], Entries)
    assert last_id(entries) == last_id(as_list) == "1-2"
    assert ids_and_points(entries) == ids_and_points(as_list) == (["1-0", "1-1", "1-2"], points)


# No deadline: outside CI (whose profile has none) hypothesis's 200 ms failed an example that a
# busy machine or a garbage collection held up, though nothing was wrong with it.
@settings(deadline=None)
@given(
    parts=st.lists(
        st.tuples(st.lists(point, min_size=1, max_size=8), st.booleans() | st.just(True)),
        min_size=1,
        max_size=5,
    )
)
def test_joined_entries_have_the_columns_of_their_points(parts):
    # Some parts had their columns made (broadcast's texts), most, some not; series come and go.
    batches, start = [], 0
    for points, made in parts:
        entries = entries_of(points, start)
        start += len(points)
        if made:
            times_and_columns(entries)
        batches.append(("s", entries))
    ((_, whole),) = merge_batches(batches)
    every = [p for points, _ in parts for p in points]
    assert times_and_columns(whole) == ([p.t for p in every], columns(every))
    assert list(times_and_columns(whole)[1]) == list(columns(every))  # series in the same order
    assert encode_entries(whole) == encode_entries(list(whole))


wire_time = (
    st.floats(min_value=1.0e9, max_value=2.3e9)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
    | st.integers(min_value=2**52, max_value=2**53 - 1).map(lambda k: k / 4096 / 1000)
    | st.integers(min_value=1_100_000_000_000_000, max_value=2_199_000_000_000_000).map(
        lambda us: (us + 0.5) / 1e6
    )
    | st.integers(min_value=1_100_000_000, max_value=2_100_000_000)  # whole seconds, as int
    # Exactly half way between two microseconds (k * 125 / 512 with a remainder of 256): ties.
    | st.integers(min_value=2**43, max_value=2**44 - 1).map(lambda m: (m * 512 + 256) / 4096 / 1000)
    | st.sampled_from(
        [2**40 / 1000, 2**41 / 1000, (2**41 - 2**-12) / 1000, 1099511627.7765, 1700000000.0000005]
    )
)


@settings(deadline=None)
@given(
    tick=st.lists(
        st.lists(
            st.tuples(wire_time | st.just(float("nan")), st.floats(width=32, allow_nan=False)), min_size=1
        ),
        max_size=8,
    )
)
def test_a_ticks_wire_times_made_at_once_are_each_batchs_own(tick):
    # Broadcast rounds a whole tick's times in one array (fill_ms_times): every batch's text
    # is byte for byte the one made of that batch alone, whatever times the other batches hold.
    def batches() -> list[Entries]:
        return [
            entries_of([Point(t, {"y": y}) for t, y in batch], start=n * 100) for n, batch in enumerate(tick)
        ]

    def text(entries: Entries) -> str:
        try:
            return batch_text(slug="s", prev="1-0", entries=entries)
        except ValueError as error:  # NaN is no JSON number: refused alike
            return f"refused: {error}"

    alone, together = batches(), batches()
    fill_ms_times(together)
    assert [text(entries) for entries in together] == [text(entries) for entries in alone]
    for entries, batch in zip(together, tick, strict=True):
        if entries.ms is not None:  # else left to ms_times: a time outside 2004-2039
            assert entries.ms.tolist() == ms_times([t for t, _ in batch])


@settings(deadline=None)
@given(
    t=st.lists(
        st.floats(min_value=1.0e9, max_value=2.3e9)
        | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
        | st.integers(min_value=2**52, max_value=2**53 - 1).map(lambda k: k / 4096 / 1000)
        | st.integers(min_value=1_100_000_000_000_000, max_value=2_199_000_000_000_000).map(
            lambda us: (us + 0.5) / 1e6
        )
    )
)
def test_wire_times_are_rounded_as_round_rounds_them(t):
    # Every reader and writer of wire times rounds with round(t * 1000, 3): the live batch's
    # faster rounding must give the very same doubles, ties and binade edges included.
    assert ms_times(t) == [round(at * 1000, 3) for at in t]
    edges = [2**40 / 1000, 2**41 / 1000, (2**41 - 2**-12) / 1000, 1099511627.7765, 1700000000.0000005]
    assert ms_times(edges) == [round(at * 1000, 3) for at in edges]

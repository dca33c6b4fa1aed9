"""JSON is read by orjson where it reads as json does, by json where it does not (feed messages,
history windows)."""

from __future__ import annotations

import json
import random

import pytest

from streams.core.json_parse import may_hold_long_number, parse_json


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "tick", "ts": 1700000000123.5, "price": 101.25}',
        "[1, 2.5, -0.0, 1E5, 0.1e-400]",
        '{"a": 1, "a": 2}',
        # orjson refuses these; json reads them
        "NaN",
        "[1e400, -Infinity]",
        '"\\ud800"',
        # orjson would read an integer past 64 bits as a float: an id would change its text
        '{"id": 123456789012345678901234567890, "v": 1}',
        '{"id": "12345678901234567890123"}',
        # and a negative one below a signed 64-bit integer's range, though only 19 digits long
        '{"v": -9223372036854775809}',
        "[-9999999999999999999, -9223372036854775808, 9999999999999999999]",
        # 19 digits that orjson keeps exact (a time in nanoseconds): its fast path
        '{"ts": 1733430000123456789}',
        "42",
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_message_reads_as_json_reads_it(text, as_bytes):
    message = text.encode() if as_bytes else text
    parsed = parse_json(message)
    assert repr(parsed) == repr(json.loads(message))


def test_an_integer_past_64_bits_stays_an_integer():
    assert parse_json('{"id": 18446744073709551616}') == {"id": 18446744073709551616}
    assert type(parse_json('{"id": 18446744073709551616}')["id"]) is int


def test_integers_near_64_bits_read_as_json_reads_them():
    rng = random.Random(5)
    edges = [2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**19 - 1, 10**19]
    numbers = [sign * (edge + delta) for edge in edges for delta in (-1, 0, 1) for sign in (1, -1)]
    numbers += [rng.randint(-(10**21), 10**21) for _ in range(2_000)]
    for number in numbers:
        text = f'{{"v": {number}}}'
        parsed = parse_json(text)
        assert repr(parsed) == repr(json.loads(text)), text


def test_floats_read_as_json_reads_them():
    rng = random.Random(3)
    for _ in range(20_000):
        number = rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-30, 30)
        for text in (repr(number), f"{number:.17g}", f"{number:.{rng.randint(1, 20)}f}"):
            assert parse_json(text) == json.loads(text), text


@pytest.mark.parametrize("text", ["", "{", "[1,]", "{'a': 1}", "\ufeff{}", "[" * 100_000, "tick"])
def test_what_json_refuses_raises_its_error(text):
    with pytest.raises((ValueError, RecursionError)) as expected:
        json.loads(text)
    with pytest.raises(expected.type) as raised:
        parse_json(text)
    assert str(raised.value) == str(expected.value)


def test_the_quick_look_for_long_numbers_misses_none():
    # Texts of digits, minus signs and other characters with runs of every length at every
    # offset: the quick look (one find first) answers as the full search does.
    rng = random.Random(7)
    for _ in range(20_000):
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append(rng.choice(['"a": ', ", ", "-", "x", ".", "e"]) * rng.randint(0, 3))
            parts.append("".join(rng.choice("0123456789") for _ in range(rng.randint(0, 24))))
        raw = "".join(parts).encode()
        translated = raw.translate(bytes(48 if 48 <= b <= 57 else 45 if b == 45 else 32 for b in range(256)))
        full = b"0" * 20 in translated or b"-" + b"0" * 19 in translated
        assert may_hold_long_number(raw) == full, raw

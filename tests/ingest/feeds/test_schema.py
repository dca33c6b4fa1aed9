"""The admin's table of feed settings agrees with what each kind's clean_settings accepts."""

from __future__ import annotations

import re
from typing import Any

import pytest

from streams.ingest.feeds import FEED_KINDS, feed_class
from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.schema import DERIVED, SCHEMAS, TYPES, explain, missing_required

KINDS = sorted(FEED_KINDS)
# A value of the wrong type for each type of the table (every kind must refuse it by the key's name).
WRONG = {
    "text": 12,
    "url": 12,
    "number": "fast",
    "integer": "many",
    "boolean": "yes",
    "choice": "no-such-choice",
    "list": 12,
    "object": 12,
}


def starter(kind: str) -> dict[str, Any]:
    return SCHEMAS[kind].starter()


def test_every_kind_has_a_table_and_every_table_a_kind():
    assert sorted(SCHEMAS) == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_the_starter_settings_are_valid(kind):
    feed_class(kind).clean_settings(starter(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_the_table_lists_exactly_the_keys_the_kind_knows(kind):
    with pytest.raises(FeedSettingsError) as refused:
        feed_class(kind).clean_settings({**starter(kind), "zz_not_a_key": 1})
    known = re.search(r"known: (.*)\)", refused.value.message).group(1).split(", ")
    assert sorted(known) == sorted(key.name for key in SCHEMAS[kind].keys)
    assert sorted(feed_class(kind).clean_settings(starter(kind))) == sorted(known)


@pytest.mark.parametrize("kind", KINDS)
def test_the_table_defaults_are_what_the_kind_fills_in(kind):
    cleaned = feed_class(kind).clean_settings(starter(kind))
    for key in SCHEMAS[kind].keys:
        if key.required or key.default is DERIVED:
            continue
        assert cleaned[key.name] == key.default, key.name


@pytest.mark.parametrize("kind", KINDS)
def test_each_required_key_left_out_is_refused_by_its_name(kind):
    for key in SCHEMAS[kind].required:
        settings = starter(kind)
        del settings[key.name]
        with pytest.raises(FeedSettingsError) as refused:
            feed_class(kind).clean_settings(settings)
        assert refused.value.key == key.name
        assert missing_required(kind, settings).key == key.name


@pytest.mark.parametrize("kind", KINDS)
def test_each_key_refuses_a_value_of_the_wrong_type_by_its_name(kind):
    for key in SCHEMAS[kind].keys:
        assert key.type in TYPES, key.name
        if key.type == "any":
            continue
        with pytest.raises(FeedSettingsError) as refused:
            feed_class(kind).clean_settings({**starter(kind), key.name: WRONG[key.type]})
        assert refused.value.key.split("[")[0].split(".")[0] == key.name, (key.name, refused.value)


@pytest.mark.parametrize("kind", KINDS)
def test_choices_in_the_table_are_accepted(kind):
    for key in SCHEMAS[kind].keys:
        for choice in key.choices:
            assert feed_class(kind).clean_settings({**starter(kind), key.name: choice})[key.name] == choice


def test_a_missing_required_key_is_named_in_words_not_as_none():
    error = missing_required("websocket", {})
    assert explain(error).startswith("url: required, and missing. The server, a ws:// or wss:// URL")
    with pytest.raises(FeedSettingsError) as refused:
        feed_class("simulate").clean_settings({"rate": None})
    assert explain(refused.value) == "rate: must be a number, not null"

"""The registry of feed kinds: names and labels known up front, each kind's module imported on use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.ingest.feeds import FEED_KINDS, build_feed, feed_class
from streams.ingest.feeds.base import Feed, FeedSettingsError

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("kind", sorted(FEED_KINDS))
def test_every_registered_kind_loads_a_feed_class_of_that_name(kind):
    loaded = feed_class(kind)
    assert issubclass(loaded, Feed)
    assert loaded.kind == kind


def test_an_unknown_kind_is_refused_naming_the_known_ones():
    with pytest.raises(FeedSettingsError) as caught:
        feed_class("fax")
    assert caught.value.key == "kind"
    assert caught.value.message == f"unknown feed kind 'fax' (known: {', '.join(sorted(FEED_KINDS))})"


def test_build_feed_makes_a_feed_of_the_kind_with_its_settings_checked():
    feed = build_feed("simulate", {"rate": 20})
    assert (feed.kind, feed.settings["rate"]) == ("simulate", 20)


def test_a_kind_module_is_imported_on_first_use_only():
    code = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'livecharts.settings')\n"
        "import django; django.setup()\n"
        "from streams.ingest.feeds import feed_class\n"
        "before = 'streams.ingest.feeds.mqtt' in sys.modules\n"
        "feed_class('mqtt')\n"
        "print(before, 'streams.ingest.feeds.mqtt' in sys.modules, 'aiomqtt' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True"]

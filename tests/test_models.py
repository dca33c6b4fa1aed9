"""Stream validation: the rules admin and `manage.py provision` both rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from streams.models import MAX_WINDOW_POINTS, Stream

pytestmark = pytest.mark.django_db


def stream(**fields: Any) -> Stream:
    values: dict[str, Any] = {"slug": "s", "title": "S", "feed_kind": "simulate", "feed_settings": {}}
    values.update(fields)
    return Stream(**values)


def errors_of(candidate: Stream) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        candidate.full_clean()
    return caught.value.message_dict


def test_default_stream_is_valid_and_clean_fills_the_feed_defaults():
    candidate = Stream(slug="s", title="S")
    candidate.full_clean()
    assert candidate.feed_kind == "simulate"
    settings = candidate.feed_settings
    assert settings["rate"] == 10
    assert settings["shape"] == "sine"
    assert [series["name"] for series in settings["series"]] == ["value"]
    assert candidate.series_names == ["value"]


def test_unknown_feed_kind_is_refused_on_feed_kind():
    errors = errors_of(stream(feed_kind="carrier-pigeon"))
    assert any("unknown feed kind 'carrier-pigeon'" in message for message in errors["feed_kind"])


def test_rate_out_of_range_is_refused_naming_rate():
    errors = errors_of(stream(feed_settings={"rate": 5000}))
    assert errors["feed_settings"] == ["rate: must be at most 1000, not 5000"]


def test_unknown_setting_is_refused_naming_it():
    errors = errors_of(stream(feed_settings={"colour": "red"}))
    assert errors["feed_settings"][0].startswith("colour: unknown setting")


@pytest.mark.parametrize(
    ("series", "named"),
    [
        ("value", "series: "),
        ([], "series: "),
        ([42], "series[0]: "),
        ([{"name": ""}], "series[0].name: "),
        (["a", {"name": "a"}], "series[1].name: "),
        ([{"name": "a", "shape": "square"}], "series[0].shape: "),
    ],
)
def test_bad_series_are_refused_naming_the_series(series, named):
    errors = errors_of(stream(feed_settings={"series": series}))
    assert errors["feed_settings"][0].startswith(named)


def test_window_needs_points_or_seconds():
    errors = errors_of(stream(window_points=None, window_seconds=None))
    assert "window" in errors["window_points"][0].lower()


@pytest.mark.parametrize(("points", "seconds"), [(500, None), (None, 60), (500, 60)])
def test_window_in_points_seconds_or_both_is_valid(points, seconds):
    stream(window_points=points, window_seconds=seconds).full_clean()


def test_window_above_the_maximum_is_refused():
    errors = errors_of(stream(window_points=MAX_WINDOW_POINTS + 1))
    assert "window_points" in errors


def test_unknown_chart_type_and_visibility_are_refused():
    errors = errors_of(stream(chart_type="pie", visibility="secret"))
    assert set(errors) == {"chart_type", "visibility"}


def test_slug_must_be_unique():
    stream().save()
    errors = errors_of(stream(title="Another"))
    assert "slug" in errors


def test_window_label_reads_as_words():
    assert stream(window_points=1000, window_seconds=60).window_label == "last 1,000 points and last 60 s"
    assert stream(window_points=None, window_seconds=300).window_label == "last 300 s"


def test_importing_the_models_imports_no_feed_client_library():
    # What the feed kinds import (streams/ingest/feeds/*.py): `migrate` and the web processes
    # need none of it, so the registry imports a kind's module only when the kind is used.
    clients = ("aiomqtt", "paho", "websockets", "httpx", "httpcore", "jmespath")
    code = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'livecharts.settings')\n"
        "import django; django.setup()\n"
        "import streams.models\n"
        f"print(' '.join(name for name in {clients!r} if name in sys.modules) or '-')\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["-"]

"""deploy/grafana/livecharts.json: a dashboard an operator imports, querying only metrics that
/metrics really writes (a renamed metric would leave a panel silently empty)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from django.test import AsyncClient

from streams.models import Stream
from streams.storage.window import get_history
from tests.web.test_metrics import parse

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "livecharts.json"

# PromQL words followed by something other than "(" that are not metric names.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
}
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
MATCHERS = re.compile(r"\{[^}]*\}")
RANGE = re.compile(r"\[[^\]]*\]")
LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
WORD = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[A-Za-z_]\w*\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: words that are not a function or an
    aggregation (followed by "("), a keyword, a label (inside {}, by (...)) or a range."""
    if match := LABEL_VALUES.match(expr):  # Grafana's label_values(selector, label)
        expr = match.group(1)
    expr = LABEL_LIST.sub(" ", RANGE.sub(" ", MATCHERS.sub(" ", STRING.sub('""', expr))))
    names = set()
    for word in WORD.finditer(expr):
        if expr[word.end() :].lstrip().startswith("(") or word.group(0) in KEYWORDS:
            continue
        names.add(word.group(0))
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expression) for every panel target and templating query."""
    board = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries.append((f"variable ${variable['name']}", variable["query"]["query"]))
    return queries


def test_metric_names_are_read_from_promql_not_functions_labels_or_ranges():
    expr = 'histogram_quantile(0.9, sum by (le) (rate(a_seconds_bucket{job=~"$job"}[$__rate_interval])))'
    assert metric_names(expr) == {"a_seconds_bucket"}
    assert metric_names('max by (stream, state) (b_state{state!="live"}) == 1') == {"b_state"}
    assert metric_names("rate(c_total[5m]) / ignoring(x) d_total * 1e3") == {"c_total", "d_total"}
    assert metric_names('label_values(e_sockets{job=~"$job"}, instance)') == {"e_sockets"}


async def test_every_metric_the_dashboard_queries_is_written_by_metrics(memory_layer, staff):
    # A stream with stored health, so the per-stream families have samples too.
    await Stream.objects.acreate(slug="plant", title="Plant", visibility=Stream.Visibility.PUBLIC)
    now = time.time()
    await get_history().set_status(
        "plant",
        {"state": "live", "points": 5, "bad_payloads": 0, "reconnects": 0, "last_point_at": now, "at": now},
    )
    client = AsyncClient()
    await client.aforce_login(staff)
    text = (await client.get("/metrics")).content.decode()
    written = {name.partition("{")[0] for name in parse(text)}
    for line in text.splitlines():
        if line.startswith("# TYPE "):  # families with no sample now (no viewer) still exist
            _, _, name, kind = line.split()
            written |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}

    queries = dashboard_queries()
    assert len(queries) >= 20
    missing = [
        (where, name) for where, expr in queries for name in sorted(metric_names(expr)) if name not in written
    ]
    assert missing == []
    queried = set().union(*(metric_names(expr) for _, expr in queries))
    # What an operator graphs first is on it.
    assert {
        "livecharts_broadcast_to_socket_seconds_bucket",
        "livecharts_subscribe_seconds_bucket",
        "livecharts_sockets",
        "livecharts_feed_state",
        "process_cpu_seconds_total",
    } <= queried


def test_the_dashboard_imports_cleanly():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "livecharts"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    names = [variable["name"] for variable in board["templating"]["list"]]
    assert names[0] == "datasource"
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        # Every query goes to the Prometheus the importer picks, none to a uid of ours.
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24

"""Plotly figures built from a stream's chart settings, for the stream page.

The figure carries no data points: the page fills it from the socket's backfill, so one code
path (the browser client) draws history and live points alike.
"""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
from plotly.basedatatypes import BaseTraceType

from streams.models import Stream

TEMPLATE = "plotly_white"
FONT_FAMILY = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
# Plotly's browser config (not part of the figure): resize with the page, no logo, no lasso.
PLOTLY_CONFIG: dict[str, Any] = {
    "responsive": True,
    "displaylogo": False,
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
}


def y_axis_title(stream: Stream) -> str:
    """'Temperature (°C)'; just the unit or just the title when only one is set."""
    title, unit = stream.y_title.strip(), stream.y_unit.strip()
    if title and unit:
        return f"{title} ({unit})"
    return title or unit


def series_trace(*, name: str, chart_type: str) -> BaseTraceType:
    """One empty trace for a series, drawn the way the stream's chart type says."""
    if chart_type == Stream.ChartType.BAR:
        return go.Bar(name=name, x=[], y=[])
    if chart_type == Stream.ChartType.SCATTER:
        return go.Scatter(name=name, x=[], y=[], mode="markers", marker={"size": 6})
    if chart_type == Stream.ChartType.AREA:
        # tozeroy rather than tonexty: tonexty without a stackgroup shades between series,
        # which reads as stacking that is not there.
        return go.Scatter(name=name, x=[], y=[], mode="lines", fill="tozeroy", line={"width": 1.5})
    return go.Scatter(name=name, x=[], y=[], mode="lines", line={"width": 2})


def build_figure(stream: Stream) -> go.Figure:
    """The empty figure for a stream: one trace per known series, a date x axis."""
    chart_type = stream.chart_type
    figure = go.Figure(data=[series_trace(name=name, chart_type=chart_type) for name in stream.series_names])
    figure.update_layout(
        template=TEMPLATE,
        # A constant uirevision keeps the user's zoom and legend clicks across updates.
        uirevision=stream.slug,
        autosize=True,
        margin={"l": 64, "r": 24, "t": 36, "b": 48},
        font={"family": FONT_FAMILY, "size": 13},
        hovermode="x unified",
        showlegend=True,
        legend={"orientation": "h", "x": 0, "y": 1.02, "xanchor": "left", "yanchor": "bottom"},
        bargap=0.1,
    )
    # Times arrive as ms since the epoch and are shifted to local wall time by the client.
    figure.update_xaxes(type="date", hoverformat="%Y-%m-%d %H:%M:%S", showspikes=False)
    figure.update_yaxes(title_text=y_axis_title(stream) or None, zeroline=False)
    return figure


def _plain(value: BaseTraceType | go.Figure) -> dict[str, Any]:
    # Through plotly's own encoder so the result is plain JSON types for json_script.
    return json.loads(value.to_json())


def figure_json(stream: Stream) -> dict[str, Any]:
    return _plain(build_figure(stream))


def new_trace_json(stream: Stream) -> dict[str, Any]:
    """The trace the client adds for a series the feed reveals later (name filled in there)."""
    return _plain(series_trace(name="", chart_type=stream.chart_type))

"""Plotly figures built from a stream's chart settings, for the stream page and dashboard panels.

The figure carries no data points: the page fills it from the socket's backfill, so one code
path (the browser client) draws history and live points alike.

Every trace is SVG (scatter, bar, indicator, candlestick), never WebGL (scattergl): browsers
allow only about 16 live WebGL contexts per page and drop the oldest past that, so a dashboard
of twenty scattergl panels would lose some of its charts. SVG keeps any number of panels on
screen; the rolling windows keep each one small enough to stay smooth.
"""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
from plotly.basedatatypes import BaseTraceType

from streams.models import AreaFill, Panel, Stream

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


def value_format(decimals: int | None) -> str:
    """The d3 format of values (hover, gauges): thousands separated, `decimals` after the point,
    or up to 6 significant digits without trailing zeros (static/streams/format.js matches it)."""
    return ",.6~r" if decimals is None else f",.{decimals}f"


def tick_format(decimals: int | None) -> str:
    """The d3 format of value-axis ticks: thousands separated; Plotly picks the digits a tick
    step needs unless `decimals` fixes them."""
    return "," if decimals is None else f",.{decimals}f"


FILLS = {AreaFill.AXIS_MIN: "tozeroy", AreaFill.NEXT: "tonexty", AreaFill.ZERO: "tozeroy"}


def series_trace(*, name: str, chart_type: str, fill: str = AreaFill.AXIS_MIN) -> BaseTraceType:
    """One empty trace for a series, drawn the way the stream's chart type says. An area is
    filled towards zero with the value axis fitted to the values (the client keeps the axis at
    the values' own range, static/streams/axes.js fitValueAxis, so a price is not flattened),
    to the next trace, or to zero with the axis including zero."""
    if chart_type == Stream.ChartType.BAR:
        return go.Bar(name=name, x=[], y=[])
    if chart_type == Stream.ChartType.SCATTER:
        return go.Scatter(name=name, x=[], y=[], mode="markers", marker={"size": 6})
    if chart_type == Stream.ChartType.AREA:
        # The first trace has no trace before it: tonexty fills it to zero, as Plotly does.
        return go.Scatter(
            name=name, x=[], y=[], mode="lines", fill=FILLS.get(fill, "tozeroy"), line={"width": 1.5}
        )
    return go.Scatter(name=name, x=[], y=[], mode="lines", line={"width": 2})


def build_figure(stream: Stream) -> go.Figure:
    """The empty figure for a stream: one trace per known series, a date x axis."""
    chart_type = stream.chart_type
    fill = stream.area_fill
    traces = [series_trace(name=name, chart_type=chart_type, fill=fill) for name in stream.series_names]
    figure = go.Figure(data=traces)
    figure.update_layout(
        template=TEMPLATE,
        # A constant uirevision keeps the user's zoom and legend clicks across updates.
        uirevision=stream.slug,
        autosize=True,
        # r: room for half of the last time label, which is centred on its tick.
        margin={"l": 64, "r": 40, "t": 36, "b": 48},
        font={"family": FONT_FAMILY, "size": 13},
        hovermode="x unified",
        showlegend=True,
        legend={"orientation": "h", "x": 0, "y": 1.02, "xanchor": "left", "yanchor": "bottom"},
        bargap=0.1,
    )
    # Times arrive as ms since the epoch and are shifted to local wall time by the client.
    figure.update_xaxes(type="date", hoverformat="%Y-%m-%d %H:%M:%S", showspikes=False)
    figure.update_yaxes(
        title_text=y_axis_title(stream) or None,
        zeroline=False,
        tickformat=tick_format(stream.decimals),
        hoverformat=value_format(stream.decimals),
    )
    return figure


def fills_to_min(*, chart_type: str, fill: str) -> bool:
    """Whether the client keeps the value axis at the values' own range (an area's default fill)."""
    return chart_type == Stream.ChartType.AREA and fill == AreaFill.AXIS_MIN


def _plain(value: BaseTraceType | go.Figure) -> dict[str, Any]:
    # Through plotly's own encoder so the result is plain JSON types for json_script.
    return json.loads(value.to_json())


def figure_json(stream: Stream) -> dict[str, Any]:
    return _plain(build_figure(stream))


def new_trace_json(stream: Stream) -> dict[str, Any]:
    """The trace the client adds for a series the feed reveals later (name filled in there)."""
    return _plain(series_trace(name="", chart_type=stream.chart_type, fill=stream.area_fill))


# Dashboard panels -----------------------------------------------------------------------------

# r: room for half of the last time label, which is centred on its tick.
PANEL_MARGIN = {"l": 52, "r": 28, "t": 8, "b": 36}


def panel_decimals(panel: Panel, streams: list[Stream]) -> int | None:
    """The panel's decimals, else its first stream's."""
    if panel.decimals is not None:
        return panel.decimals
    return streams[0].decimals if streams else None


def trace_name(*, label: str, series: str) -> str:
    """A panel trace's name: the series, after its stream's label when the panel has several
    streams (static/streams/panel.js names traces of series that appear later the same way)."""
    return f"{label} · {series}" if label else series


def stream_labels(streams: list[Stream]) -> dict[str, str]:
    """Each stream's label in a panel's trace names: none for a single stream; the title, or the
    slug when two streams share a title."""
    if len(streams) < 2:
        return {stream.slug: "" for stream in streams}
    titles = [stream.title for stream in streams]
    return {
        stream.slug: stream.title if titles.count(stream.title) == 1 else stream.slug for stream in streams
    }


def panel_series(panel: Panel, stream: Stream) -> list[str]:
    """The series of `stream` a panel draws up front (more may appear with the data)."""
    known = stream.series_names
    if panel.series:
        return [panel.series]
    if panel.chart_type in Panel.SINGLE_SERIES:
        return known[:1]
    return known


def _shared_axis_title(streams: list[Stream]) -> str | None:
    """The y-axis title when every stream has the same one; else none (the legend tells them apart)."""
    titles = {y_axis_title(stream) for stream in streams}
    if len(titles) != 1:
        return None
    return titles.pop() or None


def _panel_layout(figure: go.Figure, panel: Panel, *, legend: bool) -> None:
    figure.update_layout(
        template=TEMPLATE,
        uirevision=f"panel-{panel.pk}",
        autosize=True,
        margin=PANEL_MARGIN,
        font={"family": FONT_FAMILY, "size": 12},
        showlegend=legend,
        legend={"orientation": "h", "x": 0, "y": 1.0, "xanchor": "left", "yanchor": "bottom"},
    )
    if legend:
        figure.update_layout(margin={**PANEL_MARGIN, "t": 28})


def build_panel_figure(panel: Panel, streams: list[Stream]) -> go.Figure:
    """The empty figure of a dashboard panel, drawn the panel's way; `streams` in panel order."""
    if panel.chart_type == Panel.ChartType.GAUGE:
        return _gauge_figure(panel, streams[0])
    if panel.chart_type == Panel.ChartType.CANDLESTICK:
        return _candlestick_figure(panel, streams[0])
    labels = stream_labels(streams)
    traces = [
        series_trace(
            name=trace_name(label=labels[stream.slug], series=name),
            chart_type=panel.chart_type,
            fill=panel.area_fill,
        )
        for stream in streams
        for name in panel_series(panel, stream)
    ]
    figure = go.Figure(data=traces)
    # Unknown series appear with the data: keep a legend for them unless one trace is certain.
    _panel_layout(figure, panel, legend=len(traces) != 1)
    figure.update_layout(hovermode="x unified", bargap=0.1)
    figure.update_xaxes(type="date", hoverformat="%Y-%m-%d %H:%M:%S", showspikes=False)
    decimals = panel_decimals(panel, streams)
    figure.update_yaxes(
        title_text=_shared_axis_title(streams),
        zeroline=False,
        tickformat=tick_format(decimals),
        hoverformat=value_format(decimals),
    )
    return figure


def _gauge_figure(panel: Panel, stream: Stream) -> go.Figure:
    """A dial when the panel has a range, else a big number with its change over the window.
    Value and reference are set by the client (Plotly.restyle) as points arrive."""
    unit = f" {stream.y_unit.strip()}" if stream.y_unit.strip() else ""
    dial = panel.gauge_min is not None and panel.gauge_max is not None
    indicator = go.Indicator(
        mode="gauge+number+delta" if dial else "number+delta",
        number={"valueformat": value_format(panel_decimals(panel, [stream])), "suffix": unit},
        delta={"valueformat": value_format(panel_decimals(panel, [stream])), "position": "bottom"},
        domain={"x": [0, 1], "y": [0, 1]},
    )
    if dial:
        indicator.gauge = {
            "axis": {"range": [panel.gauge_min, panel.gauge_max]},
            "bar": {"color": "#2563eb"},
            "bgcolor": "#f1f5f9",
            "borderwidth": 0,
        }
    figure = go.Figure(data=[indicator])
    _panel_layout(figure, panel, legend=False)
    # Room for the dial's end labels ("250" is drawn half outside the arc).
    figure.update_layout(margin={"l": 40, "r": 40, "t": 28 if dial else 8, "b": 8})
    return figure


def _candlestick_figure(panel: Panel, stream: Stream) -> go.Figure:
    """Candles the client builds from the stream's ticks, one per `candle_seconds`."""
    series = panel_series(panel, stream)
    name = series[0] if series else stream.title
    figure = go.Figure(data=[go.Candlestick(name=name, x=[], open=[], high=[], low=[], close=[])])
    _panel_layout(figure, panel, legend=False)
    figure.update_layout(hovermode="x")
    # A candlestick gets a range slider by default: no room for one in a panel.
    figure.update_xaxes(type="date", rangeslider={"visible": False}, hoverformat="%Y-%m-%d %H:%M:%S")
    decimals = panel_decimals(panel, [stream])
    figure.update_yaxes(
        title_text=y_axis_title(stream) or None,
        zeroline=False,
        tickformat=tick_format(decimals),
        hoverformat=value_format(decimals),
    )
    return figure


def panel_figure_json(panel: Panel, streams: list[Stream]) -> dict[str, Any]:
    return _plain(build_panel_figure(panel, streams))


def panel_new_trace_json(panel: Panel) -> dict[str, Any] | None:
    """The trace a line/area/scatter/bar panel adds for a series that appears later."""
    if panel.chart_type in Panel.SINGLE_SERIES:
        return None
    return _plain(series_trace(name="", chart_type=panel.chart_type, fill=panel.area_fill))

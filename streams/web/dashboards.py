"""A dashboard page: which panels a viewer sees, and what the browser needs to draw them.

Who may open the dashboard and which panels show is streams.access.rules's answer; this module only
assembles the page. Hidden panels are left out of the page entirely (not hidden by CSS), so
neither their titles nor their streams reach a viewer who may not see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch

from streams.access import rules as access
from streams.models import Dashboard, Panel, PanelStream, Stream
from streams.web import figures

# Candles kept per candlestick panel: enough for a day of 3-minute candles, few enough to redraw
# every frame.
MAX_CANDLES = 500


@dataclass
class PanelView:
    panel: Panel
    streams: list[Stream]

    @property
    def title(self) -> str:
        return self.panel.display_title(self.streams)

    @property
    def element_id(self) -> str:
        return f"panel-chart-{self.panel.pk}"


def panels_of(dashboard: Dashboard) -> list[Panel]:
    """The dashboard's panels in order, each with its streams (in order) prefetched."""
    links = PanelStream.objects.select_related("stream")
    return list(dashboard.panels.prefetch_related(Prefetch("links", queryset=links)))


def page_context(user: Any, dashboard: Dashboard, *, ws_path: str) -> dict[str, Any]:
    """The template context of a dashboard page `user` may open."""
    shown, hidden = access.visible_panels(user, panels_of(dashboard))
    views = [PanelView(panel=panel, streams=panel.ordered_streams()) for panel in shown]
    config = {
        "ws_path": ws_path,
        "plotly_config": figures.PLOTLY_CONFIG,
        "panels": [panel_config(view) for view in views],
    }
    return {"dashboard": dashboard, "panels": views, "hidden_count": hidden, "dashboard_config": config}


def panel_config(view: PanelView) -> dict[str, Any]:
    """What static/streams/dashboard.js needs for one panel besides the page's socket."""
    panel, streams = view.panel, view.streams
    labels = figures.stream_labels(streams)
    single = panel.chart_type in Panel.SINGLE_SERIES
    return {
        "id": panel.pk,
        "element": view.element_id,
        "chart_type": panel.chart_type,
        # Gauges and candlesticks: the one series (None: the first one the data brings).
        # Other charts: only this series when set.
        "series": panel.series
        or (next(iter(figures.panel_series(panel, streams[0])), None) if single else None),
        "streams": [
            {
                "slug": stream.slug,
                "label": labels[stream.slug],
                "window_points": stream.window_points,
                "window_seconds": stream.window_seconds,
            }
            for stream in streams
        ],
        # The stream and series of each trace the figure starts with, in trace order.
        "traces": []
        if single
        else [[stream.slug, name] for stream in streams for name in figures.panel_series(panel, stream)],
        "new_trace": figures.panel_new_trace_json(panel),
        "figure": figures.panel_figure_json(panel, streams),
        "decimals": figures.panel_decimals(panel, streams),
        "fill_to_min": figures.fills_to_min(chart_type=panel.chart_type, fill=panel.area_fill),
        "candle_ms": panel.candle_seconds * 1000,
        "max_candles": MAX_CANDLES,
    }


def visible_dashboards(user: Any) -> list[Dashboard]:
    """The dashboards `user` may open (whether any of their panels show is the page's business)."""
    return list(Dashboard.objects.visible_to(user))

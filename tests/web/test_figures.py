"""The stream page's initial Plotly figure, per chart type."""

from __future__ import annotations

import pytest

from streams.models import Stream
from streams.web.figures import build_figure, figure_json, fills_to_min, new_trace_json, y_axis_title


def stream_of(chart_type: str, *, series: list[str] | None = None, **fields: str) -> Stream:
    # Unsaved: a figure reads only the stream's own fields.
    return Stream(
        slug="boiler",
        title="Boiler",
        chart_type=chart_type,
        feed_settings={"series": series or ["flow", "return"]},
        **fields,
    )


@pytest.mark.parametrize(
    ("chart_type", "trace_type", "mode", "fill"),
    [
        ("line", "scatter", "lines", None),
        ("scatter", "scatter", "markers", None),
        ("bar", "bar", None, None),
        ("area", "scatter", "lines", "tozeroy"),
    ],
)
def test_chart_type_maps_to_traces(
    chart_type: str, trace_type: str, mode: str | None, fill: str | None
) -> None:
    data = figure_json(stream_of(chart_type))["data"]
    assert [trace["type"] for trace in data] == [trace_type, trace_type]
    assert [trace.get("mode") for trace in data] == [mode, mode]
    assert [trace.get("fill") for trace in data] == [fill, fill]


def test_one_trace_per_known_series_in_order() -> None:
    data = figure_json(stream_of("line", series=["a", "b", "c"]))["data"]
    assert [trace["name"] for trace in data] == ["a", "b", "c"]


def test_figure_carries_no_data_points() -> None:
    for chart_type in Stream.ChartType.values:
        for trace in figure_json(stream_of(chart_type))["data"]:
            assert trace["x"] == []
            assert trace["y"] == []


def test_x_axis_is_dates_and_zoom_survives_updates() -> None:
    layout = figure_json(stream_of("line"))["layout"]
    assert layout["xaxis"]["type"] == "date"
    assert layout["uirevision"] == "boiler"
    assert layout["autosize"] is True


def test_y_axis_title_carries_the_unit() -> None:
    layout = figure_json(stream_of("line", y_title="Temperature", y_unit="°C"))["layout"]
    assert layout["yaxis"]["title"]["text"] == "Temperature (°C)"


@pytest.mark.parametrize(
    ("title", "unit", "expected"),
    [("Temperature", "°C", "Temperature (°C)"), ("", "kW", "kW"), ("Load", "", "Load"), ("", "", "")],
)
def test_y_axis_title_forms(title: str, unit: str, expected: str) -> None:
    assert y_axis_title(stream_of("line", y_title=title, y_unit=unit)) == expected


def test_no_y_title_leaves_the_axis_untitled() -> None:
    assert build_figure(stream_of("line")).layout.yaxis.title.text is None


def test_uses_a_clean_template() -> None:
    layout = figure_json(stream_of("line"))["layout"]
    assert layout["template"]["layout"]["plot_bgcolor"] == "white"


def test_new_series_trace_matches_the_chart_type() -> None:
    assert new_trace_json(stream_of("area")) == {
        "type": "scatter",
        "mode": "lines",
        "fill": "tozeroy",
        "line": {"width": 1.5},
        "name": "",
        "x": [],
        "y": [],
    }
    assert new_trace_json(stream_of("bar"))["type"] == "bar"


# Numbers and fills ------------------------------------------------------------------------------


def test_values_are_thousands_separated_with_the_streams_decimals() -> None:
    yaxis = figure_json(stream_of("line", decimals=2))["layout"]["yaxis"]
    assert yaxis["tickformat"] == ",.2f"
    assert yaxis["hoverformat"] == ",.2f"


def test_without_decimals_ticks_pick_their_digits_and_hover_shows_six_significant() -> None:
    yaxis = figure_json(stream_of("line"))["layout"]["yaxis"]
    assert yaxis["tickformat"] == ","
    assert yaxis["hoverformat"] == ",.6~r"


@pytest.mark.parametrize(
    ("setting", "fill", "to_min"),
    [("", "tozeroy", True), ("next", "tonexty", False), ("zero", "tozeroy", False)],
)
def test_an_area_fills_to_the_axis_minimum_unless_told_otherwise(
    setting: str, fill: str, to_min: bool
) -> None:
    stream = stream_of("area", area_fill=setting)
    assert [trace["fill"] for trace in figure_json(stream)["data"]] == [fill, fill]
    assert new_trace_json(stream)["fill"] == fill
    # To the minimum: the client keeps the value axis at the values' range (axes.js fitValueAxis).
    assert fills_to_min(chart_type=stream.chart_type, fill=stream.area_fill) is to_min
    assert fills_to_min(chart_type="line", fill=setting) is False


def test_the_last_time_label_has_room_at_the_right_edge() -> None:
    # Half of "00:00:00" in 13 px type is about 26 px; the tick is centred on the label.
    assert figure_json(stream_of("line"))["layout"]["margin"]["r"] >= 36

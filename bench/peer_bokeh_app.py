"""The script `bokeh serve` runs for each session of the Bokeh peer (bench/peer_bokeh.py)."""

from __future__ import annotations

from bokeh.io import curdoc

from bench.peer_bokeh import build

build(curdoc())

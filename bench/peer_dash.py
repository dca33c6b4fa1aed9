"""Real peer for the peers bench: a Dash app, a live graph by `dcc.Interval` + `extendData`.

    PEER_REDIS_URL=... PEER_PREFIX=... PEER_INTERVAL_MS=1000 \
        gunicorn bench.peer_dash:server --workers 5 --bind 127.0.0.1:PORT

The pattern Dash's documentation shows for live updates (dash.plotly.com/live-updates, and
`extendData` in the dcc.Graph reference): a `dcc.Interval` fires every PEER_INTERVAL_MS in the
browser, its callback returns the points that arrived since the viewer's last one as
`extendData` for the graph (`maxPoints` keeps a window), and a `dcc.Store` in the page holds
where the viewer is (`{"stream": slug, "id": last Redis entry id}`), so any gunicorn worker
can answer any viewer: Dash callbacks must be stateless on the server. The points come from a
Redis stream per chart (bench/peer_feed.py XADDs one entry per 5 ms of points), the shared store a
Dash user deploying several workers needs. Served by gunicorn, as Dash's deployment docs
recommend (`server = app.server`); gunicorn's own docs suggest (2 x cores) + 1 sync workers.
"""

from __future__ import annotations

import os

import redis
from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from bench.peer_feed import WINDOW, points_of, stream_key

READ_LIMIT = (
    2_000  # entries (5 ms of points each) one callback reads at most: a viewer far behind catches up in steps
)


PREFIX = os.environ.get("PEER_PREFIX", "bench")
INTERVAL_MS = int(os.environ.get("PEER_INTERVAL_MS", "1000"))
store = redis.Redis.from_url(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))

# Dash turns its endpoints async (each request then runs an event loop through asgiref) when
# asgiref is importable, as it is here beside Django; a Dash app installed on its own has sync
# endpoints, the cheaper ones: those it gets.
app = Dash(__name__, use_async=False)
server = app.server
app.layout = html.Div(
    [
        dcc.Graph(id="graph", figure={"data": [{"x": [], "y": [], "type": "scatter", "mode": "lines"}]}),
        dcc.Interval(id="tick", interval=INTERVAL_MS),
        dcc.Store(id="last", data={"stream": "", "id": "0-0"}),
    ]
)


@server.get("/healthz")
def healthz() -> str:
    return "ok\n"


@app.callback(
    Output("graph", "extendData"),
    Output("last", "data"),
    Input("tick", "n_intervals"),
    State("last", "data"),
)
def extend(_: int | None, last: dict) -> tuple[list, dict]:
    """The points after the viewer's last, appended to its graph's one trace."""
    entries = store.xrange(stream_key(PREFIX, last["stream"]), min=f"({last['id']}", count=READ_LIMIT)
    if not entries:
        raise PreventUpdate  # nothing new: Dash answers 204 and the page keeps its figure
    xs, ys = points_of(entries)
    return [{"x": [xs], "y": [ys]}, [0], WINDOW], {"stream": last["stream"], "id": entries[-1][0].decode()}

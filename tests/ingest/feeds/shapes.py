"""Payload shapes real sources send, built by the tests that map them."""

from __future__ import annotations

from typing import Any

# 2023-12-01T14:30:00Z, a market's open: one-minute candles from here.
YAHOO_OPEN = 1_701_441_000


def yahoo_chart(start_minute: int, count: int, *, gaps: tuple[int, ...] = ()) -> dict[str, Any]:
    """Yahoo Finance's chart JSON (v8 /finance/chart/<symbol>?interval=1m): parallel arrays,
    `timestamp[]` beside `indicators.quote[0].open/high/low/close/volume[]`; a minute without
    trades is null in every quote array (`gaps`, as minutes)."""
    minutes = range(start_minute, start_minute + count)

    def column(base: float) -> list[float | None]:
        return [None if minute in gaps else round(base + minute * 0.25, 2) for minute in minutes]

    return {
        "chart": {
            "result": [
                {
                    "meta": {
                        "currency": "USD",
                        "symbol": "AAPL",
                        "exchangeName": "NMS",
                        "instrumentType": "EQUITY",
                        "regularMarketPrice": 191.24,
                        "gmtoffset": -18000,
                        "timezone": "EST",
                        "dataGranularity": "1m",
                        "range": "1d",
                    },
                    "timestamp": [YAHOO_OPEN + 60 * minute for minute in minutes],
                    "indicators": {
                        "quote": [
                            {
                                "open": column(190.0),
                                "high": column(190.5),
                                "low": column(189.5),
                                "close": column(190.1),
                                "volume": [None if m in gaps else 1000 + m for m in minutes],
                            }
                        ]
                    },
                }
            ],
            "error": None,
        }
    }


# The mapping docs/feeds/poll.md gives for it.
YAHOO_EXTRACT = {
    "records": "chart.result",
    "columns": {
        "t": "timestamp",
        "open": "indicators.quote[0].open",
        "high": "indicators.quote[0].high",
        "low": "indicators.quote[0].low",
        "close": "indicators.quote[0].close",
    },
    "time": "t",
    "values": {"open": "open", "high": "high", "low": "low", "close": "close"},
}

"""`marketpipe query` output for people: the book as a bid/ask ladder, candles as a table with a chart of
closes, account sections as tables, times in ISO-8601 UTC; `--json` keeps the endpoint's body as it is."""

from __future__ import annotations

import argparse
import io
import re

import pytest
from rich.console import Console

from marketpipe.query import query_url
from marketpipe.query_view import iso, render, sparkline

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds


def shown(what: str, body: dict) -> list[str]:  # type: ignore[type-arg]
    out = io.StringIO()
    render(what, body, Console(file=out, width=160, highlight=False, color_system=None))
    return [ln.rstrip() for ln in out.getvalue().splitlines()]


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split("[│┃]", line)]


def test_iso_reads_every_epoch_unit_as_utc() -> None:
    for value in (T0_US // 1_000_000, T0_US // 1000, T0_US, T0_US * 1000):
        assert iso(value) == "2026-01-01T00:00:00.000Z"
    assert iso(T0_US + 1_500) == "2026-01-01T00:00:00.001Z"
    assert iso(None) == ""


def test_book_is_a_ladder_best_first() -> None:
    body = {"venue": "drift", "market": "SOL-PERP", "in_sync": True, "crossed": False, "sequence": 7,
            "exchange_ts": T0_US, "receive_ts": T0_US + 2000,
            "bids": [{"price": "101.5", "size": "2"}, {"price": "101.4", "size": "0.25"}],
            "asks": [{"price": "101.6", "size": "1.000"}]}
    lines = shown("book", body)
    assert lines[0].startswith("drift:SOL-PERP") and "exchange_ts=2026-01-01T00:00:00.000Z" in lines[0]
    assert "receive_ts=2026-01-01T00:00:00.002Z" in lines[0]
    assert cells(lines[1]) == ["bid size", "bid", "ask", "ask size"]
    assert cells(lines[3]) == ["2", "101.5", "101.6", "1.000"]  # best first, on one row
    assert cells(lines[4]) == ["0.25", "101.4", "", ""]  # exact text, as the processors returned it


def test_candles_table_and_chart() -> None:
    minute = 60_000_000
    candles = [{"start_ts": T0_US + i * minute, "end_ts": T0_US + (i + 1) * minute, "open": o, "high": h, "low": lo,
                "close": c, "volume": "1.5", "trade_count": 3, "gap": False, "final": True}
               for i, (o, h, lo, c) in enumerate([("10", "12", "9", "11"), ("11", "15", "11", "15"),
                                                   ("15", "15", "8", "8")])]
    candles.append({"start_ts": T0_US + 3 * minute, "end_ts": T0_US + 4 * minute, "open": "0", "high": "0",
                    "low": "0", "close": "0", "volume": "0", "trade_count": 0, "gap": True, "final": True})
    lines = shown("candles", {"venue": "binance", "market": "BTC-USDT", "interval": "1m", "candles": candles})
    assert lines[0] == "binance:BTC-USDT  interval=1m  4 candles"
    rows = {cells(ln)[0]: cells(ln)[1:] for ln in lines if "│" in ln}
    assert rows["2026-01-01T00:01:00.000Z"] == ["11", "15", "11", "15", "1.5", "3", ""]
    assert rows["2026-01-01T00:03:00.000Z"][-1] == "gap"
    chart = next(ln for ln in lines if ln.startswith("close"))
    assert sparkline(["11", "15", "8"]) in chart and "(low 8, high 15)" in chart


def test_sparkline_scales_between_lowest_and_highest() -> None:
    assert sparkline(["1", "2", "3"]) == "▁▄█"
    assert sparkline(["5", "5"]) == "▅▅"
    assert sparkline([]) == ""


def test_fills_table_names_columns_and_times() -> None:
    body = {"venue": "okx", "account": "default", "updated_ts": T0_US, "gaps": {},
            "fills": [{"fill_id": "f1", "order_id": "o1", "market": "BTC-USDT", "side": "BUY", "price": "65000.1",
                       "size": "0.001", "fee": "0.01", "fee_asset": "USDT", "exchange_ts": T0_US}]}
    lines = shown("fills", body)
    assert lines[0].startswith("okx:default") and "updated_ts=2026-01-01T00:00:00.000Z" in lines[0]
    header = next(ln for ln in lines if "fill_id" in ln)
    row = next(ln for ln in lines if "f1" in ln)
    assert dict(zip(cells(header), cells(row), strict=True)) == {
        "fill_id": "f1", "order_id": "o1", "market": "BTC-USDT", "side": "BUY", "price": "65000.1", "size": "0.001",
        "fee": "0.01", "fee_asset": "USDT", "time (UTC)": "2026-01-01T00:00:00.000Z"}


def test_an_error_body_is_one_line() -> None:
    assert shown("book", {"error": "unknown market drift:NOPE"}) == ["error: unknown market drift:NOPE"]


@pytest.mark.parametrize(("what", "extra", "path"), [
    ("fills", {"limit": 5}, "/accounts/okx/default/fills?limit=5"),
    ("orders", {"status": "all"}, "/accounts/okx/default/orders?status=all"),
    ("candles", {"limit": 3, "interval": "5m"}, "/candles/okx/default/5m?limit=3"),
])
def test_query_urls(what: str, extra: dict, path: str) -> None:  # type: ignore[type-arg]
    args = argparse.Namespace(what=what, key="okx:default", url="http://h:1/", depth=None, interval="1m",
                              limit=None, status=None, json=False)
    for k, v in extra.items():
        setattr(args, k, v)
    assert query_url(args) == "http://h:1" + path


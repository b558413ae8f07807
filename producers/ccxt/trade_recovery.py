"""Trade ids that are consecutive per market, and how to fetch a missing range back over REST (public ccxt API).

Where a venue numbers the trades of a market 1, 2, 3... a hole in the ids is a hole in the stream, and the
venue's REST history can fill it:

- **Binance spot** (``aggTrade`` stream, ``a`` ids): ``GET /api/v3/aggTrades?fromId=`` through ccxt's
  ``fetch_trades(symbol, None, 1000, {"fromId": n})``, pages forward (``fromId`` inclusive, at most 1000).
  The producer watches ``<sym>@aggTrade`` (``watch_trades(..., {"name": "aggTrade"})``) because the ids of
  the ``@trade`` stream can only be replayed by ``historicalTrades``, which needs an API key.
- **OKX** (``trades`` channel, ``tradeId``): ``GET /api/v5/market/history-trades?after=`` through
  ``fetch_trades(symbol, None, 100, {"method": "publicGetMarketHistoryTrades", "after": id})``, pages
  backwards (``after``: records older than that tradeId, newest first, at most 100).

- **Kraken** (v2 ``trade`` channel, ``trade_id``): ``GET /0/public/Trades?since=`` through
  ``fetch_trades(symbol, None, 1000, {"since": ns})``, pages forward by time from the last published trade
  (``since`` is a nanosecond cursor, not an id; rows carry the ``trade_id``).

Other exchanges publish every trade ccxt parses (the tap, ``fence.py``) without hole detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def int_id(trade: dict[str, Any]) -> int | None:
    value = trade.get("id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Page:
    trades: list[dict[str, Any]]
    next_cursor: int | None  # None: nothing more to fetch in this direction


class TradeHistory:
    """One venue's REST replay of consecutive trade ids."""

    watch_params: dict[str, Any] = {}

    def __init__(self, exchange: Any, max_pages: int) -> None:
        self.exchange = exchange
        self.max_pages = max_pages

    async def fetch_range(self, symbol: str, after: int, before: int | None, *,
                          after_ts: int | None = None) -> list[dict[str, Any]]:
        """Trades with ``after < id < before`` (``before`` None: up to now), ascending, deduped. ``after_ts``:
        the exchange time (micros) of trade ``after``, for venues that page by time. Raises the ccxt error of a
        failed request; may return fewer than asked when the venue has no more."""
        raise NotImplementedError


class BinanceAggTrades(TradeHistory):
    watch_params = {"name": "aggTrade"}
    page_size = 1000

    async def fetch_range(self, symbol: str, after: int, before: int | None, *,
                          after_ts: int | None = None) -> list[dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        cursor = after + 1
        for _ in range(self.max_pages):
            if before is not None and cursor >= before:
                break
            page = await self.exchange.fetch_trades(symbol, None, self.page_size, {"fromId": cursor})
            ids = [(int_id(t), t) for t in page]
            for i, t in ids:
                if i is not None and i > after and (before is None or i < before):
                    out[i] = t
            highest = max((i for i, _ in ids if i is not None), default=None)
            if highest is None or highest < cursor or len(page) < self.page_size:
                break  # caught up with the venue (or it returned nothing usable)
            cursor = highest + 1
        return [out[i] for i in sorted(out)]


class OkxHistoryTrades(TradeHistory):
    page_size = 100

    async def fetch_range(self, symbol: str, after: int, before: int | None, *,
                          after_ts: int | None = None) -> list[dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        cursor = before
        for _ in range(self.max_pages):
            params: dict[str, Any] = {"method": "publicGetMarketHistoryTrades"}
            if cursor is not None:
                params["after"] = str(cursor)
            page = await self.exchange.fetch_trades(symbol, None, self.page_size, params)
            ids = [(int_id(t), t) for t in page]
            for i, t in ids:
                if i is not None and i > after and (before is None or i < before):
                    out[i] = t
            lowest = min((i for i, _ in ids if i is not None), default=None)
            if (lowest is None or lowest <= after + 1 or len(page) < self.page_size
                    or (cursor is not None and lowest >= cursor)):
                break
            cursor = lowest
        return [out[i] for i in sorted(out)]


class KrakenTrades(TradeHistory):
    """Kraken ``GET /0/public/Trades?pair=&since=&count=``: the trades after ``since`` (a nanosecond
    timestamp cursor), oldest first, at most ``count`` (1000); each row ends with its ``trade_id``, and the
    response's ``last`` is the cursor of the next page (ccxt appends it to the last row of the page)."""

    page_size = 1000

    async def fetch_range(self, symbol: str, after: int, before: int | None, *,
                          after_ts: int | None = None) -> list[dict[str, Any]]:
        if after_ts is None:
            raise ValueError("kraken trade recovery pages by time: the last trade's time is unknown")
        out: dict[int, dict[str, Any]] = {}
        cursor = str(max(after_ts - 1, 0) * 1000)  # micros -> the nanosecond cursor, just before trade `after`
        for _ in range(self.max_pages):
            page = await self.exchange.fetch_trades(symbol, None, self.page_size, {"since": cursor})
            for t in page:
                i = int_id(t)
                if i is not None and i > after and (before is None or i < before):
                    out[i] = t
            ids = [i for i in (int_id(t) for t in page) if i is not None]
            info = page[-1].get("info") if page else None
            next_cursor = str(info[7]) if isinstance(info, list) and len(info) > 7 else None
            if (len(page) < self.page_size or next_cursor is None or next_cursor == cursor
                    or (before is not None and ids and max(ids) >= before - 1)):
                break
            cursor = next_cursor
        return [out[i] for i in sorted(out)]


HISTORIES: dict[str, type[TradeHistory]] = {"binance": BinanceAggTrades, "okx": OkxHistoryTrades,
                                            "kraken": KrakenTrades}


def trade_history(exchange: Any, max_pages: int) -> TradeHistory | None:
    cls = HISTORIES.get(getattr(exchange, "id", ""))
    return cls(exchange, max_pages) if cls is not None else None

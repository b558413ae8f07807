"""Public market-data channels: trades (each once), ticker (on change), OHLCV candles (open and closed)."""

from __future__ import annotations

from typing import Any

from producers.ccxt import mapping
from producers.ccxt.exact import exact_text
from producers.ccxt.host import Body, ChannelHost, WatchedMarket
from producers.core.backoff import Backoff
from producers.core.numbers import now_micros


class MarketDataChannels(ChannelHost):
    def _trades_body(self, m: WatchedMarket) -> Body:
        name = f"trades:{m.market}"
        window = self.settings.trade_dedup_window

        async def body(backoff: Backoff) -> None:
            while True:
                trades = await self.exchange.watch_trades(m.symbol)
                self._got_data(name, "trades", backoff)
                receive_ts = now_micros()
                for t in trades:
                    trade_id = str(t.get("id"))
                    if trade_id in m.seen_trades:
                        self.metrics.inc("stale", "trades")
                        continue
                    try:
                        price, size = exact_text(t.get("price")), exact_text(t.get("amount"))
                        if price is None or size is None or t.get("id") is None:
                            raise ValueError("trade without id, price or amount")
                        await self._emitter().trade(
                            m.market, m.venue_symbol, trade_id=trade_id, price=price, size=size,
                            side=mapping.taker_side(t.get("side")),
                            exchange_ts=mapping.ms_to_micros(t.get("timestamp"), receive_ts), receive_ts=receive_ts)
                    except (ValueError, TypeError, KeyError) as exc:
                        self._malformed("trades", t.get("info", t), exc)
                        continue
                    m.seen_trades.add(trade_id)
                    m.trade_order.append(trade_id)
                    if len(m.trade_order) > window:
                        m.seen_trades.discard(m.trade_order.popleft())

        return body

    def _ticker_body(self, m: WatchedMarket) -> Body:
        name = f"ticker:{m.market}"

        async def body(backoff: Backoff) -> None:
            last: dict[str, Any] | None = None
            while True:
                t = await self.exchange.watch_ticker(m.symbol)
                self._got_data(name, "ticker", backoff)
                receive_ts = now_micros()
                try:
                    fields = mapping.ticker_fields(t)
                    if fields == last:
                        continue
                    await self._emitter().ticker(
                        m.market, m.venue_symbol, exchange_ts=mapping.ms_to_micros(t.get("timestamp"), receive_ts),
                        receive_ts=receive_ts, **fields)
                    last = fields
                except (ValueError, TypeError, KeyError) as exc:
                    self._malformed("ticker", t.get("info", t), exc)

        return body

    def _ohlcv_body(self, m: WatchedMarket, interval: str) -> Body:
        name = f"ohlcv:{m.market}:{interval}"
        interval_us = self.exchange.parse_timeframe(interval) * 1_000_000

        async def body(backoff: Backoff) -> None:
            current: tuple[Any, ...] | None = None  # the newest candle seen (frozen copy)
            published: tuple[Any, ...] | None = None
            while True:
                rows = await self.exchange.watch_ohlcv(m.symbol, interval)
                self._got_data(name, "ohlcv", backoff)
                receive_ts = now_micros()
                for row in sorted((tuple(r) for r in rows), key=lambda r: r[0]):
                    if current is not None and row[0] < current[0]:
                        continue  # a late update of an older candle: already published as closed
                    if current is not None and row[0] > current[0]:
                        await self._candle(m, interval, interval_us, current, True, receive_ts)
                    current = row
                if current is not None and current != published:
                    await self._candle(m, interval, interval_us, current, False, receive_ts)
                    published = current

        return body

    async def _candle(self, m: WatchedMarket, interval: str, interval_us: int, row: tuple[Any, ...], closed: bool,
                      receive_ts: int) -> None:
        try:
            start = int(row[0]) * 1000
            values = [exact_text(v) for v in row[1:6]]
            if any(v is None for v in values):
                raise ValueError("candle with missing values")
            o, h, lo, c, v = values
            await self._emitter().candle(m.market, m.venue_symbol, interval=interval, start_ts=start,
                                         end_ts=start + interval_us, open=o, high=h, low=lo, close=c, volume=v,
                                         closed=closed, exchange_ts=start, receive_ts=receive_ts)
        except (ValueError, TypeError, IndexError) as exc:
            self._malformed("ohlcv", row, exc)


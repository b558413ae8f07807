"""Public market-data channels: trades (each once, holes recovered or marked), ticker (on change), OHLCV candles."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import Gauge

from producers.ccxt import mapping
from producers.ccxt.coinbase import TRADE_SNAPSHOT_CHECKS, trade_snapshot_check
from producers.ccxt.exact import exact_text
from producers.ccxt.host import Body, ChannelHost, TapOverflow, TradeHole, WatchedMarket, watch_and_drain
from producers.ccxt.trade_recovery import TradeHistory, int_id, trade_history
from producers.core.backoff import Backoff
from producers.core.numbers import now_micros
from producers.core.resume import covered_through, newest_trades
from schemas.topics import market_key

log = logging.getLogger(__name__)

TAP_QUEUE = Gauge("marketpipe_ccxt_tap_queue_items", "Items ccxt parsed and the producer has not published yet "
                  "(when a drain starts; grows only while publishing blocks)", ["venue", "channel"])


class MarketDataChannels(ChannelHost):
    def _trades_body(self, m: WatchedMarket) -> Body:
        """Publish every trade ccxt parses for ``m`` (the tap's queue, not ccxt's ring), once, in order.

        ``watch_trades`` keeps the subscription alive and surfaces errors; the trades themselves come from
        ``m.trades``, fed by the tap as ccxt parses them (``fence.install_item_taps``), so a burst can
        no longer overwrite a trade before it is published. The queue is bounded only by back-pressure:
        it grows while ``publish`` blocks and is never overwritten. Where ids are consecutive
        (``trade_recovery.py``) a hole, and every reconnect, is recovered over REST before anything newer
        is published; what REST cannot return is marked with a gap marker. Where ids say nothing about
        holes (Bybit's UUIDs...), a restart after trades flowed publishes an open-ended gap marker
        (``reconnect``, one per hole however often the reconnect is retried): trades of the time the
        subscription was down may be missing, and the stream says so where they are. Not where the venue's
        resubscribe snapshot tells exactly whether trades are missing (Coinbase, ``coinbase.py``: then a
        ``snapshot-short`` marker, only when they may be).
        """
        name = f"trades:{m.market}"
        history = self._trade_history() if self.settings.trade_recovery else None
        watch_params = history.watch_params if history is not None else {}
        snapshot_checked = self.exchange.id in TRADE_SNAPSHOT_CHECKS

        async def body(backoff: Backoff) -> None:
            if history is not None and m.last_trade_id is not None:  # a reconnect: catch up over REST
                await self._recover_trades(m, history, m.last_trade_id, None, None, "reconnect")
            elif history is None and not snapshot_checked and m.trade_order \
                    and m.gap_marked_after != m.trade_order[-1]:
                await self._mark_open_trade_gap(m, "reconnect")  # a restart, ids without replay: once per hole
            await watch_and_drain(lambda: self.exchange.watch_trades(m.symbol, None, None, dict(watch_params)),
                                  m.trades, lambda: self._drain_trades(m, history),
                                  lambda: self._got_data(name, "trades", backoff))

        return body

    async def _drain_trades(self, m: WatchedMarket, history: TradeHistory | None) -> None:
        queue = m.trades.items
        TAP_QUEUE.labels(self.venue, "trades").set(len(queue))
        receive_ts = now_micros()
        while queue:
            t = queue.popleft()
            if isinstance(t, TradeHole):  # (before TapOverflow: a hole is one, refusing nothing)
                await self._publish_hole(m, t, receive_ts)
                continue
            if isinstance(t, TapOverflow):
                await self._after_trades_overflow(m, t, history, receive_ts)
                continue
            if history is None:
                await self._publish_unnumbered(m, t, receive_ts)
                continue
            tid = int_id(t)
            if tid is None:
                self._malformed("trades", t.get("info", t), ValueError("trade without an integer id"))
                continue
            last = m.last_trade_id
            if last is not None and tid <= last:
                self.metrics.inc("stale", "trades")  # a REST-recovered trade the wire delivers too
                continue
            if last is not None and tid > last + 1:
                await self._recover_trades(m, history, last, tid, t, "id_gap")
            await self._publish_numbered(m, t, tid, receive_ts)

    async def _after_trades_overflow(self, m: WatchedMarket, lost: TapOverflow, history: TradeHistory | None,
                                     receive_ts: int) -> None:
        """The tap refused ``lost.count`` trades here (its queue was full while publishing blocked): catch up
        over REST where ids are consecutive (the wire trades after this are then duplicates), else say so with
        a gap marker in their place."""
        self.metrics.inc("tap_overflows", "trades", lost.count)
        log.warning("%s %s: %d trades refused by a full tap queue (publishing blocked; limit %s): %s", self.venue,
                    m.market, lost.count, m.trades.limit, "recovering over REST" if history else "gap marker")
        if history is not None and m.last_trade_id is not None:
            await self._recover_trades(m, history, m.last_trade_id, None, None, "tap_overflow")
            return
        to_ts = mapping.ms_to_micros(lost.last_ms, receive_ts)
        await self._emitter().trade_gap(m.market, m.venue_symbol, reason="tap-overflow",
                                        from_ts=min(mapping.ms_to_micros(lost.first_ms, receive_ts), to_ts),
                                        to_ts=to_ts, receive_ts=receive_ts, missing_count=lost.count)

    async def _publish_hole(self, m: WatchedMarket, hole: TradeHole, receive_ts: int) -> None:
        """A venue check found trades may be missing here (``TradeHole``): a gap marker, in place."""
        to_ts = mapping.ms_to_micros(hole.to_ms, receive_ts)
        from_ts = min(mapping.ms_to_micros(hole.from_ms, to_ts), to_ts)
        await self._emitter().trade_gap(m.market, m.venue_symbol, reason=hole.reason, from_ts=from_ts, to_ts=to_ts,
                                        receive_ts=receive_ts, after_id=hole.after_id, before_id=hole.before_id)
        log.warning("%s %s: trades after %s up to %s may be missing (%s): gap marker published", self.venue,
                    m.market, hole.after_id, hole.before_id, hole.reason)

    async def _recover_trades(self, m: WatchedMarket, history: TradeHistory, after: int, before: int | None,
                              next_trade: dict[str, Any] | None, reason: str) -> None:
        """Fill ``after < id < before`` over REST, publish in order; mark with a gap marker what REST could
        not return (``before`` None, a reconnect: catch up to now; nothing to mark yet, the next wire trade
        shows whether a hole is left)."""
        s = self.settings
        got: list[dict[str, Any]] = []
        error: BaseException | None = None
        delay = s.trade_recovery_retry_delay
        for attempt in range(s.trade_recovery_attempts):
            try:
                got = await history.fetch_range(m.symbol, after, before, after_ts=m.last_trade_ts)
                error = None
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a ccxt error (rate limit, network): retried, then marked
                error = exc
                self._count_error("trades_recovery", exc)
                log.warning("%s %s: trade recovery of ids (%s, %s) failed (attempt %d/%d: %s: %s)", self.venue,
                            m.market, after, before, attempt + 1, s.trade_recovery_attempts, type(exc).__name__, exc)
                if attempt + 1 < s.trade_recovery_attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
        receive_ts = now_micros()
        recovered = 0
        for t in got:
            tid = int_id(t)
            if tid is None or tid <= (m.last_trade_id or after):
                continue
            if tid > (m.last_trade_id if m.last_trade_id is not None else after) + 1:
                await self._mark_trade_gap(m, tid, t, reason, receive_ts)
            if await self._publish_numbered(m, t, tid, receive_ts):
                recovered += 1
        if recovered:
            self.metrics.inc("recovered", "trades", recovered)
            log.info("%s %s: recovered %d trades over REST after %s (ids %s..%s)", self.venue, m.market,
                     recovered, reason, after + 1, m.last_trade_id)
        if before is not None and next_trade is not None and m.last_trade_id is not None \
                and before > m.last_trade_id + 1:
            await self._mark_trade_gap(m, before, next_trade, reason if error is None else f"{reason}_unrecovered",
                                       receive_ts)

    async def _mark_trade_gap(self, m: WatchedMarket, before: int, next_trade: dict[str, Any], reason: str,
                              receive_ts: int) -> None:
        """Trades ``m.last_trade_id < id < before`` are missing and could not be recovered: say so, in place."""
        after = m.last_trade_id
        assert after is not None
        to_ts = mapping.ms_to_micros(next_trade.get("timestamp"), receive_ts)
        missing = before - after - 1
        await self._emitter().trade_gap(m.market, m.venue_symbol, reason=reason,
                                        from_ts=m.last_trade_ts if m.last_trade_ts is not None else to_ts,
                                        to_ts=to_ts, receive_ts=receive_ts, after_id=str(after),
                                        before_id=str(before), missing_count=missing)
        log.warning("%s %s: %d trades (ids %d..%d) could not be recovered (%s): gap marker published",
                    self.venue, m.market, missing, after + 1, before - 1, reason)
        m.last_trade_id = before - 1

    async def _mark_open_trade_gap(self, m: WatchedMarket, reason: str) -> None:
        """Trades after the last published one may be missing, up to now (ids cannot tell how many)."""
        receive_ts = now_micros()
        after = m.trade_order[-1]
        await self._emitter().trade_gap(m.market, m.venue_symbol, reason=reason,
                                        from_ts=m.last_trade_ts if m.last_trade_ts is not None else receive_ts,
                                        to_ts=receive_ts, receive_ts=receive_ts, after_id=after)
        m.gap_marked_after = after
        log.warning("%s %s: trades after %s may be missing (%s, no replayable ids): gap marker published",
                    self.venue, m.market, after, reason)

    async def _publish_numbered(self, m: WatchedMarket, t: dict[str, Any], tid: int, receive_ts: int) -> bool:
        if await self._publish_trade(m, t, str(tid), receive_ts):
            m.last_trade_id = tid
            m.last_trade_ts = mapping.ms_to_micros(t.get("timestamp"), receive_ts)
            return True
        m.last_trade_id = tid  # malformed (counted, logged): its id is used up, no hole to recover
        return False

    async def _publish_unnumbered(self, m: WatchedMarket, t: dict[str, Any], receive_ts: int) -> None:
        trade_id = str(t.get("id"))
        if trade_id in m.seen_trades:
            self.metrics.inc("stale", "trades")
            return
        if await self._publish_trade(m, t, trade_id, receive_ts):
            m.seen_trades.add(trade_id)
            m.trade_order.append(trade_id)
            m.last_trade_ts = mapping.ms_to_micros(t.get("timestamp"), receive_ts)
            if len(m.trade_order) > self.settings.trade_dedup_window:
                m.seen_trades.discard(m.trade_order.popleft())

    async def _publish_trade(self, m: WatchedMarket, t: dict[str, Any], trade_id: str, receive_ts: int) -> bool:
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
            return False
        return True

    async def _resume_trades(self, markets: list[WatchedMarket]) -> None:
        """Consecutive-id venues: each market's trades start from its newest trade in Kafka (a restart is a
        reconnect: the first connection catches up over REST from there, see ``_trades_body``). Venues whose
        trades snapshot is checked (Coinbase, ``coinbase.py``): the check starts from that trade."""
        s = self.settings
        snapshots = trade_snapshot_check(self.exchange)
        if (not s.trade_resume_scan_max or "trades" not in s.channels or self.publisher is None
                or self.registry is None
                or (snapshots is None and (not s.trade_recovery or self._trade_history() is None))):
            return
        keys = {market_key(self.venue, m.market): m for m in markets}
        try:
            newest = await newest_trades(s, self.registry, self.publisher, list(keys), scan_max=s.trade_resume_scan_max)
        except Exception as exc:  # Kafka or the registry away at start: go on as a first start would, loudly
            self.metrics.inc("resume_failed", "trades")
            log.warning("%s: could not read the newest trades back from Kafka (%s: %s): trades made while the "
                        "producer was away can be neither recovered nor marked", self.venue, type(exc).__name__, exc)
            return
        for key, event in newest.items():
            if snapshots is not None:
                if event.get("gap") is None:  # a marker's window says nothing about the newest trade
                    m = keys[key]
                    snapshots.seed(m.venue_symbol, event["trade_id"], event["exchange_ts"] // 1000)
                    m.seen_trades.add(event["trade_id"])
                    m.trade_order.append(event["trade_id"])
                    log.info("%s %s: trades resume after %s (newest in Kafka)", self.venue, m.market,
                             event["trade_id"])
                continue
            point = covered_through(event, _int_or_none)
            if point is not None:
                m = keys[key]
                m.last_trade_id, m.last_trade_ts = point
                log.info("%s %s: trades resume after id %d (newest in Kafka)", self.venue, m.market, point[0])

    def _trade_history(self) -> TradeHistory | None:
        return trade_history(self.exchange, self.settings.trade_recovery_max_pages)

    def _ticker_body(self, m: WatchedMarket) -> Body:
        name = f"ticker:{m.market}"

        async def body(backoff: Backoff) -> None:
            last: dict[str, Any] | None = None
            while True:
                t = await self.exchange.watch_ticker(m.symbol)
                self._got_data(name, "ticker", backoff)
                receive_ts = now_micros()
                try:
                    fields: dict[str, Any] = mapping.ticker_fields(t)
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



def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None

"""TradeTape: one RabbitX market's trades, published once each, in venue id order, holes filled or marked.

RabbitX trade ids are ``<market>-<n>`` with ``n`` consecutive per market (``BTC-USD-13230788``), so a hole
is visible as soon as a trade arrives whose number is more than one past the last one published: in the
live stream, and after every reconnect (the ``trade:`` subscribe reply holds only the last few hundred
trades, compared here with the last trade published before the connection was lost).

For a hole ``(after, before)`` the tape:

1. asks ``recover(after, before)`` (the REST trade history) for the missing rows;
2. publishes, in number order, the recovered trades (counted as ``recovered``) and, for every run of
   numbers the history no longer holds, exactly one gap marker (``EventEmitter.trade_gap`` with
   ``after_id``/``before_id``/``missing_count``; counted as ``gap_markers``/``missing_events``). The
   marker's reason: ``history-exhausted`` (older than the venue's retained history),
   ``recovery-page-limit`` (beyond ``trade_recovery_max_pages``), ``recovery-failed`` (REST errors);
3. then goes on with the trade that revealed the hole.

Numbers at or below the last published one are duplicates (snapshots repeat recent trades) and are
skipped. ``last`` advances only after the event is in the publisher's buffer (``publish`` either buffers
the event or, cancelled, does not: nothing is half-published), so a reader cancelled anywhere (a lost
connection while Kafka back-pressure blocks it) leaves the tape exactly at the last published trade and
the next reconnect finds the hole again. A malformed row in the REST history is counted as a parse error
and left to the marker (it cannot block the tape: the marker moves past it). Ids that are not ``<market>-<n>`` are published with a bounded
id set for duplicates (no hole detection possible for them).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from producers.core.emitter import EventEmitter
from producers.core.metrics import FeedMetrics
from producers.core.numbers import decimal_text, to_micros
from producers.rabbitx.normalize import trade_side
from producers.rabbitx.trade_history import HistoryWindow, trade_number

log = logging.getLogger(__name__)

Recover = Callable[[str, int, int], Awaitable[HistoryWindow]]


class TradeTape:
    def __init__(self, venue_symbol: str, market: str, emitter: EventEmitter, metrics: FeedMetrics,
                 recover: Recover, *, dedup_window: int = 50_000) -> None:
        self.venue_symbol = venue_symbol
        self.market = market
        self.emitter = emitter
        self.metrics = metrics
        self.recover = recover
        self.channel = f"trade:{venue_symbol}"
        self.last: int | None = None  # number of the last trade published (or covered by a marker)
        self.last_id: str | None = None
        self.last_ts: int | None = None
        self.prefix = venue_symbol
        self.holes = 0
        self._unnumbered: OrderedDict[str, None] = OrderedDict()
        self._dedup_window = dedup_window

    async def accept(self, trades: list[dict[str, Any]], receive_ts: int) -> None:
        """A subscribe reply or a push: every trade not yet published, in number order."""
        numbered: list[tuple[int, dict[str, Any]]] = []
        for t in trades:
            parsed = trade_number(t["id"])
            if parsed is None:
                await self._publish_unnumbered(t, receive_ts)
            else:
                self.prefix = parsed[0]
                numbered.append((parsed[1], t))
        numbered.sort(key=lambda p: p[0])
        for n, t in numbered:
            last = self.last
            if last is not None and n <= last:
                self.metrics.inc("duplicates", self.channel)
                continue
            if last is not None and n > last + 1:
                await self._fill(last, n, t, receive_ts)
            await self._publish(n, t, receive_ts)

    # -- holes ---------------------------------------------------------------------------------------
    async def _fill(self, after: int, before: int, before_trade: dict[str, Any], receive_ts: int) -> None:
        missing = before - after - 1
        self.holes += 1
        self.metrics.inc("trade_holes", self.channel)
        reason = "history-exhausted"
        try:
            window = await self.recover(self.venue_symbol, after, before)
        except Exception as exc:  # REST down or refusing: what is missing is marked, the feed goes on
            log.warning("rabbitx: %s: recovering trades %s..%s over REST failed: %r", self.market, after + 1,
                        before - 1, exc)
            window = HistoryWindow(error=f"{type(exc).__name__}: {exc}")
        if window.error is not None:
            reason = "recovery-failed"
        elif window.page_limited and not window.complete:
            reason = "recovery-page-limit"
        log.info("rabbitx: %s: hole of %d trades after %s: %d recovered over REST (%d pages)", self.market,
                 missing, self._id(after), len(window.rows), window.pages)
        before_ts = to_micros(before_trade["timestamp"])
        expected = after + 1
        for n in sorted(window.rows):
            row = window.rows[n]
            if not self._usable(row):
                continue  # malformed in the history too: covered by the marker before the next one
            if n > expected:
                await self._mark(expected - 1, n, to_micros(row["timestamp"]), reason, receive_ts)
            await self._publish(n, row, receive_ts)
            self.metrics.inc("recovered", self.channel)
            expected = n + 1
        if expected < before:
            await self._mark(expected - 1, before, before_ts, reason, receive_ts)

    async def _mark(self, after: int, before: int, to_ts: int, reason: str, receive_ts: int) -> None:
        """One gap marker for the numbers strictly between ``after`` and ``before``."""
        count = before - after - 1
        from_ts = self.last_ts if self.last_ts is not None else to_ts
        log.warning("rabbitx: %s: %d trades between %s and %s are no longer in the venue's history: "
                    "gap marker published", self.market, count, self._id(after), self._id(before))
        await self.emitter.trade_gap(self.market, self.venue_symbol, reason=reason, from_ts=min(from_ts, to_ts),
                                     to_ts=to_ts, receive_ts=receive_ts, after_id=self._id(after),
                                     before_id=self._id(before), missing_count=count, channel=self.channel)
        self.last = before - 1  # covered: the marker stands for these numbers
        self.last_id = self._id(before - 1)

    def _usable(self, row: dict[str, Any]) -> bool:
        """A REST row that normalizes (else counted as a parse error, logged, and left to a marker)."""
        try:
            to_micros(row["timestamp"])
            decimal_text(row["price"])
            decimal_text(row["size"])
            trade_side(row)
        except Exception as exc:
            self.metrics.inc("parse_errors", self.channel)
            log.warning("rabbitx: %s: malformed trade in the REST history skipped (%s: %s): %.200r", self.market,
                        type(exc).__name__, exc, row)
            return False
        return True

    # -- publishing ------------------------------------------------------------------------------------
    def _id(self, n: int) -> str:
        return f"{self.prefix}-{n}"

    async def _publish(self, n: int, t: dict[str, Any], receive_ts: int) -> None:
        exchange_ts = to_micros(t["timestamp"])
        await self._emit(t, exchange_ts, receive_ts)
        self.last = n  # only once the event is buffered (see the module docstring)
        self.last_id = str(t["id"])
        self.last_ts = exchange_ts

    async def _publish_unnumbered(self, t: dict[str, Any], receive_ts: int) -> None:
        trade_id = str(t["id"])
        if trade_id in self._unnumbered:
            self.metrics.inc("duplicates", self.channel)
            return
        await self._emit(t, to_micros(t["timestamp"]), receive_ts)
        self._unnumbered[trade_id] = None
        if len(self._unnumbered) > self._dedup_window:
            self._unnumbered.popitem(last=False)

    async def _emit(self, t: dict[str, Any], exchange_ts: int, receive_ts: int) -> None:
        await self.emitter.trade(self.market, self.venue_symbol, trade_id=str(t["id"]), price=t["price"],
                                 size=t["size"], side=trade_side(t), exchange_ts=exchange_ts,
                                 receive_ts=receive_ts, liquidation=t.get("liquidation"), channel=self.channel)

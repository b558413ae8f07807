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

Order of operations: the hole is filled by a *filler task*, not in the socket reader. From the trade that
revealed the hole on, this market's trades are held in arrival order (up to ``held_max``; beyond that the
reader waits for the filler, which is back-pressure again, not loss) and published by the filler after
the recovered ones. So the reader keeps reading (pings answered, other channels flowing, subscribe
replies confirmed) while REST pages are walked, and per-market order is kept.

Numbers at or below the last published one are duplicates (snapshots repeat recent trades) and are
skipped. ``last`` advances only after the event is in the publisher's buffer (``publish`` either buffers
the event or, cancelled, does not: nothing is half-published), so a task cancelled anywhere (a lost
connection while Kafka back-pressure blocks the reader) leaves the tape exactly at the last published
trade and the next trade (or resubscribe reply) finds the hole again. Trades are checked before they are
held: a float price raises ``InexactNumber`` so the core re-reads the message exactly; a malformed trade
is counted as a parse error and skipped (if it was real, its number is a hole: recovered or marked). A
malformed row in the REST history is likewise left to the marker. Ids that are not ``<market>-<n>`` are
published with a bounded id set for duplicates (no hole detection possible for them).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from producers.core.emitter import EventEmitter
from producers.core.errors import InexactNumber
from producers.core.metrics import FeedMetrics
from producers.core.numbers import decimal_text, to_micros
from producers.core.resume import covered_through
from producers.rabbitx.normalize import trade_side
from producers.rabbitx.trade_history import HistoryWindow, trade_number

log = logging.getLogger(__name__)

Recover = Callable[[str, int, int], Awaitable[HistoryWindow]]


class TradeTape:
    def __init__(self, venue_symbol: str, market: str, emitter: EventEmitter, metrics: FeedMetrics,
                 recover: Recover, *, dedup_window: int = 50_000, held_max: int = 100_000) -> None:
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
        self.held_max = held_max
        self._held: deque[tuple[dict[str, Any], int]] = deque()  # (trade, receive_ts) behind a hole
        self._filler: asyncio.Task[None] | None = None

    def resume(self, event: dict[str, Any]) -> bool:
        """Start from the newest event this market has in Kafka (a trade or a gap marker, read back at start-up
        by ``producers.core.resume``): trades up to it are duplicates, a hole after it is recovered or marked.
        False (nothing changed) for an id that is not ``<market>-<n>``."""
        gap = event.get("gap")
        parsed = trade_number(str(gap["before_id"] if gap else event["trade_id"]))
        point = covered_through(event, lambda text: n[1] if (n := trade_number(text)) else None)
        if parsed is None or point is None:
            return False
        self.prefix = parsed[0]
        self.last, self.last_ts = point
        self.last_id = self._id(self.last)
        return True

    @property
    def filling(self) -> bool:
        return self._filler is not None

    async def accept(self, trades: list[dict[str, Any]], receive_ts: int) -> None:
        """A subscribe reply or a push (called by the reader): every trade not yet published, in number order;
        a hole hands the rest to the filler task."""
        checked = [(t, receive_ts) for t in trades if self._valid(t)]
        if self._filler is not None:
            self._held.extend(checked)
            if len(self._held) > self.held_max:
                await asyncio.shield(self._filler)  # back-pressure; a cancelled reader leaves the filler running
            return
        await self._process(checked, inline=False)

    async def settled(self) -> None:
        """Wait until no hole is being filled (the held trades are published)."""
        while self._filler is not None:
            await asyncio.gather(asyncio.shield(self._filler), return_exceptions=True)

    async def close(self, timeout: float) -> None:
        """Feed shutdown: let a running filler publish what it holds for up to ``timeout`` s, then stop it."""
        filler = self._filler
        if filler is None:
            return
        try:
            await asyncio.wait_for(self.settled(), timeout)
        except TimeoutError:
            log.warning("rabbitx: %s: stopping with a trade hole still being filled (%d trades held, last "
                        "published %s)", self.market, len(self._held), self.last_id)
            filler.cancel()
            await asyncio.gather(filler, return_exceptions=True)

    async def _process(self, items: list[tuple[dict[str, Any], int]], *, inline: bool) -> None:
        numbered: list[tuple[int, dict[str, Any], int]] = []
        for t, rts in items:
            parsed = trade_number(t["id"])
            if parsed is None:
                await self._publish_unnumbered(t, rts)
            else:
                self.prefix = parsed[0]
                numbered.append((parsed[1], t, rts))
        numbered.sort(key=lambda p: p[0])
        for k, (n, t, rts) in enumerate(numbered):
            last = self.last
            if last is not None and n <= last:
                self.metrics.inc("duplicates", self.channel)
                continue
            if last is not None and n > last + 1:
                if not inline:  # hand the hole and what follows to the filler; the reader goes on reading
                    self._held.extend((t2, r2) for _, t2, r2 in numbered[k:])
                    self._filler = asyncio.get_running_loop().create_task(
                        self._run_filler(last, n, t, rts), name=f"rabbitx-trade-filler-{self.venue_symbol}")
                    return
                await self._fill(last, n, t, rts)
            await self._publish(n, t, rts)

    async def _run_filler(self, after: int, before: int, before_trade: dict[str, Any], receive_ts: int) -> None:
        try:
            await self._fill(after, before, before_trade, receive_ts)
            while self._held:
                batch = list(self._held)
                self._held.clear()
                await self._process(batch, inline=True)
        except Exception:  # not a data problem (those are counted per trade): the held trades become a hole
            log.exception("rabbitx: %s: filling a trade hole failed; the next trade finds it again", self.market)
            self.metrics.inc("trade_fill_errors", self.channel)
            self._held.clear()
        finally:
            self._filler = None

    def _valid(self, t: dict[str, Any]) -> bool:
        try:
            str(t["id"])
            to_micros(t["timestamp"])
            decimal_text(t["price"])
            decimal_text(t["size"])
            trade_side(t)
        except InexactNumber:
            raise  # the core re-reads the message with exact numbers
        except Exception as exc:
            self.metrics.inc("parse_errors", self.channel)
            log.warning("rabbitx: %s: malformed trade skipped (%s: %s): %.200r", self.market, type(exc).__name__,
                        exc, t)
            return False
        return True

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
        log.warning("rabbitx: %s: %d trades between %s and %s could not be recovered (%s): gap marker published",
                    self.market, count, self._id(after), self._id(before), reason)
        await self.emitter.trade_gap(self.market, self.venue_symbol, reason=reason, from_ts=min(from_ts, to_ts),
                                     to_ts=to_ts, receive_ts=receive_ts, after_id=self._id(after),
                                     before_id=self._id(before), missing_count=count, channel=self.channel)
        self.last = before - 1  # covered: the marker stands for these numbers
        self.last_id = self._id(before - 1)

    def _usable(self, row: dict[str, Any]) -> bool:
        """A REST row that normalizes (else counted as a parse error, logged, and left to a marker)."""
        try:
            return self._valid(row)
        except InexactNumber:  # cannot happen with loads_exact; treated as malformed all the same
            self.metrics.inc("parse_errors", self.channel)
            return False

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

"""BookSynchronizer: one market's L2 book kept in sync from a snapshot + absolute-size deltas.

Rules (Hummingbot / tardis style, and what venues.md asks for):

- Before the first snapshot (and while a resync is in flight) deltas are **buffered** (bounded:
  ``buffer_max``; the oldest are dropped, a later gap check catches any loss).
- ``snapshot()`` replaces the book. If downstream already had a book for this market and no RESET was
  published since, a **RESET** BookUpdate (with ``reason``) goes out first, then the SNAPSHOT, then the
  buffered deltas newer than the snapshot are replayed; older ones (``seq <= snapshot seq``) are
  dropped and counted as ``stale``.
- ``delta()`` with a sequence: ``seq <= last`` -> dropped (``stale``); a gap (``seq != last + 1``, or
  ``prev_sequence != last`` when the venue gives one; with ``contiguous=False`` only ``prev_sequence``
  is checked) -> ``gaps`` +1, RESET(reason="gap") published, the delta buffered, and the venue's
  ``resync`` callback started (REST snapshot or resubscribe; it must end by calling ``snapshot()``).
- Sizes are absolute; size 0 deletes the level (published as ``"0"``). Prices are ``Decimal`` keys in
  ``SortedDict``s, so a delta costs O(levels changed * log depth). Published text is the venue's own.
- After every update the book is checked for crossing (best bid >= best ask): ``crossed`` +1 and, with
  ``on_crossed="resync"`` (default), the crossed update is not published: RESET(reason="crossed") +
  resync instead; ``"count"`` only counts and publishes (venues that legitimately show crossed levels).
- ``reset(reason)`` (e.g. on disconnect) publishes RESET and waits for the next snapshot without asking
  for a resync (the resubscribe after reconnect brings one). ``invalidate(reason)`` does the same and
  asks for a resync (e.g. a checksum mismatch computed by the venue module).

Event ids are deterministic: DELTA ``<venue>:<market>:book:D:<seq>``, RESET ``...:R:<last seq>:<reason>``,
SNAPSHOT ``...:S:<seq>:<reset id>``; without venue sequences, ids come from the content.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sortedcontainers import SortedDict

from producers.core.metrics import FeedMetrics
from producers.core.numbers import content_id, decimal_text, now_micros, stable_id

log = logging.getLogger(__name__)

Level = tuple[Decimal, Decimal, str, str]  # price, size, price text, size text
BookSink = Callable[[dict[str, Any]], Awaitable[None]]
Resync = Callable[["BookSynchronizer", str], Awaitable[None]]
ZERO = Decimal(0)


def parse_levels(levels: Iterable[Sequence[Any]]) -> list[Level]:
    """[(price, size), ...] with str/int/Decimal values -> parsed levels. Raises before any state change."""
    out: list[Level] = []
    for level in levels:
        ptext, stext = level[0], level[1]
        if type(ptext) is str and type(stext) is str:  # the venue's decimal text: the common, fast case
            try:
                price, size = Decimal(ptext), Decimal(stext)
            except InvalidOperation:
                raise ValueError(f"not a decimal level: {level!r}") from None
            if not (price.is_finite() and size.is_finite()):
                raise ValueError(f"not a finite level: {level!r}")
        else:
            ptext, stext = decimal_text(ptext), decimal_text(stext)
            price, size = Decimal(ptext), Decimal(stext)
        if size <= ZERO:
            if size < ZERO:
                raise ValueError(f"negative size {stext!r} at price {ptext!r}")
            stext = "0"
        out.append((price, size, ptext, stext))
    return out


class OrderBook:
    """Bids and asks as SortedDict[Decimal price] -> (Decimal size, price text, size text)."""

    __slots__ = ("bids", "asks", "_bid_prices", "_ask_prices")

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        self._bid_prices = self.bids.keys()  # live sorted views: O(1) best-level reads
        self._ask_prices = self.asks.keys()

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    @staticmethod
    def _apply(side: SortedDict, levels: list[Level]) -> None:
        for price, size, ptext, stext in levels:
            if size == ZERO:
                side.pop(price, None)
            else:
                side[price] = (size, ptext, stext)

    def apply(self, bids: list[Level], asks: list[Level]) -> None:
        self._apply(self.bids, bids)
        self._apply(self.asks, asks)

    def best_bid(self) -> Decimal | None:
        return self._bid_prices[-1] if self.bids else None

    def best_ask(self) -> Decimal | None:
        return self._ask_prices[0] if self.asks else None

    def crossed(self) -> bool:
        return bool(self.bids) and bool(self.asks) and self._bid_prices[-1] >= self._ask_prices[0]

    def levels(self, side: Literal["bids", "asks"]) -> list[dict[str, str]]:
        """Best first: bids descending, asks ascending."""
        book = self.bids if side == "bids" else self.asks
        values = reversed(book.values()) if side == "bids" else book.values()
        return [{"price": p, "size": s} for _, p, s in values]

    def as_dict(self) -> dict[str, dict[Decimal, Decimal]]:
        return {"bids": {p: v[0] for p, v in self.bids.items()}, "asks": {p: v[0] for p, v in self.asks.items()}}


class _Delta:
    __slots__ = ("bids", "asks", "sequence", "prev_sequence", "exchange_ts", "receive_ts", "checksum")

    def __init__(self, bids: list[Level], asks: list[Level], sequence: int | None, prev_sequence: int | None,
                 exchange_ts: int, receive_ts: int, checksum: int | None) -> None:
        self.bids = bids
        self.asks = asks
        self.sequence = sequence
        self.prev_sequence = prev_sequence
        self.exchange_ts = exchange_ts
        self.receive_ts = receive_ts
        self.checksum = checksum


class BookSynchronizer:
    def __init__(self, venue: str, market: str, venue_symbol: str, *, publish: BookSink, metrics: FeedMetrics,
                 resync: Resync | None = None, channel: str = "book", contiguous: bool = True,
                 on_crossed: Literal["resync", "count"] = "resync", buffer_max: int = 10_000,
                 resync_retry_delay: float = 1.0, resync_attempts: int = 5,
                 resync_min_interval: float = 0.5) -> None:
        self.venue = venue
        self.market = market
        self.venue_symbol = venue_symbol
        self.channel = channel
        self.book = OrderBook()
        self.synced = False
        self.last_sequence: int | None = None
        self.contiguous = contiguous
        self.on_crossed = on_crossed
        self._publish = publish
        self._metrics = metrics
        self._resync = resync
        self._buffer: deque[_Delta] = deque(maxlen=buffer_max)
        self._downstream_has_book = False  # a SNAPSHOT went out and no RESET since
        self._reset_token = "0"
        self._resync_task: asyncio.Task[None] | None = None
        self._resync_retry_delay = resync_retry_delay
        self._resync_attempts = resync_attempts
        self._resync_min_interval = resync_min_interval  # resync storms (a venue keeps failing) are paced
        self._last_resync = -1e9
        self._last_exchange_ts = 0
        self._lock = asyncio.Lock()  # a REST resync task and the reader may both call in
        self._id_prefix = stable_id(venue, market, "book", "")  # "<venue>:<market>:book:"

    # -- inputs --------------------------------------------------------------------------------------
    async def snapshot(self, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]], *,
                       sequence: int | None = None, exchange_ts: int, receive_ts: int,
                       checksum: int | None = None, reason: str = "resync") -> None:
        """Replace the book; publishes RESET first when downstream holds an older book."""
        pb, pa = parse_levels(bids), parse_levels(asks)
        async with self._lock:
            await self._snapshot(pb, pa, sequence, exchange_ts, receive_ts, checksum, reason)

    async def _snapshot(self, pb: list[Level], pa: list[Level], sequence: int | None, exchange_ts: int,
                        receive_ts: int, checksum: int | None, reason: str) -> None:
        if self._downstream_has_book:
            await self._publish_reset(reason, receive_ts)
        self.book.clear()
        self.book.apply(pb, pa)
        self.last_sequence = sequence
        self._last_exchange_ts = exchange_ts
        if self._crossed_after_update():  # a crossed snapshot is not published: ask for another one
            self.synced = False
            self._start_resync("crossed")
            return
        self.synced = True
        record = self._record("SNAPSHOT", exchange_ts, receive_ts, sequence, None, checksum,
                              self.book.levels("bids"), self.book.levels("asks"))
        if sequence is not None:
            record["event_id"] = stable_id(self.venue, self.market, "book", "S", sequence, self._reset_token)
        else:
            record["event_id"] = content_id(stable_id(self.venue, self.market, "book", "S"), record)
        await self._publish(record)
        self._downstream_has_book = True
        await self._replay_buffer()

    async def delta(self, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]], *,
                    sequence: int | None = None, prev_sequence: int | None = None, exchange_ts: int,
                    receive_ts: int, checksum: int | None = None) -> None:
        pb, pa = parse_levels(bids), parse_levels(asks)
        async with self._lock:
            if not self.synced:
                self._buffer.append(_Delta(pb, pa, sequence, prev_sequence, exchange_ts, receive_ts, checksum))
                return
            await self._apply_delta(pb, pa, sequence, prev_sequence, exchange_ts, receive_ts, checksum)

    async def reset(self, reason: str, receive_ts: int | None = None) -> None:
        """Forget the book and wait for the next snapshot (no resync request)."""
        async with self._lock:
            self.synced = False
            self._buffer.clear()
            if self._downstream_has_book:
                await self._publish_reset(reason, receive_ts or now_micros())

    async def invalidate(self, reason: str, receive_ts: int | None = None) -> None:
        """Forget the book, publish RESET, and ask the venue for a new snapshot."""
        async with self._lock:
            await self._invalidate(reason, receive_ts)

    async def _invalidate(self, reason: str, receive_ts: int | None = None) -> None:
        self.synced = False
        if self._downstream_has_book:
            await self._publish_reset(reason, receive_ts or now_micros())
        self._start_resync(reason)

    async def close(self) -> None:
        if self._resync_task is not None and not self._resync_task.done():
            self._resync_task.cancel()
            await asyncio.gather(self._resync_task, return_exceptions=True)

    # -- internals ---------------------------------------------------------------------------------------
    async def _apply_delta(self, bids: list[Level], asks: list[Level], seq: int | None, prev: int | None,
                           exchange_ts: int, receive_ts: int, checksum: int | None) -> None:
        last = self.last_sequence
        if seq is not None and last is not None:
            if seq <= last:
                self._metrics.inc("stale", self.channel)
                return
            if (prev is not None and prev != last) or (prev is None and self.contiguous and seq != last + 1):
                self._metrics.inc("gaps", self.channel)
                log.warning("%s %s: sequence gap, have %s, got %s (prev %s): resync",
                            self.venue, self.market, last, seq, prev)
                self._buffer.append(_Delta(bids, asks, seq, prev, exchange_ts, receive_ts, checksum))
                await self._invalidate("gap", receive_ts)
                return
        self.book.apply(bids, asks)
        if self._crossed_after_update():  # never publish a crossed book: RESET and resync instead
            await self._invalidate("crossed", receive_ts)
            return
        self.last_sequence = seq if seq is not None else last
        self._last_exchange_ts = exchange_ts
        if prev is None and seq is not None:
            prev = last
        record = {
            "event_id": "", "venue": self.venue, "market": self.market, "venue_symbol": self.venue_symbol,
            "exchange_ts": exchange_ts, "receive_ts": receive_ts, "kind": "DELTA", "sequence": seq,
            "prev_sequence": prev, "checksum": checksum,
            "bids": [{"price": p, "size": s} for _, _, p, s in bids],
            "asks": [{"price": p, "size": s} for _, _, p, s in asks], "reason": None,
        }
        if seq is not None:
            record["event_id"] = f"{self._id_prefix}D:{seq}"
        else:
            record["event_id"] = content_id(stable_id(self.venue, self.market, "book", "D"), record)
        await self._publish(record)

    def _crossed_after_update(self) -> bool:
        """Counts a crossed book; True when the policy says invalidate + resync."""
        if not self.book.crossed():
            return False
        self._metrics.inc("crossed", self.channel)
        log.warning("%s %s: crossed book (bid %s >= ask %s)", self.venue, self.market,
                    self.book.best_bid(), self.book.best_ask())
        return self.on_crossed == "resync"

    async def _replay_buffer(self) -> None:
        while self._buffer and self.synced:
            d = self._buffer.popleft()
            await self._apply_delta(d.bids, d.asks, d.sequence, d.prev_sequence, d.exchange_ts, d.receive_ts,
                                    d.checksum)

    async def _publish_reset(self, reason: str, receive_ts: int) -> None:
        basis = self.last_sequence if self.last_sequence is not None else receive_ts
        self._reset_token = f"{basis}-{reason}"
        record = self._record("RESET", self._last_exchange_ts or receive_ts, receive_ts, self.last_sequence, None,
                              None, [], [])
        record["reason"] = reason
        record["event_id"] = stable_id(self.venue, self.market, "book", "R", basis, reason)
        self._downstream_has_book = False
        await self._publish(record)

    def _start_resync(self, reason: str) -> None:
        if self._resync is None:
            return
        if self._resync_task is not None and not self._resync_task.done():
            return
        self._metrics.inc("resyncs", self.channel)
        self._resync_task = asyncio.get_running_loop().create_task(self._run_resync(reason))

    async def _run_resync(self, reason: str) -> None:
        assert self._resync is not None
        loop = asyncio.get_running_loop()
        wait = self._last_resync + self._resync_min_interval - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_resync = loop.time()
        for attempt in range(1, self._resync_attempts + 1):
            try:
                await self._resync(self, reason)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s %s: resync attempt %d failed: %s", self.venue, self.market, attempt, exc)
                await asyncio.sleep(self._resync_retry_delay * attempt)
        log.error("%s %s: resync gave up after %d attempts; book stays unsynced until reconnect",
                  self.venue, self.market, self._resync_attempts)

    def _record(self, kind: str, exchange_ts: int, receive_ts: int, sequence: int | None, prev: int | None,
                checksum: int | None, bids: list[dict[str, str]], asks: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "event_id": "", "venue": self.venue, "market": self.market, "venue_symbol": self.venue_symbol,
            "exchange_ts": exchange_ts, "receive_ts": receive_ts, "kind": kind, "sequence": sequence,
            "prev_sequence": prev, "checksum": checksum, "bids": bids, "asks": asks, "reason": None,
        }

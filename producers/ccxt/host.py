"""What the channel mixins (book, market data, account) need from the feed; ``CcxtFeed`` provides it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from producers.ccxt.settings import CcxtSettings
from producers.core.backoff import Backoff
from producers.core.emitter import EventEmitter
from producers.core.metrics import FeedMetrics
from producers.publisher import KafkaPublisher
from schemas.registry import ContractRegistry

Body = Callable[[Backoff], Awaitable[None]]  # one supervised watch loop


@dataclass
class TapOverflow:
    """Stands in a full TapQueue for the items it had to refuse, in their place: how many, and the venue
    times (ms) and ids of the first and last."""

    count: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    first_id: str | None = None
    last_id: str | None = None

    def add(self, item: dict[str, Any]) -> None:
        ts, tid = item.get("timestamp"), item.get("id")
        if self.count == 0:
            self.first_ms, self.first_id = ts if isinstance(ts, int) else None, None if tid is None else str(tid)
        self.count += 1
        self.last_ms, self.last_id = ts if isinstance(ts, int) else self.last_ms, None if tid is None else str(tid)


@dataclass
class TradeHole(TapOverflow):
    """Put in a market's trade queue, in place, by a venue check that knows trades may be missing there
    (Coinbase: a ``market_trades`` snapshot that no longer reaches back to the newest trade seen); the
    drain publishes it as a gap marker. A TapOverflow only so queues keep one item type: nothing was
    refused (``count`` 0). Venue times in ms, ids as the venue spells them."""

    reason: str = "hole"
    from_ms: int | None = None
    to_ms: int | None = None
    after_id: str | None = None
    before_id: str | None = None


@dataclass
class TapQueue:
    """Items a ccxt tap handed over (``fence.install_item_taps``), in parse order, until published.

    The tap runs inside ccxt's socket reader, which cannot be made to wait: while publishing blocks (Kafka
    away) the queue grows. With a ``limit`` it stops growing there: an item that finds it full is refused,
    and a ``TapOverflow`` in its place counts it (and every refused item after it, until there is room
    again), so the drain knows exactly where items are missing and recovers or marks them."""

    items: deque[dict[str, Any] | TapOverflow] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    limit: int | None = None
    refused: int = 0

    def put(self, item: dict[str, Any]) -> None:
        items = self.items
        if self.limit is not None and len(items) >= self.limit:
            last = items[-1] if items else None
            if not isinstance(last, TapOverflow):
                last = TapOverflow()
                items.append(last)
            last.add(item)
            self.refused += 1
        else:
            items.append(item)
        self.arrived.set()

    def put_hole(self, hole: TradeHole) -> None:
        """In order with the items; never refused (it is what a consumer must see)."""
        self.items.append(hole)
        self.arrived.set()


async def watch_and_drain(watch: Callable[[], Awaitable[Any]], queue: TapQueue,
                          drain: Callable[[], Awaitable[None]], on_data: Callable[[], None]) -> None:
    """Keep one ``watch_*`` call pending (subscription alive, errors raised here) and drain ``queue``
    whenever the tap fills it, whether or not the watch call has returned."""
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(watch())
            if not queue.items:
                queue.arrived.clear()
                arrived = asyncio.ensure_future(queue.arrived.wait())
                try:
                    await asyncio.wait((pending, arrived), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    arrived.cancel()
            if pending.done():
                done, pending = pending, None
                done.result()  # a ccxt error: the supervisor classifies, backs off, reconnects
                on_data()
            await drain()
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


@dataclass
class WatchedMarket:
    symbol: str  # ccxt unified symbol
    market: str  # normalized id
    venue_symbol: str  # the exchange's id
    seen_trades: set[str] = field(default_factory=set)  # exchanges without consecutive ids: recent ids
    trade_order: deque[str] = field(default_factory=deque)
    # every trade ccxt parses for this market, in order, until published (fed by the tap, see fence.py)
    trades: TapQueue = field(default_factory=lambda: TapQueue())
    last_trade_id: int | None = None  # consecutive-id venues: the newest id published (or marked)
    last_trade_ts: int | None = None  # its exchange time, micros
    gap_marked_after: str | None = None  # venues without replayable ids: the trade an open gap marker follows


class ChannelHost:
    venue: str
    settings: CcxtSettings
    exchange: Any
    metrics: FeedMetrics
    publisher: KafkaPublisher | None
    registry: ContractRegistry | None
    resets: dict[str, int]
    _checksum_failed: set[str]

    def _got_data(self, name: str, channel: str, backoff: Backoff) -> None:
        raise NotImplementedError

    def _malformed(self, channel: str, item: Any, exc: BaseException) -> None:
        raise NotImplementedError

    def _count_error(self, channel: str, exc: BaseException) -> None:
        raise NotImplementedError

    def _emitter(self) -> EventEmitter:
        raise NotImplementedError

"""EconiaBooks: L2 books per market, derived from the order events (Econia's WS has no book channel).

- Baseline: the open orders of PostgREST ``/limit_orders`` read between two identical head keys (so the
  snapshot is consistent with event key ``H``), published as SNAPSHOT with sequence ``H``; the market's
  ``floor`` is ``H`` (older events are already in it).
- Then every event with key > ``floor`` changes one level: ``place_limit_order_event`` adds the posted size,
  ``change_order_size_event`` adds ``new - old``, ``cancel_order_event`` removes the order's remaining size,
  and a fill (once per fill, from the maker copy) removes ``size`` from the maker's level.
- Changes are collected per transaction and published by ``commit`` as ONE DELTA per market and transaction
  (absolute level sizes, "0" deletes), so consumers never see a state between two events of one
  transaction (an Econia limit order that crosses the spread is placed first and fills after: in between,
  the book would look crossed).
- The venue has no book sequence; ``sequence`` is the last event key of the transaction packed as
  ``txn_version << 20 | event_idx << 4``, so ids stay deterministic and increase with the chain; the low 4
  bits number corrections published after that key (below).
- A **late** event (older than what was published) is applied in place when the per-order model allows:
  the level of an order is the sum of its own events, so an event on order X commutes with every event on
  other orders; it can be applied now if no newer event of X was applied (a place of an order never seen,
  a fill/change/cancel of an order still resting whose last applied event is older). It is published by
  ``commit_late`` as a DELTA numbered ``last sequence + 1`` (a correction slot: never a real key's number).
  Otherwise (X already closed, or seen only through newer events) the market is resynchronized.
- An event the local model cannot apply (an unknown order, a level going negative) marks the market
  ``broken``: the feed then resynchronizes it (RESET + SNAPSHOT from REST) instead of publishing a state it
  knows to be wrong. A crossed result does the same (``on_crossed="resync"``): an Econia book cannot cross
  on chain, so a crossed derived book is our error, never the venue's.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from producers.core.book import BookSink, BookSynchronizer
from producers.core.metrics import FeedMetrics
from producers.econia.units import MarketParams

ASK = True
Key = tuple[int, int]
BookResync = Callable[[BookSynchronizer, str], Awaitable[None]]


CORRECTIONS = 0xF  # late corrections that fit after one key's sequence


def book_sequence(txn_version: int, event_idx: int) -> int:
    return (max(txn_version, 0) << 20) | (min(max(event_idx, 0), 0xFFFF) << 4)


class EconiaBooks:
    def __init__(self, venue: str, publish: BookSink, metrics: FeedMetrics, resync: BookResync | None = None) -> None:
        self.venue = venue
        self._publish = publish
        self._metrics = metrics
        self._resync = resync
        self.orders: dict[tuple[int, int], list[Any]] = {}  # (market, order) -> [side, price, lots, last key]
        self.closed: OrderedDict[tuple[int, int], Key] = OrderedDict()  # orders gone from the book -> last key
        self.levels: dict[int, dict[bool, dict[int, int]]] = defaultdict(lambda: {True: {}, False: {}})
        self.syncs: dict[int, BookSynchronizer] = {}
        self.floors: dict[int, Key] = {}  # per market: snapshot version, older events are already in it
        self.broken: set[int] = set()  # markets whose local model failed: resync before publishing again
        self.unknown_orders = 0
        self.negative_levels = 0
        self.late_applied = 0  # late events applied in place (no resync needed)
        self.closed_memory = 200_000
        self.deltas_published = 0
        self._pending: dict[int, tuple[MarketParams, set[tuple[bool, int]], int, int]] = {}

    def sync_of(self, m: MarketParams) -> BookSynchronizer:
        sync = self.syncs.get(m.market_id)
        if sync is None:
            sync = self.syncs[m.market_id] = BookSynchronizer(
                self.venue, m.market, m.venue_symbol, publish=self._publish, metrics=self._metrics,
                resync=self._resync, channel="book", contiguous=False, on_crossed="resync")
        return sync

    @property
    def floor(self) -> Key | None:
        return min(self.floors.values()) if self.floors else None

    async def snapshot(self, markets: dict[int, MarketParams], open_orders: list[dict[str, Any]],
                       version: Key, receive_ts: int, reason: str = "resync") -> None:
        """Replace the books of ``markets`` with the open orders read at ``version``."""
        for key in [k for k in self.orders if k[0] in markets]:
            del self.orders[key]
        for mid in markets:
            self.levels.pop(mid, None)
            self._pending.pop(mid, None)
            self.broken.discard(mid)
        for row in open_orders:
            mid, remaining = int(row["market_id"]), int(row["remaining_size"])
            if mid not in markets or remaining <= 0 or row.get("order_status") != "open":
                continue
            side = row["direction"] in ("ask", "sell")
            price = int(row["price"])
            self.orders[(mid, int(row["order_id"]))] = [side, price, remaining, version]
            side_levels = self.levels[mid][side]
            side_levels[price] = side_levels.get(price, 0) + remaining
        for mid, m in markets.items():
            self.floors[mid] = version
            lv = self.levels[mid]
            sync = self.sync_of(m)
            await sync.snapshot(self._text(m, lv[False]), self._text(m, lv[True]),
                                sequence=book_sequence(*version), exchange_ts=receive_ts, receive_ts=receive_ts,
                                reason=reason)
            if not sync.synced:  # refused (crossed): still to be resynced
                self.broken.add(mid)

    async def new_market(self, m: MarketParams, key: Key, receive_ts: int) -> None:
        """A market registered after the baseline starts with an empty book."""
        if m.market_id not in self.syncs:
            self.floors[m.market_id] = key
            await self.sync_of(m).snapshot([], [], sequence=book_sequence(*key), exchange_ts=receive_ts,
                                           receive_ts=receive_ts, reason="resync")

    @staticmethod
    def _text(m: MarketParams, side: dict[int, int]) -> list[tuple[str, str]]:
        return [(m.price_text(p)[0], m.size_text(q)) for p, q in side.items()]

    def covers(self, market_id: int, key: Key) -> bool:
        """True when the event is newer than the market's baseline (and so must change its book)."""
        floor = self.floors.get(market_id)
        return floor is not None and key > floor and market_id not in self.broken

    def _change(self, m: MarketParams, side: bool, price: int, lots: int, exchange_ts: int, rts: int) -> None:
        side_levels = self.levels[m.market_id][side]
        total = side_levels.get(price, 0) + lots
        if total < 0:
            self.negative_levels += 1
            self.broken.add(m.market_id)
            return
        if total == 0:
            side_levels.pop(price, None)
        else:
            side_levels[price] = total
        pending = self._pending.get(m.market_id)
        if pending is None:
            self._pending[m.market_id] = (m, {(side, price)}, exchange_ts, rts)
        else:
            pending[1].add((side, price))
            self._pending[m.market_id] = (m, pending[1], max(pending[2], exchange_ts), rts)

    def _unknown(self, m: MarketParams) -> None:
        self.unknown_orders += 1
        self.broken.add(m.market_id)

    async def commit(self, key: Key) -> None:
        """Publish one DELTA per market touched by the transaction that ended with ``key``."""
        pending, self._pending = self._pending, {}
        for mid, (m, touched, ts, rts) in pending.items():
            if mid in self.broken:
                continue
            side_levels = self.levels[mid]
            bids = [(m.price_text(p)[0], m.size_text(side_levels[False].get(p, 0))) for s, p in touched if s is not ASK]
            asks = [(m.price_text(p)[0], m.size_text(side_levels[True].get(p, 0))) for s, p in touched if s is ASK]
            await self.sync_of(m).delta(bids, asks, sequence=book_sequence(*key), exchange_ts=ts, receive_ts=rts)
            self.deltas_published += 1

    async def commit_late(self) -> None:
        """Publish the changes of late events applied in place: one DELTA per market, numbered in the
        correction slot after the last published sequence (resync when the slots are used up)."""
        pending, self._pending = self._pending, {}
        for mid, (m, touched, ts, rts) in pending.items():
            sync = self.sync_of(m)
            last = sync.last_sequence
            if mid in self.broken or last is None or not sync.synced or last & CORRECTIONS == CORRECTIONS:
                self.broken.add(mid)
                continue
            side_levels = self.levels[mid]
            bids = [(m.price_text(p)[0], m.size_text(side_levels[False].get(p, 0))) for s, p in touched if s is not ASK]
            asks = [(m.price_text(p)[0], m.size_text(side_levels[True].get(p, 0))) for s, p in touched if s is ASK]
            await sync.delta(bids, asks, sequence=last + 1, exchange_ts=ts, receive_ts=rts)
            self.deltas_published += 1

    def apply(self, channel: str, m: MarketParams, row: dict[str, Any], key: Key, ts: int, rts: int, *,
              late: bool = False) -> None:
        """One event on the book. In order, an unknown order breaks the market; ``late``, the event is applied
        only where the order model allows it (see the module doc), else the market is broken (resync)."""
        oid = (m.market_id, int(row["maker_order_id" if channel == "fill_event" else "order_id"]))
        order = self.orders.get(oid)
        if channel == "place_limit_order_event":
            if late and (order is not None or oid in self.closed):
                self.broken.add(m.market_id)  # newer events of this order went out before its place
                return
            size = int(row["size"])
            if size <= 0:
                self._close(oid, key)  # filled or cancelled at once: nothing rests
                return
            side, price = bool(row["side"]), int(row["price"])
            self.orders[oid] = [side, price, size, key]
            self._change(m, side, price, size, ts, rts)
        elif order is None or (late and order[3] is not None and order[3] > key):
            self._unknown(m)
            return
        elif channel == "change_order_size_event":
            new = int(row["new_size"])
            diff, order[2], order[3] = new - order[2], new, key
            self._change(m, order[0], order[1], diff, ts, rts)
        elif channel == "cancel_order_event":
            del self.orders[oid]
            self._close(oid, key)
            self._change(m, order[0], order[1], -order[2], ts, rts)
        else:  # fill_event (the maker copy): the maker's resting size shrinks
            size = int(row["size"])
            order[2] -= size
            order[3] = key
            if order[2] <= 0:
                del self.orders[oid]
                self._close(oid, key)
            self._change(m, order[0], int(row["price"]), -size, ts, rts)
        if late:
            self.late_applied += 1

    def _close(self, oid: tuple[int, int], key: Key) -> None:
        self.closed[oid] = key
        if len(self.closed) > self.closed_memory:
            self.closed.popitem(last=False)

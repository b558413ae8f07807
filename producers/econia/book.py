"""EconiaBooks: L2 books per market, derived from the order events (Econia's WS has no book channel).

- Baseline: the open orders of PostgREST ``/limit_orders`` read between two identical head keys (so the
  snapshot is consistent with event key ``H``), published as SNAPSHOT with sequence ``H``.
- Then every event with key > ``H`` changes one level: ``place_limit_order_event`` adds the posted size,
  ``change_order_size_event`` adds ``new - old``, ``cancel_order_event`` removes the order's remaining size,
  and a fill (once per fill, from the maker copy) removes ``size`` from the maker's level. Published as
  DELTA through the shared ``BookSynchronizer`` (absolute level sizes, "0" deletes).
- The venue has no book sequence; ``sequence`` is the event key packed as ``txn_version << 16 | event_idx``,
  so ids stay deterministic and increase with the chain. Backfill after a reconnect replays the missed
  events, so a reconnect needs no RESET.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from producers.core.book import BookSink, BookSynchronizer
from producers.core.metrics import FeedMetrics
from producers.econia.units import MarketParams

ASK = True


def book_sequence(txn_version: int, event_idx: int) -> int:
    return (max(txn_version, 0) << 16) | max(event_idx, 0)


class EconiaBooks:
    def __init__(self, venue: str, publish: BookSink, metrics: FeedMetrics) -> None:
        self.venue = venue
        self._publish = publish
        self._metrics = metrics
        self.orders: dict[tuple[int, int], list[Any]] = {}  # (market, order) -> [side, price ticks, lots]
        self.levels: dict[int, dict[bool, dict[int, int]]] = defaultdict(lambda: {True: {}, False: {}})
        self.syncs: dict[int, BookSynchronizer] = {}
        self.floor: tuple[int, int] | None = None  # snapshot version: older events are already in it
        self.unknown_orders = 0

    def _sync(self, m: MarketParams) -> BookSynchronizer:
        sync = self.syncs.get(m.market_id)
        if sync is None:
            sync = self.syncs[m.market_id] = BookSynchronizer(
                self.venue, m.market, m.venue_symbol, publish=self._publish, metrics=self._metrics,
                channel="book", contiguous=False, on_crossed="count")
        return sync

    async def snapshot(self, markets: dict[int, MarketParams], open_orders: list[dict[str, Any]],
                       version: tuple[int, int], receive_ts: int) -> None:
        self.orders.clear()
        self.levels.clear()
        for row in open_orders:
            mid, remaining = int(row["market_id"]), int(row["remaining_size"])
            if mid not in markets or remaining <= 0 or row.get("order_status") != "open":
                continue
            side = row["direction"] in ("ask", "sell")
            price = int(row["price"])
            self.orders[(mid, int(row["order_id"]))] = [side, price, remaining]
            side_levels = self.levels[mid][side]
            side_levels[price] = side_levels.get(price, 0) + remaining
        self.floor = version
        for mid, m in markets.items():
            lv = self.levels[mid]
            await self._sync(m).snapshot(self._text(m, lv[False]), self._text(m, lv[True]),
                                         sequence=book_sequence(*version), exchange_ts=receive_ts,
                                         receive_ts=receive_ts, reason="resync")

    async def new_market(self, m: MarketParams, key: tuple[int, int], receive_ts: int) -> None:
        """A market registered after the baseline starts with an empty book."""
        if m.market_id not in self.syncs:
            await self._sync(m).snapshot([], [], sequence=book_sequence(*key), exchange_ts=receive_ts,
                                         receive_ts=receive_ts, reason="resync")

    @staticmethod
    def _text(m: MarketParams, side: dict[int, int]) -> list[tuple[str, str]]:
        return [(m.price_text(p)[0], m.size_text(q)) for p, q in side.items()]

    def covers(self, key: tuple[int, int]) -> bool:
        """True when the event is newer than the baseline (and so must change the book)."""
        return self.floor is not None and key > self.floor

    async def _change(self, m: MarketParams, side: bool, price: int, lots: int, key: tuple[int, int],
                      exchange_ts: int, receive_ts: int) -> None:
        side_levels = self.levels[m.market_id][side]
        total = side_levels.get(price, 0) + lots
        if total < 0:
            raise ValueError(f"econia book {m.market}: level {price} would go negative ({total})")
        if total == 0:
            side_levels.pop(price, None)
        else:
            side_levels[price] = total
        level = [(m.price_text(price)[0], m.size_text(total))]
        await self._sync(m).delta(level if side is not ASK else [], level if side is ASK else [],
                                  sequence=book_sequence(*key), exchange_ts=exchange_ts, receive_ts=receive_ts)

    async def place(self, m: MarketParams, row: dict[str, Any], key: tuple[int, int], ts: int, rts: int) -> None:
        size = int(row["size"])
        if size <= 0:
            return  # filled or cancelled at once: nothing rests
        side, price = bool(row["side"]), int(row["price"])
        self.orders[(m.market_id, int(row["order_id"]))] = [side, price, size]
        await self._change(m, side, price, size, key, ts, rts)

    async def change(self, m: MarketParams, row: dict[str, Any], key: tuple[int, int], ts: int, rts: int) -> None:
        order = self.orders.get((m.market_id, int(row["order_id"])))
        if order is None:
            self.unknown_orders += 1
            return
        new = int(row["new_size"])
        diff, order[2] = new - order[2], new
        await self._change(m, order[0], order[1], diff, key, ts, rts)

    async def cancel(self, m: MarketParams, row: dict[str, Any], key: tuple[int, int], ts: int, rts: int) -> None:
        order = self.orders.pop((m.market_id, int(row["order_id"])), None)
        if order is None:
            self.unknown_orders += 1
            return
        await self._change(m, order[0], order[1], -order[2], key, ts, rts)

    async def fill(self, m: MarketParams, row: dict[str, Any], key: tuple[int, int], ts: int, rts: int) -> None:
        oid = (m.market_id, int(row["maker_order_id"]))
        order = self.orders.get(oid)
        if order is None:
            self.unknown_orders += 1
            return
        size = int(row["size"])
        order[2] -= size
        if order[2] <= 0:
            del self.orders[oid]
        await self._change(m, order[0], int(row["price"]), -size, key, ts, rts)

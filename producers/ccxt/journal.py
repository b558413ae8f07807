"""Journaled ccxt order books: ccxt keeps maintaining the book, we learn exactly which levels it touched.

ccxt.pro hands back the same mutable ``OrderBook`` after every update, so "what changed" would otherwise
mean diffing two full books (cost proportional to depth). Instead the producer installs, per exchange
instance, an ``order_book`` factory that builds :class:`JournaledOrderBook`: its sides record every level
ccxt stores or trims (``storeArray``/``limit``) in a small dict ``price -> size``, and ``reset()`` (a new
snapshot applied in place) raises a flag. Draining the journal after each ``watch_order_book`` gives the
coalesced delta since the previous drain, at a cost proportional to the levels that changed.

Prices and sizes are coerced to ``Decimal`` on the way in (from the venue's text, see ``exact.py``), so
the sides sort numerically even though the exchange runs with ``number = str``.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

from ccxt.async_support.base.ws.order_book import OrderBook
from ccxt.async_support.base.ws.order_book_side import Asks, Bids

from producers.ccxt.exact import to_exact_decimal
from producers.ccxt.fence import install_order_book_factory

ZERO = Decimal(0)


class _JournalMixin:
    """Mixed into ccxt's Asks/Bids: every change lands in ``changes`` (price -> size, ZERO = removed)."""

    changes: dict[Decimal, Decimal]
    _index: list[Decimal]
    _depth: int

    def storeArray(self, delta: list[Any]) -> None:  # noqa: N802 - ccxt's name
        price, size = delta[0], delta[1]
        if type(price) is not Decimal:  # hot path: one type check when ccxt already holds Decimals
            price = delta[0] = to_exact_decimal(price)
        if type(size) is not Decimal:
            size = delta[1] = to_exact_decimal(size)
        before = len(self)  # type: ignore[arg-type]
        super().storeArray(delta)  # type: ignore[misc]
        if size or len(self) != before:  # type: ignore[arg-type]
            self.changes[price] = size if size else ZERO

    def limit(self) -> None:
        while len(self) > self._depth:  # type: ignore[arg-type]
            level = self.pop()  # type: ignore[attr-defined]
            self._index.pop()
            self.changes[level[0]] = ZERO


class JournaledAsks(_JournalMixin, Asks):
    def __init__(self, deltas: Any = (), depth: int | None = None) -> None:
        self.changes = {}
        super().__init__(list(deltas), depth)


class JournaledBids(_JournalMixin, Bids):
    def __init__(self, deltas: Any = (), depth: int | None = None) -> None:
        self.changes = {}
        super().__init__(list(deltas), depth)


class JournaledOrderBook(OrderBook):
    """ccxt's OrderBook with journaled sides and a ``was_reset`` flag set by in-place snapshots."""

    def __init__(self, snapshot: dict[str, Any] | None = None, depth: int | None = None) -> None:
        snapshot = dict(snapshot or {})
        depth = depth or sys.maxsize
        snapshot["asks"] = JournaledAsks(snapshot.get("asks", []), depth)
        snapshot["bids"] = JournaledBids(snapshot.get("bids", []), depth)
        super().__init__(snapshot, depth)
        self.was_reset = True  # a new book is a snapshot for downstream

    def reset(self, snapshot: dict[str, Any] | None = None) -> None:
        super().reset(snapshot or {})
        self.was_reset = True
        self["asks"].changes.clear()
        self["bids"].changes.clear()

    def has_changes(self) -> bool:
        return bool(self["bids"].changes or self["asks"].changes)

    def drain(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The levels changed since the last drain (absolute sizes, ZERO = removed); clears the journal."""
        bids, asks = self["bids"].changes, self["asks"].changes
        out = list(bids.items()), list(asks.items())
        bids.clear()
        asks.clear()
        return out

    def take_snapshot(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The whole book (best first) for a SNAPSHOT event; clears the journal and the reset flag."""
        self.was_reset = False
        self["bids"].changes.clear()
        self["asks"].changes.clear()
        return [(lv[0], lv[1]) for lv in self["bids"]], [(lv[0], lv[1]) for lv in self["asks"]]


class DiffedBook:
    """Fallback for ccxt books we do not journal (counted/indexed sides, a few exchanges such as bitfinex,
    deribit, cryptocom): mirrors the last state in a ``JournaledOrderBook`` and diffs each new state against
    it. Cost proportional to depth (bounded by ``book_depth``), the price of not knowing what ccxt changed.
    Levels of indexed (L3) books are summed per price."""

    def __init__(self) -> None:
        self.source: Any = None
        self.mirror = JournaledOrderBook({}, None)

    def observe(self, ob: Any) -> JournaledOrderBook:
        if ob is not self.source:
            self.source = ob
            self.mirror = JournaledOrderBook({}, None)  # a new object: a snapshot downstream
        for key in ("bids", "asks"):
            now: dict[Decimal, Decimal] = {}
            for level in ob[key]:
                price = to_exact_decimal(level[0])
                now[price] = now.get(price, ZERO) + to_exact_decimal(level[1])
            side = self.mirror[key]
            last = {lv[0]: lv[1] for lv in side}
            for price in last.keys() - now.keys():
                side.store(price, ZERO)
            for price, size in now.items():
                if last.get(price) != size:
                    side.store(price, size)
        for key in ("nonce", "timestamp", "symbol"):
            self.mirror[key] = ob.get(key)
        return self.mirror


def install_journaled_books(exchange: Any) -> None:
    """Make ``exchange.order_book(...)`` (what ccxt.pro calls for L2 books) build journaled books."""

    def order_book(snapshot: dict[str, Any] | None = None, depth: int | None = None) -> JournaledOrderBook:
        return JournaledOrderBook(snapshot, depth)

    install_order_book_factory(exchange, order_book)

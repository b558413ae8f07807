"""Journaled ccxt order books: ccxt keeps maintaining the book, we learn exactly which levels it touched.

ccxt.pro hands back the same mutable ``OrderBook`` after every update, so "what changed" would otherwise
mean diffing two full books (cost proportional to depth). Instead the producer installs, per exchange
instance, an ``order_book`` factory that builds ``JournaledOrderBook`` (it subclasses ccxt internals, so it lives in
``fence.py``): its sides record every level
ccxt stores or trims (``storeArray``/``limit``) in a small dict ``price -> size``, and ``reset()`` (a new
snapshot applied in place) raises a flag. Draining the journal after each ``watch_order_book`` gives the
coalesced delta since the previous drain, at a cost proportional to the levels that changed.

Prices and sizes are coerced to ``Decimal`` on the way in (from the venue's text, see ``exact.py``), so
the sides sort numerically even though the exchange runs with ``number = str``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from producers.ccxt.exact import to_exact_decimal
from producers.ccxt.fence import ZERO, JournaledOrderBook, install_order_book_factory

__all__ = ["DiffedBook", "JournaledOrderBook", "install_journaled_books"]


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

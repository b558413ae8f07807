"""OrderBook: one market's L2 book rebuilt from SNAPSHOT / DELTA / RESET events (pure logic, no Kafka).

Rules (BookUpdate contract):
- SNAPSHOT replaces the book and puts it in sync (a snapshot older than the book's sequence is stale).
- DELTA sets absolute sizes per level ("0" deletes). Applied only while in sync. A delta whose sequence is
  not newer than the book's is stale and dropped. A delta whose prev_sequence does not chain onto the book's
  sequence is a gap: the book is discarded and waits for the next snapshot (not in sync).
- RESET discards the book; it waits for the next snapshot (not in sync).
- After every applied update the book is checked for crossing (best bid >= best ask); a crossed book is
  flagged (and counted), not silently repaired.

Levels are keyed by Decimal price (so "100.0" and "100.00" are one level) and keep the venue's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from sortedcontainers import SortedDict

from processors.decimal_text import parse, text


class Outcome(StrEnum):
    SNAPSHOT = "snapshot"
    APPLIED = "applied"
    RESET = "reset"
    STALE = "stale"
    GAP = "gap"
    WAITING = "waiting_for_snapshot"


Level = tuple[str, str]  # (price text, size text) as the venue wrote them


class BookSide:
    """One side of the book: price -> (price text, size text), best first on iteration.

    Bids are keyed by the negated price so both sides are plain ascending SortedDicts (no key function
    call per operation): the first key is always the best level."""

    __slots__ = ("levels", "descending", "_sign")

    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self._sign = -1 if descending else 1
        self.levels: SortedDict = SortedDict()

    def clear(self) -> None:
        self.levels.clear()

    def set(self, price_text: str, size_text: str) -> None:
        price, size = _checked(price_text, size_text)
        self.put(price, size, price_text, size_text)

    def put(self, price: Decimal, size: Decimal, price_text: str, size_text: str) -> None:
        """Set an already validated level; size 0 deletes it."""
        key = -price if self.descending else price
        if size:
            self.levels[key] = (price_text, size_text)
        else:
            self.levels.pop(key, None)

    def best(self) -> tuple[Decimal, Level] | None:
        if not self.levels:
            return None
        key, level = self.levels.peekitem(0)
        return key * self._sign, level

    def top(self, depth: int | None) -> list[Level]:
        values = self.levels.values()
        return list(values if depth is None else values[:depth])

    def __len__(self) -> int:
        return len(self.levels)


@dataclass
class UpdateResult:
    outcome: Outcome
    changed_sync: bool  # in_sync or crossed flipped: consumers should hear about it now


class OrderBook:
    """The materialized L2 book of one (venue, market)."""

    __slots__ = ("venue", "market", "venue_symbol", "bids", "asks", "sequence", "in_sync", "crossed",
                 "exchange_ts", "receive_ts", "last_offset", "updates")

    def __init__(self, venue: str, market: str, venue_symbol: str = "") -> None:
        self.venue = venue
        self.market = market
        self.venue_symbol = venue_symbol
        self.bids = BookSide(descending=True)
        self.asks = BookSide(descending=False)
        self.sequence: int | None = None
        self.in_sync = False
        self.crossed = False
        self.exchange_ts = 0
        self.receive_ts = 0
        self.last_offset = -1  # source offset of the last event folded in (replays at or below it are skipped)
        self.updates = 0

    # -- applying events ----------------------------------------------------------------------------
    def apply(self, event: dict[str, Any]) -> UpdateResult:
        """Fold one decoded BookUpdate in. Raises ValueError on malformed levels (book left unchanged)."""
        was = (self.in_sync, self.crossed)
        kind = event["kind"]
        seq = event.get("sequence")
        if kind == "RESET":
            self._discard()
            outcome = Outcome.RESET
        elif kind == "SNAPSHOT":
            if self.in_sync and seq is not None and self.sequence is not None and seq < self.sequence:
                return UpdateResult(Outcome.STALE, False)
            bids, asks = _validated(event["bids"]), _validated(event["asks"])
            self.bids.clear()
            self.asks.clear()
            for level in bids:
                self.bids.put(*level)
            for level in asks:
                self.asks.put(*level)
            self.sequence = seq
            self.in_sync = True
            outcome = Outcome.SNAPSHOT
        elif kind == "DELTA":
            if not self.in_sync:
                return UpdateResult(Outcome.WAITING, False)
            if seq is not None and self.sequence is not None and seq <= self.sequence:
                return UpdateResult(Outcome.STALE, False)
            prev = event.get("prev_sequence")
            if prev is not None and self.sequence is not None and prev != self.sequence:
                self._discard()
                return UpdateResult(Outcome.GAP, True)
            bids, asks = _validated(event["bids"]), _validated(event["asks"])
            for level in bids:
                self.bids.put(*level)
            for level in asks:
                self.asks.put(*level)
            if seq is not None:
                self.sequence = seq
            outcome = Outcome.APPLIED
        else:
            raise ValueError(f"unknown book update kind {kind!r}")
        self.venue_symbol = event.get("venue_symbol") or self.venue_symbol
        self.exchange_ts = event["exchange_ts"]
        self.receive_ts = event["receive_ts"]
        self.updates += 1
        self.crossed = self._is_crossed()
        return UpdateResult(outcome, was != (self.in_sync, self.crossed))

    def _discard(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.sequence = None
        self.in_sync = False
        self.crossed = False

    def _is_crossed(self) -> bool:
        bids, asks = self.bids.levels, self.asks.levels  # bids keyed by -price: the first keys are the best
        return bool(bids) and bool(asks) and -bids.keys()[0] >= asks.keys()[0]

    # -- views --------------------------------------------------------------------------------------
    def top_fields(self) -> dict[str, Any]:
        bb, ba = self.bids.best(), self.asks.best()
        out: dict[str, Any] = {"best_bid": None, "best_bid_size": None, "best_ask": None,
                               "best_ask_size": None, "spread": None, "mid": None}
        if bb is not None:
            out["best_bid"], out["best_bid_size"] = bb[1]
        if ba is not None:
            out["best_ask"], out["best_ask_size"] = ba[1]
        if bb is not None and ba is not None:
            out["spread"] = text(ba[0] - bb[0])
            out["mid"] = text((ba[0] + bb[0]) / 2)
        return out

    def depth(self, n: int | None) -> dict[str, list[dict[str, str]]]:
        return {"bids": [{"price": p, "size": s} for p, s in self.bids.top(n)],
                "asks": [{"price": p, "size": s} for p, s in self.asks.top(n)]}

    # -- persistence (table value) -----------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"venue": self.venue, "market": self.market, "venue_symbol": self.venue_symbol,
                "sequence": self.sequence, "in_sync": self.in_sync, "crossed": self.crossed,
                "exchange_ts": self.exchange_ts, "receive_ts": self.receive_ts, "offset": self.last_offset,
                "updates": self.updates, "bids": self.bids.top(None), "asks": self.asks.top(None)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OrderBook:
        book = cls(state["venue"], state["market"], state.get("venue_symbol", ""))
        for p, s in state["bids"]:
            book.bids.set(p, s)
        for p, s in state["asks"]:
            book.asks.set(p, s)
        book.sequence = state["sequence"]
        book.in_sync = state["in_sync"]
        book.crossed = state["crossed"]
        book.exchange_ts = state["exchange_ts"]
        book.receive_ts = state["receive_ts"]
        book.last_offset = state["offset"]
        book.updates = state.get("updates", 0)
        return book


def _checked(price_text: str, size_text: str) -> tuple[Decimal, Decimal]:
    price, size = parse(price_text, "price"), parse(size_text, "size")
    if price <= 0 or size < 0:
        raise ValueError(f"level price={price_text!r} size={size_text!r} out of range")
    return price, size


def _validated(levels: list[dict[str, str]]) -> list[tuple[Decimal, Decimal, str, str]]:
    """Parse and check every level before touching the book, so a malformed update leaves it unchanged."""
    out = []
    for level in levels:
        p, s = level["price"], level["size"]
        try:  # fast path for well-formed levels; anything odd goes through _checked for its error
            price, size = Decimal(p), Decimal(s)
            ok = price.is_finite() and size.is_finite() and price > 0 and size >= 0
        except (InvalidOperation, TypeError, ValueError):
            ok = False
        if not ok:
            price, size = _checked(p, s)
        out.append((price, size, p, s))
    return out

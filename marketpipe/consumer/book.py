"""Follow order books from `marketpipe.book.v1` with the contract's SNAPSHOT / DELTA / RESET rules.

An implementation of the published contract (docs/topics.md, `schemas/avro/book.avsc`), written the way a
downstream team would write it: it does not use the processors' code.

- SNAPSHOT replaces the book and puts it in sync; one whose sequence is below the in-sync book's is stale.
- DELTA sets absolute sizes ("0" deletes), only while in sync. Not newer than the book's sequence: stale,
  dropped. `prev_sequence` not equal to the book's sequence: a gap, the book is discarded until a SNAPSHOT.
- RESET discards the book until the next SNAPSHOT.
- Levels are keyed by decimal value and keep the venue's text; duplicates (same `event_id`) are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from marketpipe.consumer.dedup import Deduplicator

Level = tuple[str, str]  # (price text, size text) as the venue wrote them


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        raise ValueError(f"{what} {text!r} is not a decimal") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{what} {text!r} is not a finite non-negative decimal")
    return value


def _levels(raw: list[Mapping[str, str]]) -> list[tuple[Decimal, Decimal, str, str]]:
    return [(_decimal(lv["price"], "price"), _decimal(lv["size"], "size"), lv["price"], lv["size"]) for lv in raw]


@dataclass
class Book:
    """One market's L2 book as a consumer sees it."""

    venue: str
    market: str
    in_sync: bool = False
    sequence: int | None = None
    exchange_ts: int = 0
    bids: dict[Decimal, Level] = field(default_factory=dict)
    asks: dict[Decimal, Level] = field(default_factory=dict)
    resets: list[str] = field(default_factory=list)  # reasons of RESETs and detected gaps, oldest first

    def best_bid(self) -> Level | None:
        return self.bids[max(self.bids)] if self.bids else None

    def best_ask(self) -> Level | None:
        return self.asks[min(self.asks)] if self.asks else None

    def spread(self) -> Decimal | None:
        bid, ask = self.best_bid(), self.best_ask()
        return Decimal(ask[0]) - Decimal(bid[0]) if bid and ask else None

    def depth(self, n: int | None = None) -> dict[str, list[dict[str, str]]]:
        """Up to n levels per side (all when None), best first, as `{"price", "size"}` decimal text."""
        bids = [self.bids[p] for p in sorted(self.bids, reverse=True)][:n]
        asks = [self.asks[p] for p in sorted(self.asks)][:n]
        return {"bids": [{"price": p, "size": s} for p, s in bids],
                "asks": [{"price": p, "size": s} for p, s in asks]}

    @property
    def crossed(self) -> bool:
        return bool(self.bids) and bool(self.asks) and max(self.bids) >= min(self.asks)

    def _discard(self, reason: str) -> None:
        self.bids.clear()
        self.asks.clear()
        self.sequence = None
        self.in_sync = False
        self.resets.append(reason)

    def _set(self, side: dict[Decimal, Level], levels: list[tuple[Decimal, Decimal, str, str]]) -> None:
        for price, size, price_text, size_text in levels:
            if size:
                side[price] = (price_text, size_text)
            else:
                side.pop(price, None)

    def apply(self, event: Mapping[str, Any]) -> str:
        """Fold one decoded BookUpdate in; returns what happened: snapshot, applied, reset, gap, stale, waiting.
        Malformed levels raise ValueError and leave the book unchanged."""
        kind, seq = event["kind"], event.get("sequence")
        if kind == "RESET":
            self._discard(event.get("reason") or "reset")
            outcome = "reset"
        elif kind == "SNAPSHOT":
            if self.in_sync and seq is not None and self.sequence is not None and seq < self.sequence:
                return "stale"
            bids, asks = _levels(event["bids"]), _levels(event["asks"])
            self.bids.clear()
            self.asks.clear()
            self._set(self.bids, bids)
            self._set(self.asks, asks)
            self.sequence, self.in_sync = seq, True
            outcome = "snapshot"
        elif kind == "DELTA":
            if not self.in_sync:
                return "waiting"
            if seq is not None and self.sequence is not None and seq <= self.sequence:
                return "stale"
            prev = event.get("prev_sequence")
            if prev is not None and self.sequence is not None and prev != self.sequence:
                self._discard(f"gap: prev_sequence {prev} != {self.sequence}")
                return "gap"
            bids, asks = _levels(event["bids"]), _levels(event["asks"])
            self._set(self.bids, bids)
            self._set(self.asks, asks)
            if seq is not None:
                self.sequence = seq
            outcome = "applied"
        else:
            raise ValueError(f"unknown book update kind {kind!r}")
        self.exchange_ts = event["exchange_ts"]
        return outcome


class BookFollower:
    """Books of every market seen on the book topic, keyed by (venue, market); duplicates dropped by event_id."""

    def __init__(self, dedup_window: int = 200_000) -> None:
        self.books: dict[tuple[str, str], Book] = {}
        self.dedup = Deduplicator(dedup_window)
        self.outcomes: dict[str, int] = {}

    def apply(self, event: Mapping[str, Any]) -> Book:
        """Fold a decoded BookUpdate into its market's book and return that book."""
        key = (event["venue"], event["market"])
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = Book(*key)
        if self.dedup.seen(event["event_id"]):
            outcome = "duplicate"
        else:
            outcome = book.apply(event)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        return book

    def book(self, venue: str, market: str) -> Book | None:
        return self.books.get((venue, market))

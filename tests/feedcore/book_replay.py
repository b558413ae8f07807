"""Rebuild an order book from BookUpdate events the way a downstream consumer must.

``replay_book(events)``: drops duplicate ``event_id``s, RESET clears the book and marks it out of sync,
SNAPSHOT replaces it, DELTA sets absolute sizes ("0" deletes). Violations of the contract are collected
instead of raised (``problems``): a DELTA while out of sync, a DELTA whose ``prev_sequence`` is not the
current sequence, a crossed book after an update. Compare ``bids``/``asks`` (Decimal -> Decimal) with a
simulator's true book.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class ReplayedBook:
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    in_sync: bool = False
    sequence: int | None = None
    snapshots: int = 0
    deltas: int = 0
    resets: list[str] = field(default_factory=list)
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)


def _apply(side: dict[Decimal, Decimal], levels: list[dict[str, str]]) -> None:
    for level in levels:
        price, size = Decimal(level["price"]), Decimal(level["size"])
        if size == 0:
            side.pop(price, None)
        else:
            side[price] = size


def replay_book(events: Iterable[dict[str, Any]]) -> ReplayedBook:
    book = ReplayedBook()
    seen: set[str] = set()
    for e in events:
        if e["event_id"] in seen:
            book.duplicates += 1
            continue
        seen.add(e["event_id"])
        kind = e["kind"]
        if kind == "RESET":
            book.bids.clear()
            book.asks.clear()
            book.in_sync = False
            book.resets.append(e.get("reason") or "")
            continue
        if kind == "SNAPSHOT":
            book.bids.clear()
            book.asks.clear()
            _apply(book.bids, e["bids"])
            _apply(book.asks, e["asks"])
            book.in_sync = True
            book.sequence = e.get("sequence")
            book.snapshots += 1
        else:
            if not book.in_sync:
                book.problems.append(f"DELTA {e['event_id']} while out of sync")
                continue
            prev = e.get("prev_sequence")
            if prev is not None and book.sequence is not None and prev != book.sequence:
                book.problems.append(f"DELTA {e['event_id']}: prev_sequence {prev} != book sequence {book.sequence}")
            _apply(book.bids, e["bids"])
            _apply(book.asks, e["asks"])
            book.sequence = e.get("sequence", book.sequence)
            book.deltas += 1
        if book.bids and book.asks and max(book.bids) >= min(book.asks):
            book.problems.append(f"crossed after {e['event_id']}: {max(book.bids)} >= {min(book.asks)}")
    return book

"""BookFollower / Book / Deduplicator rules without Kafka (the agreement tests compare them with the processors)."""

from __future__ import annotations

from typing import Any

import pytest

from marketpipe.consumer import Book, BookFollower, Deduplicator


def ev(kind: str, seq: int | None = None, prev: int | None = None, bids: Any = (), asks: Any = (),
       eid: str | None = None, reason: str | None = None) -> dict[str, Any]:
    return {"event_id": eid or f"{kind}{seq}{prev}{bids}{asks}", "venue": "v", "market": "M", "kind": kind,
            "sequence": seq, "prev_sequence": prev, "exchange_ts": 1, "reason": reason,
            "bids": [{"price": p, "size": s} for p, s in bids], "asks": [{"price": p, "size": s} for p, s in asks]}


def test_levels_are_keyed_by_value_and_keep_the_latest_text() -> None:
    book = Book("v", "M")
    book.apply(ev("SNAPSHOT", 1, bids=[("100.0", "1")], asks=[("101", "1")]))
    book.apply(ev("DELTA", 2, 1, bids=[("100.00", "2.50")]))
    assert book.depth() == {"bids": [{"price": "100.00", "size": "2.50"}], "asks": [{"price": "101", "size": "1"}]}
    assert str(book.spread()) == "1.00" and not book.crossed


def test_malformed_levels_raise_and_leave_the_book_unchanged() -> None:
    book = Book("v", "M")
    book.apply(ev("SNAPSHOT", 1, bids=[("100", "1")]))
    with pytest.raises(ValueError, match="not a decimal"):
        book.apply(ev("DELTA", 2, 1, bids=[("99", "1"), ("abc", "1")]))
    with pytest.raises(ValueError, match="non-negative"):
        book.apply(ev("DELTA", 2, 1, bids=[("99", "-1")]))
    assert book.sequence == 1 and book.depth()["bids"] == [{"price": "100", "size": "1"}]


def test_follower_keeps_one_book_per_market_and_drops_duplicate_event_ids() -> None:
    f = BookFollower()
    f.apply(ev("SNAPSHOT", 5, bids=[("1", "1")], eid="a"))
    e = ev("DELTA", 6, 5, bids=[("1", "0")], eid="b")
    f.apply(e)
    f.apply(ev("SNAPSHOT", 6, bids=[("2", "1")], eid="a"))  # same id as the first: a duplicate, ignored
    other = {**ev("SNAPSHOT", 1, asks=[("3", "1")], eid="c"), "market": "N"}
    f.apply(other)
    book = f.book("v", "M")
    assert book is not None and book.sequence == 6 and book.bids == {}
    assert f.outcomes == {"snapshot": 2, "applied": 1, "duplicate": 1} and set(f.books) == {("v", "M"), ("v", "N")}


def test_dedup_window_is_bounded() -> None:
    d = Deduplicator(window=2)
    # "a" is refreshed by its repeat, so "b" is the oldest when "c" arrives and is forgotten
    assert [d.seen(x) for x in ("a", "b", "a", "c", "b", "c")] == [False, False, True, False, False, True]
    assert len(d) == 2 and d.duplicates == 2
    with pytest.raises(ValueError):
        Deduplicator(window=0)


def test_the_library_is_independent_of_the_processors() -> None:
    """A downstream team's implementation of the contract: schemas/ and marketpipe only, never processors/."""
    import ast
    from pathlib import Path

    import marketpipe.consumer

    offenders = []
    for path in Path(marketpipe.consumer.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("processors", "producers")]
    assert offenders == []

"""Econia venue order, pure logic: the reorder window, late order events, late book events."""

from __future__ import annotations

from typing import Any

import pytest

from producers.core.metrics import FeedMetrics
from producers.econia.book import EconiaBooks, book_sequence
from producers.econia.normalize import EconiaNormalizer
from producers.econia.reorder import ReorderBuffer
from producers.econia.settings import EconiaSettings
from producers.econia.units import MarketParams

APT = MarketParams(1, lot_size=100_000, tick_size=1, base_decimals=8, quote_decimals=6, base_symbol="APT",
                   quote_symbol="USDC")


def keys(held: list[tuple[tuple[int, int], Any]]) -> list[tuple[int, int]]:
    return [k for k, _ in held]


def test_a_transaction_delivered_after_a_later_one_is_released_first() -> None:
    buf = ReorderBuffer(window_seconds=1.0, max_events=100)
    buf.add((20, 0), "later", now=0.0)
    buf.add((20, 1), "later", now=0.0)
    assert buf.due(0.5) == []  # nothing waited a full window yet
    buf.add((10, 0), "earlier", now=0.6)
    assert buf.reordered == 1
    assert keys(buf.due(1.0)) == [(10, 0), (20, 0), (20, 1)]  # txn 20 aged out: everything up to it, in order
    assert buf.released == (20, 1) and len(buf) == 0


def test_time_bound_releases_whole_transactions_and_keeps_younger_higher_ones() -> None:
    buf = ReorderBuffer(window_seconds=1.0, max_events=100)
    buf.add((10, 1), "a", now=0.0)
    buf.add((30, 0), "c", now=0.9)
    buf.add((10, 0), "a", now=0.95)  # same transaction, younger: still goes with it
    assert keys(buf.due(1.0)) == [(10, 0), (10, 1)]
    assert keys(buf.due(1.5)) == []
    assert keys(buf.due(2.0)) == [(30, 0)]


def test_count_bound_releases_the_lowest_transactions() -> None:
    buf = ReorderBuffer(window_seconds=60.0, max_events=3)
    for txn in (5, 3, 4, 1):
        buf.add((txn, 0), txn, now=0.0)
    assert keys(buf.due(0.0)) == [(1, 0)]
    assert len(buf) == 3 and buf.released == (1, 0)


def test_release_through_a_complete_head_and_duplicates() -> None:
    buf = ReorderBuffer(window_seconds=60.0, max_events=100)
    assert buf.add((7, 2), "x", now=0.0) and not buf.add((7, 2), "x", now=0.1)
    buf.add((9, 0), "y", now=0.0)
    buf.add((7, 0), "z", now=0.0)
    assert keys(buf.release_through((7, 0))) == [(7, 0), (7, 2)]  # the whole transaction 7
    assert keys(buf.drain()) == [(9, 0)]


def test_reorder_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        EconiaSettings(econia_reorder_events=0)
    with pytest.raises(ValueError):
        EconiaSettings(econia_reconcile_seconds=10, econia_reconcile_lookback=5)
    with pytest.raises(ValueError):
        ReorderBuffer(-1, 10)


BASE = {"time": "2024-02-01T12:34:56+00:00", "market_id": 1, "user": "0xcc", "custodian_id": 0, "order_id": 2**125}


def place(txn: int, size: int = 500) -> dict:
    return {**BASE, "txn_version": txn, "event_idx": 0, "side": True, "initial_size": size, "price": 1_000,
            "size": size, "integrator": "0xee", "restriction": 0, "self_match_behavior": 0}


def fill(txn: int, size: int, idx: int = 0) -> dict:
    return {"txn_version": txn, "event_idx": idx, "emit_address": "0xcc", "time": BASE["time"],
            "maker_address": "0xcc", "maker_custodian_id": 0, "maker_order_id": BASE["order_id"], "maker_side": True,
            "market_id": 1, "price": 1_000, "sequence_number_for_trade": 0, "size": size, "taker_address": "0xdd",
            "taker_custodian_id": 0, "taker_order_id": 2**100 + txn, "taker_quote_fees_paid": 1}


def test_a_place_after_its_cancel_is_published_as_it_was_and_the_order_restated() -> None:
    n = EconiaNormalizer({1: APT})
    n.seed_order({**BASE, "total_filled": 0, "remaining_size": 0, "direction": "ask", "price": 1_000,
                  "order_status": "cancelled"})  # the cancel came first: the order was looked up over REST
    (_, cancelled), = n.cancel_order({**BASE, "txn_version": 3, "event_idx": 0, "reason": 3}, 1)
    assert cancelled["payload"]["status"] == "CANCELLED" and not n.restate_needed
    (_, placed), = n.place_limit_order(place(2), 1)  # the late place
    assert placed["payload"]["status"] == "NEW"  # its own record, as it was
    assert n.restate_needed == {(1, 2**125): (2, 0)} and n.superseded == 1
    assert n.orders[(1, 2**125)].closed and n.orders[(1, 2**125)].remaining == 0  # still cancelled
    row = {**BASE, "created_at": BASE["time"], "last_updated_at": BASE["time"], "total_filled": 0,
           "remaining_size": 0, "order_status": "cancelled", "order_type": "limit", "direction": "ask",
           "price": 1_000, "average_execution_price": None, "integrator": "0xee"}
    (_, restated), = n.restate(row, (3, 0), 1)
    assert restated["payload"]["status"] == "CANCELLED" and restated["payload"]["venue_status"] == "restated:cancelled"
    assert restated["event_id"].endswith(":restate:3:0:after:2:0") and not n.restate_needed


def test_fills_published_before_their_place_make_the_place_restated() -> None:
    n = EconiaNormalizer({1: APT})
    assert len(n.fill(fill(5, 100), 1)) == 3  # the maker order is unknown yet: trade + 2 FILLs anyway
    n.place_limit_order(place(4), 1)
    assert n.restate_needed == {(1, 2**125): (5, 0)}


def test_a_late_fill_in_order_for_its_order_changes_the_state() -> None:
    n = EconiaNormalizer({1: APT})
    n.place_limit_order(place(2), 1)
    n.fill(fill(4, 100), 1)
    n.fill(fill(3, 50), 1)  # older than the fill before, but the order's last event was older: superseded
    assert n.restate_needed == {(1, 2**125): (3, 0)}
    assert n.orders[(1, 2**125)].remaining == 400  # the state is not touched by the superseded fill


def books_with_one_order() -> tuple[EconiaBooks, list[dict]]:
    published: list[dict] = []

    async def sink(record: dict) -> None:
        published.append(record)

    return EconiaBooks("econia", sink, FeedMetrics("econia")), published


async def test_late_book_events_apply_in_place_when_the_order_model_allows() -> None:
    books, out = books_with_one_order()
    await books.snapshot({1: APT}, [], (1, 0), 1)
    books.apply("place_limit_order_event", APT, place(2), (2, 0), 1, 1)
    await books.commit((2, 0))
    other = {**place(5), "order_id": 7, "price": 1_010, "size": 10}
    books.apply("place_limit_order_event", APT, other, (5, 0), 1, 1)
    await books.commit((5, 0))
    books.apply("fill_event", APT, fill(4, 100), (4, 0), 1, 1, late=True)  # order 2**125 untouched since txn 2
    await books.commit_late()
    assert books.late_applied == 1 and not books.broken
    assert out[-1]["kind"] == "DELTA" and out[-1]["sequence"] == book_sequence(5, 0) + 1
    assert out[-1]["prev_sequence"] == book_sequence(5, 0) and out[-1]["asks"] == [{"price": "1", "size": "0.4"}]
    books.apply("fill_event", APT, fill(3, 50), (3, 0), 1, 1, late=True)  # older than the order's last event
    assert books.broken == {1}  # cannot be put in its place: the market is resynced

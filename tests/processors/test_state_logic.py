"""The pure state machines behind the processors (no Kafka): fast checks of the edge rules."""

from __future__ import annotations

from processors.account import AccountState
from processors.book import OrderBook, Outcome
from processors.candles import MarketCandles

S = 1_000_000


def book_event(kind: str, seq: int | None = None, prev: int | None = None, bids=(), asks=()) -> dict:
    return {"kind": kind, "sequence": seq, "prev_sequence": prev, "venue_symbol": "X", "exchange_ts": 1,
            "receive_ts": 1, "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks]}


def test_book_rules_stale_gap_reset_and_same_price_different_text() -> None:
    b = OrderBook("v", "m")
    assert b.apply(book_event("DELTA", 1, 0, bids=[("1", "1")])).outcome is Outcome.WAITING
    assert b.apply(book_event("SNAPSHOT", 10, bids=[("100.0", "1")], asks=[("101", "1")])).outcome is Outcome.SNAPSHOT
    assert b.apply(book_event("DELTA", 11, 10, bids=[("100.00", "2")])).outcome is Outcome.APPLIED
    assert b.depth(None)["bids"] == [{"price": "100.00", "size": "2"}]  # one level, the latest text
    assert b.apply(book_event("DELTA", 11, 10, bids=[("99", "9")])).outcome is Outcome.STALE
    assert b.apply(book_event("SNAPSHOT", 5, bids=[("1", "1")])).outcome is Outcome.STALE
    result = b.apply(book_event("DELTA", 13, 12, bids=[("99", "9")]))
    assert result.outcome is Outcome.GAP and result.changed_sync and not b.in_sync and len(b.bids) == 0
    assert b.apply(book_event("SNAPSHOT", 20, bids=[("50", "1")], asks=[("51", "1")])).outcome is Outcome.SNAPSHOT
    assert b.apply(book_event("RESET")).outcome is Outcome.RESET and not b.in_sync
    restored = OrderBook.from_state(b.to_state())
    assert restored.to_state() == b.to_state()


def test_book_malformed_delta_leaves_book_unchanged() -> None:
    b = OrderBook("v", "m")
    b.apply(book_event("SNAPSHOT", 1, bids=[("10", "1")], asks=[("11", "1")]))
    before = b.to_state()
    for bad in ([("10", "0"), ("9", "-1")], [("abc", "1")], [("0", "1")]):
        try:
            b.apply(book_event("DELTA", 2, 1, bids=bad))
        except ValueError:
            pass
        else:
            raise AssertionError(f"{bad} accepted")
    assert b.to_state() == before


def test_candles_timer_close_uses_event_clock_not_downtime() -> None:
    mc = MarketCandles("v", "m", ["1s"], grace_us=2 * S, close_delay_us=0)
    t0 = 1_000 * S
    folded = mc.add_trade({"event_id": "a", "exchange_ts": t0 + 100, "price": "10", "size": "1", "side": "BUY"},
                          wall_now=50 * S)
    assert folded.records == []
    # the worker was down 30 s and only now (wall 80 s) processes again: not idle time for the market
    assert mc.on_timer(wall_now=80 * S + 500_000, idle_since=80 * S) == []
    # one idle second later (by this worker's clock) the candle closes
    [candle] = mc.on_timer(wall_now=81 * S + 1, idle_since=80 * S)
    assert (candle["start_ts"], candle["revision"], candle["trade_count"]) == (t0, 0, 1)
    # still within grace by the event clock: a late trade amends it
    folded = mc.add_trade({"event_id": "b", "exchange_ts": t0 + 200, "price": "12", "size": "1", "side": "SELL"},
                          wall_now=81 * S + 2)
    assert [(r["revision"], r["high"], r["volume"], r["vwap"]) for r in folded.records] == [(1, "12", "2", "11")]
    # persistence round trip keeps the amendment state (history comes back through chunks)
    chunks = {(name, c): s.chunk(c) for name, s in mc.series.items() for c in s.chunks()}
    again = MarketCandles.from_state(mc.to_state(), ["1s"], grace_us=2 * S, close_delay_us=0,
                                     load_chunk=lambda name, c: chunks[(name, c)])
    assert again.series["1s"].history == mc.series["1s"].history
    assert again.add_trade({"event_id": "b", "exchange_ts": t0, "price": "1", "size": "1"}, 0).duplicate


def test_account_lifecycle_never_moves_backwards() -> None:
    a = AccountState("v", "acct")

    def order(status: str, filled: str) -> dict:
        return {"kind": "ORDER", "market": "BTC-PERP", "exchange_ts": 1,
                "order": {"order_id": "o1", "side": "BUY", "order_type": "limit", "status": status, "price": "1",
                          "size": "2", "filled_size": filled}}

    assert a.apply(order("NEW", "0")) == "order_open"
    assert a.apply(order("PARTIALLY_FILLED", "1.5")) == "order_open"
    assert a.apply(order("PARTIALLY_FILLED", "1")) == "stale_order"
    assert a.apply(order("UNKNOWN", "1.75")) == "order_open" and a.open_orders["o1"]["status"] == "PARTIALLY_FILLED"
    assert a.apply(order("FILLED", "2")) == "order_closed" and not a.open_orders
    assert a.apply(order("PARTIALLY_FILLED", "1.9")) == "stale_order" and not a.open_orders

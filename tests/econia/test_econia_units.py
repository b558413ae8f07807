"""Econia unit conversions and row normalization (pure logic, no I/O)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from producers.econia.normalize import EconiaNormalizer, UnknownMarket, UnknownOrder, iso_micros
from producers.econia.units import MarketParams, fraction_text

APT = MarketParams(1, lot_size=100_000, tick_size=1, base_decimals=8, quote_decimals=6, base_symbol="APT",
                   quote_symbol="USDC")


@pytest.mark.parametrize(("params", "ticks", "price"), [
    (APT, 1, "0.001"), (APT, 8_765, "8.765"), (APT, 4_294_967_295, "4294967.295"),  # u32 max ticks
    (MarketParams(2, 1_000, 10, 8, 6, "WETH", "USDC"), 123_456, "123456"),
    (MarketParams(3, 1, 1, 0, 0, None, None), 7, "7"),
    (MarketParams(4, 2_500, 3, 6, 6, "X", "Y"), 5, "0.006"),
])
def test_prices_are_exact(params: MarketParams, ticks: int, price: str) -> None:
    text, exact = params.price_text(ticks)
    assert exact and text == price
    assert Decimal(text) == Decimal(ticks * params.tick_size) / 10**params.quote_decimals / (
        Decimal(params.lot_size) / 10**params.base_decimals)


def test_non_terminating_price_is_rounded_and_flagged() -> None:
    text, exact = MarketParams(5, 3, 1, 0, 0, "A", "B").price_text(1)
    assert not exact and text == "0.333333333333333333"
    assert fraction_text(Fraction(2, 3)) == ("0.666666666666666667", False)


def test_sizes_and_fees() -> None:
    assert APT.size_text(1) == "0.001" and APT.size_text(123_456) == "123.456"
    assert APT.quote_text(1) == "0.000001" and APT.quote_text(2_500_000) == "2.5"
    assert APT.market == "APT-USDC" and APT.venue_symbol == "1"
    assert MarketParams(9, 1, 1, 0, 0, None, "USDC").market == "ECONIA9-USDC"


def test_iso_times_to_micros_without_floats() -> None:
    assert iso_micros("1970-01-01T00:00:00.000000+00:00") == 0
    assert iso_micros("2024-02-01T12:34:56.123456+00:00") == 1_706_790_896_123_456
    assert iso_micros("2024-02-01T14:34:56.123456+02:00") == 1_706_790_896_123_456
    with pytest.raises(ValueError):
        iso_micros(12)


def fill_row(emit: str, idx: int, maker: str = "0xaa", taker: str = "0xbb", seq: int = 0) -> dict:
    return {"txn_version": 7, "event_idx": idx, "emit_address": emit, "time": "2024-02-01T12:34:56.000001+00:00",
            "maker_address": maker, "maker_custodian_id": 0, "maker_order_id": 2**127 + 5, "maker_side": True,
            "market_id": 1, "price": 8_765, "sequence_number_for_trade": seq, "size": 2_000, "taker_address": taker,
            "taker_custodian_id": 3, "taker_order_id": 2**126 + 1, "taker_quote_fees_paid": 17_530}


def test_fill_pair_yields_one_trade_and_one_fill_per_side() -> None:
    n = EconiaNormalizer({1: APT})
    out = n.fill(fill_row("0xaa", 0), 1) + n.fill(fill_row("0xbb", 1), 1)
    assert [k for k, _ in out] == ["trade", "account", "account"]
    trade = out[0][1]
    assert trade["price"] == "8.765" and trade["size"] == "2" and trade["side"] == "BUY"  # maker ASK
    assert trade["trade_id"] == f"7:{2**126 + 1}:0" and trade["exchange_ts"] == 1_706_790_896_000_001
    maker, taker = out[1][1], out[2][1]
    assert maker["account"] == "0xaa" and maker["payload"]["is_maker"] and maker["payload"]["side"] == "SELL"
    assert maker["payload"]["order_id"] == str(2**127 + 5)
    assert taker["account"] == "0xbb:3" and taker["payload"]["fee"] == "0.01753" and taker["payload"]["side"] == "BUY"
    assert n.duplicate_fills == 1


def test_self_trade_passes_the_maker_filter_twice_but_is_published_once() -> None:
    n = EconiaNormalizer({1: APT})
    first = n.fill(fill_row("0xaa", 0, taker="0xaa"), 1)
    second = n.fill(fill_row("0xaa", 1, taker="0xaa"), 1)
    assert len(first) == 3 and second == [] and n.duplicate_fills == 1


def test_orders_follow_their_state_and_unknowns_are_reported() -> None:
    n = EconiaNormalizer({1: APT})
    base = {"time": "2024-02-01T12:34:56+00:00", "market_id": 1, "user": "0xcc", "custodian_id": 0,
            "order_id": 2**125}
    (_, placed), = n.place_limit_order({**base, "txn_version": 1, "event_idx": 0, "side": False,
                                       "initial_size": 500, "price": 1_000, "size": 500}, 1)
    assert placed["payload"]["status"] == "NEW" and placed["payload"]["price"] == "1"
    (_, changed), = n.change_order_size({**base, "txn_version": 2, "event_idx": 0, "side": False,
                                         "new_size": 300}, 1)
    assert changed["payload"]["remaining_size"] == "0.3" and changed["payload"]["price"] == "1"
    (_, cancelled), = n.cancel_order({**base, "txn_version": 3, "event_idx": 0, "reason": 3}, 1)
    assert cancelled["payload"]["status"] == "CANCELLED" and cancelled["payload"]["remaining_size"] == "0"
    with pytest.raises(UnknownOrder):
        n.cancel_order({**base, "txn_version": 4, "event_idx": 0, "reason": 3}, 1)
    with pytest.raises(UnknownMarket):
        n.fill({**fill_row("0xaa", 0), "market_id": 99}, 1)
    with pytest.raises(ValueError):
        n.fill({**fill_row("0xaa", 0), "size": 1.5}, 1)


def test_updated_limit_order_rows_become_order_states() -> None:
    n = EconiaNormalizer({1: APT})
    row = {"market_id": 1, "order_id": 2**127 + 9, "created_at": "2024-02-01T12:00:00+00:00",
           "last_updated_at": "2024-02-01T12:00:01.5+00:00", "integrator": "0xee", "total_filled": 200,
           "remaining_size": 300, "order_status": "open", "order_type": "limit", "user": "0xdd", "direction": "ask",
           "price": 9_000, "average_execution_price": 9_000, "custodian_id": 0, "self_match_behavior": 0,
           "restriction": 0, "last_increase_stamp": 1, "min_base": None, "max_base": None, "min_quote": None,
           "max_quote": None}
    (_, e), = n.updated_limit_order(row, 1)
    assert e["kind"] == "ORDER" and e["exchange_ts"] == 1_706_788_801_500_000
    assert e["payload"] | {} == {"order_id": str(2**127 + 9), "client_order_id": None, "side": "SELL",
                                 "order_type": "limit", "status": "PARTIALLY_FILLED", "price": "9", "size": "0.5",
                                 "filled_size": "0.2", "remaining_size": "0.3", "average_price": "9",
                                 "venue_status": "open"}
    (_, closed), = n.updated_limit_order({**row, "order_status": "closed", "remaining_size": 0}, 1)
    assert closed["payload"]["status"] == "FILLED" and closed["event_id"] != e["event_id"]


def _norm() -> EconiaNormalizer:
    return EconiaNormalizer({1: APT})


def _taker_rows() -> tuple[dict, list[dict], dict]:
    user, maker = "0x" + "a" * 64, "0x" + "b" * 64
    oid, moid = 2**100 + 7, 2**100 + 9
    place = {"txn_version": 50, "event_idx": 0, "market_id": 1, "time": "2024-01-01T00:00:00+00:00",
             "order_id": oid, "signing_account": user, "integrator": "0x1", "direction": False, "min_base": 0,
             "max_base": 250_000, "min_quote": 0, "max_quote": 2**64 - 1, "limit_price": 1_500}
    fills = [{"txn_version": 50, "event_idx": 1 + i, "emit_address": maker, "time": "2024-01-01T00:00:00+00:00",
              "maker_address": maker, "maker_custodian_id": 0, "maker_order_id": moid, "maker_side": True,
              "market_id": 1, "price": 1_500, "sequence_number_for_trade": i, "size": 1, "taker_address": user,
              "taker_custodian_id": 0, "taker_order_id": oid, "taker_quote_fees_paid": 1} for i in range(2)]
    cancel = {"txn_version": 50, "event_idx": 3, "time": "2024-01-01T00:00:00+00:00", "market_id": 1,
              "user": user, "custodian_id": 0, "order_id": oid, "reason": 8}
    return place, fills, cancel


def _orders(emissions: list) -> list[tuple[str, str, str, str, str]]:
    return [(kw["payload"]["status"], kw["payload"]["size"], kw["payload"]["filled_size"],
             kw["payload"]["remaining_size"], kw["payload"]["venue_status"])
            for kind, kw in emissions if kind == "account" and kw["kind"] == "ORDER"]


def test_swap_in_order_publishes_placed_each_fill_and_the_cancelled_rest() -> None:
    """max_base 250_000 subunits = 2.5 lots: two one-lot fills leave half a lot (TOO_SMALL_TO_FILL_LOT)."""
    n = _norm()
    place, fills, cancel = _taker_rows()
    out = n.place_swap_order(place, 0)
    for f in fills:
        out += n.fill(f, 0)
    out += n.cancel_order(cancel, 0)
    assert _orders(out) == [("NEW", "0.0025", "0", "0.0025", "placed"),
                            ("PARTIALLY_FILLED", "0.0025", "0.001", "0.0015", "filled:50:" + str(place["order_id"]) + ":0"),
                            ("PARTIALLY_FILLED", "0.0025", "0.002", "0.0005", "filled:50:" + str(place["order_id"]) + ":1"),
                            ("CANCELLED", "0.0025", "0.002", "0", "cancelled:8")]
    kw = out[0][1]
    assert kw["account"] == place["signing_account"] and kw["payload"]["order_type"] == "swap"
    assert kw["payload"]["side"] == "BUY" and kw["payload"]["price"] == "1.5"


def test_swap_whose_place_comes_last_ends_in_the_venue_state() -> None:
    """Place notification lost, fills and cancel live, place recovered by a reconcile: the place as it was,
    then its state after the fills, then the cancel; nothing is counted as a parse error."""
    n = _norm()
    place, fills, cancel = _taker_rows()
    early = n.fill(fills[0], 0) + n.fill(fills[1], 0) + n.cancel_order(cancel, 0)
    assert _orders(early) == []
    late = _orders(n.place_swap_order(place, 0))
    assert [s[0] for s in late] == ["NEW", "PARTIALLY_FILLED", "CANCELLED"]
    assert late[-1] == ("CANCELLED", "0.0025", "0.002", "0", "cancelled:8")


def test_market_order_direction_true_is_sell_and_size_is_lots() -> None:
    n = _norm()
    row = {"txn_version": 60, "event_idx": 0, "market_id": 1, "time": "2024-01-01T00:00:00+00:00",
           "order_id": 2**90, "user": "0x" + "c" * 64, "custodian_id": 3, "integrator": "0x1", "direction": True,
           "size": 7, "self_match_behavior": 0}
    (kind, kw), = n.place_market_order(row, 0)
    assert kw["account"] == "0x" + "c" * 64 + ":3" and kw["payload"]["side"] == "SELL"
    assert kw["payload"]["size"] == "0.007" and kw["payload"]["price"] is None
    assert kw["payload"]["order_type"] == "market" and kw["event_id"].endswith(f":order:{2**90}:60:0")

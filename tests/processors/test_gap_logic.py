"""Gap markers in the pure state machines (no Kafka): candles overlapping a gap window are flagged (open ones,
published ones within grace, final ones still in the history, empty intervals as gap candles), the marker
never counts as a trade, the flags survive a state round trip; accounts record gap markers per kind."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from processors.account import AccountState
from processors.candles import MarketCandles

S = 1_000_000
T0 = 1_000 * S  # a multiple of 10 s
OPTS: dict[str, Any] = {"grace_us": 2 * S, "close_delay_us": 0, "history": 50}
FIGURES = ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume", "sell_volume",
           "trade_count")


def trade(eid: str, ts: int, price: str, size: str, side: str) -> dict[str, Any]:
    return {"event_id": eid, "exchange_ts": ts, "price": price, "size": size, "side": side, "gap": None}


def marker(eid: str, lo: int, hi: int) -> dict[str, Any]:
    """A gap marker as the producers' emitter writes it (price/size "0", exchange_ts = to_ts)."""
    return {"event_id": eid, "exchange_ts": hi, "price": "0", "size": "0", "side": "UNKNOWN", "trade_id": "gap:1:2",
            "gap": {"reason": "reconnect", "after_id": "1", "before_id": "2", "missing_count": None,
                    "from_ts": lo, "to_ts": hi}}


def ident(r: dict[str, Any]) -> tuple[str, int, int, bool]:
    return r["interval"], (r["start_ts"] - T0) // S, r["revision"], r["gap"]  # start in seconds after T0


def figures(r: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(r[f] for f in FIGURES)


def reload(mc: MarketCandles, intervals: list[str]) -> MarketCandles:
    chunks = {(name, c): s.chunk(c) for name, s in mc.series.items() for c in s.chunks()}
    state = orjson.loads(orjson.dumps(mc.to_state()))
    return MarketCandles.from_state(state, intervals, **OPTS, load_chunk=lambda n, c: chunks[(n, c)])


def test_gap_flags_open_published_final_and_empty_candles_and_never_counts_as_a_trade() -> None:
    iv = ["1s", "10s"]
    mc = MarketCandles("v", "m", iv, **OPTS)
    out: list[dict[str, Any]] = []
    out += mc.add_trade(trade("a", T0 + 100_000, "10", "1", "BUY"), 1).records
    out += mc.add_trade(trade("b", T0 + 500_000, "11", "2", "SELL"), 2).records
    out += mc.add_trade(trade("c", T0 + 1_200_000, "12", "1", "BUY"), 3).records
    assert [ident(r) for r in out] == [("1s", 0, 0, False)]
    # trades may be missing in [T0+1.5s, T0+3.2s]: 1s candles T0+1 (open, one trade), T0+2 and T0+3 (no
    # trades yet) and the open 10s candle overlap it; nothing is published yet (event time is at T0+1.2s)
    gf = mc.add_gap(marker("g1", T0 + 1_500_000, T0 + 3_200_000), 4)
    assert gf.records == []
    assert gf.candles == {("1s", "flagged"): 1, ("1s", "empty"): 2, ("10s", "flagged"): 1}
    mc = reload(mc, iv)  # the flags are state: they survive a restart
    # the next trade's event time closes the 1s candles: the flagged one and two empty gap candles
    d = mc.add_trade(trade("d", T0 + 4_100_000, "13", "1", "SELL"), 5).records
    assert [ident(r) for r in d] == [("1s", 1, 0, True), ("1s", 2, 0, True), ("1s", 3, 0, True)]
    assert figures(d[0]) == ("12", "12", "12", "12", "1", "12", "12", "1", "0", 1)
    empty = ("0", "0", "0", "0", "0", "0", "0", "0", "0", 0)
    assert figures(d[1]) == figures(d[2]) == empty
    assert (d[1]["exchange_ts"], d[1]["end_ts"]) == (T0 + 2 * S, T0 + 3 * S)
    # a late marker for [T0+0.3s]: the 1s candle T0 is final (end + grace <= T0+4.1s) but in the history,
    # so it is re-published as revision 1 with the same figures; the 10s candle is flagged already
    late = mc.add_gap(marker("g2", T0 + 300_000, T0 + 300_000), 6)
    assert [ident(r) for r in late.records] == [("1s", 0, 1, True)]
    assert figures(late.records[0]) == ("10", "11", "10", "11", "3", "32", "10.66666666666666666666666666666667",
                                        "1", "2", 2)
    assert late.records[0]["event_id"] == f"v:m:ohlcv:1s:{T0}:1"
    assert late.candles == {("1s", "amended"): 1}
    # the same marker again (producer re-send): a duplicate, nothing re-published
    assert mc.add_gap(marker("g2", T0 + 300_000, T0 + 300_000), 7).duplicate
    e = mc.add_trade(trade("e", T0 + 10_500_000, "14", "1", "BUY"), 8).records
    # the gap marker's "0" never entered the 10s candle: a, b, c, d only
    assert [ident(r) for r in e] == [("1s", 4, 0, False), ("10s", 0, 0, True)]
    assert figures(e[1]) == ("10", "13", "10", "13", "5", "57", "11.4", "2", "3", 4)
    # a late marker over a final interval without trades: an empty gap candle at once; 10s T0 is already
    # flagged, and the 10s candle T0+10 (open) is not touched
    f = mc.add_gap(marker("g3", T0 + 5_000_000, T0 + 5_500_000), 9)
    assert [ident(r) for r in f.records] == [("1s", 5, 0, True)]
    assert f.candles == {("1s", "empty"): 1}
    mc = reload(mc, iv)
    hist = {(r["start_ts"] - T0, r["revision"], r["gap"]) for r in mc.series["1s"].history}
    assert hist == {(0, 1, True), (S, 0, True), (2 * S, 0, True), (3 * S, 0, True), (4 * S, 0, False),
                    (5 * S, 0, True)}
    assert [(c["start_ts"] - T0, c["gap"]) for c in mc.open_candles("10s")] == [(10 * S, False)]


def test_a_published_candle_within_grace_is_amended_and_a_later_trade_keeps_the_flag() -> None:
    mc = MarketCandles("v", "m", ["1s"], **OPTS)
    mc.add_trade(trade("a", T0 + 100, "10", "1", "BUY"), 1)
    [first] = mc.add_trade(trade("b", T0 + S + 100, "11", "1", "BUY"), 2).records
    assert ident(first) == ("1s", 0, 0, False)
    [amended] = mc.add_gap(marker("g", T0 + 900_000, T0 + S), 3).records  # also overlaps the open T0+1s
    assert ident(amended) == ("1s", 0, 1, True) and figures(amended) == figures(first)
    # a trade recovered later into the flagged candle: amended again, still flagged
    [again] = mc.add_trade(trade("c", T0 + 950_000, "9", "1", "SELL"), 4).records
    assert ident(again) == ("1s", 0, 2, True) and again["trade_count"] == 2 and again["low"] == "9"
    [nxt] = mc.add_trade(trade("d", T0 + 2 * S + 1, "12", "1", "BUY"), 5).records
    assert ident(nxt) == ("1s", 1, 0, True)


def test_gap_reach_is_bounded_by_the_history() -> None:
    mc = MarketCandles("v", "m", ["1s"], grace_us=0, close_delay_us=0, history=3)
    for i in range(6):
        mc.add_trade(trade(f"t{i}", T0 + i * S, "10", "1", "BUY"), i)
    # history holds the candles T0+2..T0+4 (T0+5 is open); a marker over T0..T0+5
    gf = mc.add_gap(marker("g", T0, T0 + 5 * S), 9)
    assert [ident(r) for r in gf.records] == [("1s", 2, 1, True), ("1s", 3, 1, True), ("1s", 4, 1, True)]
    assert gf.candles == {("1s", "beyond_retention"): 2, ("1s", "amended"): 3, ("1s", "flagged"): 1}
    # a window longer than the state holds (history 3 + 1 open bucket): only its newest 4 intervals count
    gf = mc.add_gap(marker("g2", T0 + 10 * S, T0 + 19 * S), 10)
    assert gf.candles == {("1s", "beyond_retention"): 6, ("1s", "empty"): 4}
    assert sorted(mc.series["1s"].buckets) == [T0 + i * S for i in (5, 16, 17, 18, 19)]


def test_inverted_gap_window_is_rejected_without_changing_state() -> None:
    mc = MarketCandles("v", "m", ["1s"], **OPTS)
    mc.add_trade(trade("a", T0, "10", "1", "BUY"), 1)
    before = mc.to_state()
    with pytest.raises(ValueError):
        mc.add_gap(marker("g", T0 + S, T0), 2)
    assert mc.to_state() == before


def test_account_gap_markers_are_recorded_per_kind_not_malformed() -> None:
    a = AccountState("v", "acct")

    def gap(eid: str, kind: str, missing: int | None, lo: int, hi: int) -> dict[str, Any]:
        return {"event_id": eid, "kind": kind, "market": "*", "exchange_ts": hi, "receive_ts": hi + 1,
                "balance": None, "order": None, "fill": None, "position": None,
                "gap": {"reason": "reconnect", "after_id": None, "before_id": None, "missing_count": missing,
                        "from_ts": lo, "to_ts": hi}}

    assert a.apply(gap("g1", "FILL", 3, 10, 20)) == "gap"
    assert a.apply(gap("g1", "FILL", 3, 10, 20)) == "duplicate_gap"
    assert a.apply(gap("g2", "FILL", None, 30, 40)) == "gap"
    assert a.apply(gap("g3", "ORDER", 2, 5, 6)) == "gap"
    assert a.gaps["FILL"]["count"] == 2 and a.gaps["FILL"]["missing_known"] == 3
    assert (a.gaps["FILL"]["last"]["from_ts"], a.gaps["FILL"]["last"]["to_ts"]) == (30, 40)
    assert a.gaps["ORDER"]["count"] == 1 and "BALANCE" not in a.gaps
    assert a.fills == [] and a.open_orders == {} and a.updated_ts == 0  # not account changes
    with pytest.raises(ValueError):
        a.apply(gap("g4", "FILL", None, 50, 40))
    again = AccountState.from_state(orjson.loads(orjson.dumps(a.to_state())))
    assert again.gaps == a.gaps

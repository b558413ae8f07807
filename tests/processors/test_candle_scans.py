"""Candle bookkeeping that skips bucket scans (CandleSeries deadlines) publishes exactly what scanning the
buckets on every trade publishes: random streams with late, out-of-order and duplicate trades, gap markers,
idle timer ticks and state round trips mid-stream, run both ways."""

from __future__ import annotations

import random
from typing import Any

import orjson

from processors.candles import CandleSeries, MarketCandles

S = 1_000_000
INTERVALS = ["1s", "10s", "1m"]
OPTS: dict[str, Any] = {"grace_us": 3 * S, "close_delay_us": 200_000, "history": 50, "dedup_window": 64}


def run(steps: list[tuple[str, Any]]) -> list[Any]:
    """Feed the steps to a MarketCandles; everything it says (records, late intervals, duplicates, state)."""
    mc = MarketCandles("v", "m", INTERVALS, **OPTS)
    out: list[Any] = []
    for kind, arg in steps:
        if kind == "trade":
            trade, wall = arg
            folded = mc.add_trade(trade, wall)
            out.append(("trade", folded.records, folded.late_intervals, folded.duplicate))
        elif kind == "gap":
            marker, wall = arg
            gf = mc.add_gap(marker, wall)
            out.append(("gap", gf.records, gf.candles, gf.duplicate))
        elif kind == "timer":
            wall, idle_since = arg
            out.append(("timer", mc.on_timer(wall, idle_since)))
        else:  # persist and load again, as a restarted worker does
            chunks = {(name, c): s.chunk(c) for name, s in mc.series.items() for c in s.chunks()}
            state = orjson.loads(orjson.dumps(mc.to_state()))
            mc = MarketCandles.from_state(state, INTERVALS, **OPTS, load_chunk=lambda n, c, ch=chunks: ch[(n, c)])
        out.append(("state", orjson.loads(orjson.dumps(mc.to_state()))))
    return out


def random_steps(rng: random.Random, n: int) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    ts, wall, ids = 1_000 * S, 50 * S, []
    for i in range(n):
        r = rng.random()
        wall += rng.choice((1_000, 50_000, 400_000, 2 * S))
        if r < 0.08:
            steps.append(("timer", (wall, rng.choice((0, wall - S)))))
        elif r < 0.10:
            steps.append(("reload", None))
        elif r < 0.12:  # a gap marker around the current event time, sometimes late
            lo = ts - rng.choice((0, 2 * S, 15 * S, 90 * S)) + rng.randint(0, 999_999)
            gap = {"reason": "test", "from_ts": lo, "to_ts": lo + rng.choice((0, 500_000, 3 * S, 30 * S))}
            steps.append(("gap", ({"event_id": f"g{i}", "exchange_ts": gap["to_ts"], "gap": gap}, wall)))
        else:
            ts += rng.choice((0, 1_000, 300_000, 1_500_000, 12 * S))
            late = rng.random() < 0.2
            when = ts - rng.choice((100_000, 1_200_000, 2_900_000, 4 * S, 20 * S)) if late else ts
            eid = rng.choice(ids) if ids and rng.random() < 0.05 else f"t{i}"
            ids.append(eid)
            trade = {"event_id": eid, "exchange_ts": when, "price": f"{rng.randint(90, 110)}.{rng.randint(0, 99)}",
                     "size": f"0.{rng.randint(1, 999):03d}", "side": rng.choice(("BUY", "SELL"))}
            steps.append(("trade", (trade, wall)))
    return steps


def test_deadline_skips_publish_exactly_what_full_scans_publish() -> None:
    rng = random.Random(20261125)
    published = flagged = 0
    for _ in range(40):
        steps = random_steps(rng, 400)
        CandleSeries.scan_always = True
        try:
            reference = run(steps)
        finally:
            CandleSeries.scan_always = False
        assert run(steps) == reference
        published += sum(len(o[1]) for o in reference if o[0] in ("trade", "timer", "gap"))
        flagged += sum(r["gap"] for o in reference if o[0] in ("trade", "timer", "gap") for r in o[1])
    assert published > 1_000  # the streams really close, amend and finalize candles
    assert flagged > 100  # and gap markers flag candles


def test_high_and_low_by_value_keep_the_venue_text() -> None:
    mc = MarketCandles("v", "m", ["1s"], **OPTS)
    t0 = 1_000 * S
    for i, price in enumerate(["100.0", "99.50", "100.00", "101", "99.5", "100.999"]):
        mc.add_trade({"event_id": str(i), "exchange_ts": t0 + i, "price": price, "size": "1", "side": "BUY"}, 0)
    [candle] = mc.add_trade({"event_id": "x", "exchange_ts": t0 + S, "price": "1", "size": "1"}, 0).records
    # the first text of the extreme value wins: 99.50 came before 99.5
    assert (candle["open"], candle["high"], candle["low"], candle["close"]) == ("100.0", "101", "99.50", "100.999")
    # after a reload, a late trade amends the candle against the restored high and low values
    again = MarketCandles.from_state(orjson.loads(orjson.dumps(mc.to_state())), ["1s"], **OPTS)
    [amended] = again.add_trade({"event_id": "late", "exchange_ts": t0 + 7, "price": "99.4", "size": "1",
                                 "side": "SELL"}, 0).records
    assert (amended["revision"], amended["high"], amended["low"]) == (1, "101", "99.4")


def test_history_chunks_by_bisection_equal_the_plain_definition() -> None:
    """remember() keeps the history sorted with one candle per start (newer, amended, late and trimmed
    candles), and chunk() (a bisected slice) equals filtering the whole history by chunk_of."""
    rng = random.Random(7)
    for name in ("1s", "1m"):
        series = CandleSeries(name)
        length = series.length
        keep = 150
        for _ in range(2000):
            r = rng.random()
            newest = series.history[-1]["start_ts"] // length if series.history else 1000
            slot = newest + 1 if r < 0.7 else max(0, newest - rng.randint(0, 200))  # mostly newer, some late
            series.remember({"start_ts": slot * length, "revision": rng.randint(0, 3)}, keep)
            starts = [c["start_ts"] for c in series.history]
            assert starts == sorted(set(starts)) and len(starts) <= keep
        for c in series.chunks():
            plain = [x for x in series.history if series.chunk_of(x["start_ts"]) == c]
            assert series.chunk(c) == plain and plain
        assert series.chunk(max(series.chunks()) + 1) == []

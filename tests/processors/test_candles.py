"""Candles from a known trade sequence, checked against hand-computed OHLCV/VWAP for every interval.

Worker intervals: 1s, 10s, 1m; grace 2 s; timer close delay 200 ms (see harness.worker_env).
Times are event times in a past minute M (a replay): the candles follow the trades' own clock.
"""

from __future__ import annotations

import time

from marketpipe.infra.stack import Cluster
from schemas.registry import ContractRegistry
from schemas.topics import OHLCV, market_key
from tests.processors.harness import DerivedReader, EventWriter, Worker, get_json, poll_json

S = 1_000_000  # one second in microseconds
FIGURES = ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume", "sell_volume",
           "trade_count")


def fig(o: str, h: str, low: str, c: str, v: str, qv: str, vwap: str, bv: str, sv: str, n: int) -> dict:
    return dict(zip(FIGURES, (o, h, low, c, v, qv, vwap, bv, sv, n), strict=True))


async def test_candles_match_hand_computed_ohlcv_with_late_trade_and_empty_interval(
        ready_worker: Worker, writer: EventWriter, cluster: Cluster, registry: ContractRegistry, unique: str,
        topic_prefix: str) -> None:
    venue, market = f"tc{unique}", "BTC-USD"
    minute = 60 * S
    m = (time.time_ns() // 1000) // minute * minute - 5 * minute  # start of a past minute
    t = m + 55 * S  # all trades but the last fall in [M+55s, M+59s)
    keys = {market_key(venue, market)}
    async with DerivedReader(cluster.bootstrap, OHLCV, registry, keys, topic_prefix=topic_prefix) as reader:
        trades = [
            (t + 100_000, "100.0", "1", "BUY"),
            (t + 400_000, "101.5", "2", "SELL"),
            (t + 900_000, "99.5", "1", "BUY"),
            (t + 1_200_000, "100.5", "3", "BUY"),   # newer 1s window: [t, t+1s) is published (rev 0)
            (t + 600_000, "102.0", "1", "SELL"),    # late but within grace: [t, t+1s) rev 1
            (t + 3_300_000, "100.0", "0.5", "SELL"),  # [t+1s, t+2s) published; [t+2s, t+3s) stays empty
            (t + 200_000, "50", "1", "BUY"),        # past end + grace for 1s: dropped there; 10s/1m still open
            (m + 60 * S + 500_000, "103", "1", "BUY"),  # next minute: closes the 10s and 1m candles
        ]
        for ts, price, size, side in trades:
            await writer.trade(venue, market, ts, price, size, side)
        await writer.flush()
        expected = {
            ("1s", t, 0): fig("100.0", "101.5", "99.5", "99.5", "4", "402.5", "100.625", "2", "2", 3),
            ("1s", t, 1): fig("100.0", "102.0", "99.5", "99.5", "5", "504.5", "100.9", "2", "3", 4),
            ("1s", t + S, 0): fig("100.5", "100.5", "100.5", "100.5", "3", "301.5", "100.5", "3", "0", 1),
            ("1s", t + 3 * S, 0): fig("100.0", "100.0", "100.0", "100.0", "0.5", "50.00", "100", "0", "0.5", 1),
            ("10s", m + 50 * S, 0): fig("100.0", "102.0", "50", "100.0", "9.5", "906.00",
                                        "95.36842105263157894736842105263158", "6", "3.5", 7),
            ("1m", m, 0): fig("100.0", "102.0", "50", "100.0", "9.5", "906.00",
                              "95.36842105263157894736842105263158", "6", "3.5", 7),
            # closed by the timer: no newer trade ever arrives for it
            ("1s", m + 60 * S, 0): fig("103", "103", "103", "103", "1", "103", "103", "1", "0", 1),
        }
        ident = lambda r: (r["interval"], r["start_ts"], r["revision"])  # noqa: E731
        await reader.read_until(lambda rs: set(expected) <= {ident(r) for r in rs}, timeout=20)
        records = await reader.settle(1.0)
        for r in records:
            key = ident(r)
            assert key in expected, f"unexpected candle {key}: {r}"
            assert {f: r[f] for f in FIGURES} == expected[key], key
            assert r["end_ts"] - r["start_ts"] == {"1s": S, "10s": 10 * S, "1m": minute}[r["interval"]]
            assert r["event_id"] == f"{venue}:{market}:ohlcv:{r['interval']}:{r['start_ts']}:{r['revision']}"
        assert len(records) == len({ident(r) for r in records}), "a finished candle was published twice"
        # the empty interval [t+2s, t+3s) has no candle (documented policy), the too-late trade no revision
        assert not any(r["interval"] == "1s" and r["start_ts"] == t + 2 * S for r in records)
        assert not any(ident(r) == ("1s", t, 2) for r in records)

    # queries: latest revision per candle, range params, the open 10s/1m candles on request
    base = f"{ready_worker.url}/candles/{venue}/{market}"
    status, body = await get_json(f"{base}/1s")
    assert status == 200
    got = [(c["start_ts"], c["revision"], c["trade_count"]) for c in body["candles"]]
    assert got == [(t, 1, 4), (t + S, 0, 1), (t + 3 * S, 0, 1), (m + 60 * S, 0, 1)]
    status, body = await get_json(f"{base}/1s?start={t + S}&end={t + 4 * S}")
    assert [c["start_ts"] for c in body["candles"]] == [t + S, t + 3 * S]
    status, body = await get_json(f"{base}/1s?limit=1")
    assert [c["start_ts"] for c in body["candles"]] == [m + 60 * S]
    status, body = await get_json(f"{base}/10s?include_open=true")
    assert [(c["start_ts"], c["final"]) for c in body["candles"]] == [(m + 50 * S, True), (m + 60 * S, False)]
    assert body["candles"][0]["vwap"] == "95.36842105263157894736842105263158"
    assert body["candles"][1]["open"] == "103" and body["candles"][1]["trade_count"] == 1


async def test_duplicate_trade_event_is_counted_once(ready_worker: Worker, writer: EventWriter, unique: str) -> None:
    venue, market = f"td{unique}", "ETH-USD"
    t = (time.time_ns() // 1000) // S * S - 120 * S
    await writer.trade(venue, market, t + 100, "10", "1", "BUY", event_id=f"dup-{unique}")
    await writer.trade(venue, market, t + 200, "10", "1", "BUY", event_id=f"dup-{unique}")  # producer re-send
    await writer.trade(venue, market, t + 300, "11", "2", "SELL")
    await writer.flush()
    body = await poll_json(f"{ready_worker.url}/candles/{venue}/{market}/1m?include_open=true",
                           lambda st, b: st == 200 and b["candles"] and b["candles"][-1]["trade_count"] >= 2)
    c = body["candles"][-1]
    assert (c["trade_count"], c["volume"], c["close"]) == (2, "3", "11")

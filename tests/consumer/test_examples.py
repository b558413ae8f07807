"""The examples in examples/ run against the real stack as subprocesses (so they cannot rot).

book_follower.py: a hand-written book topic (snapshot, deltas, a RESET, a duplicate) gives the expected final
books; a second run with the same --group resumes after the first run's committed offsets.
candle_reader.py: trades and gap markers go through a real processor worker; the example's candles (newest
revision, gap flags) equal the worker's own candle query.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from marketpipe.infra.stack import Cluster
from schemas.registry import ContractRegistry
from schemas.topics import BOOK, market_key
from tests.processors.harness import EventWriter, Worker, now_us, poll_json

REPO = Path(__file__).resolve().parents[2]
S = 1_000_000
MINUTE = 60 * S


async def run_example(cluster: Cluster, script: str, *args: str, prefix: str = "") -> list[dict[str, Any]]:
    assert cluster.registry_url is not None
    env = {**os.environ, "MARKETPIPE_KAFKA_BOOTSTRAP": cluster.bootstrap, "MARKETPIPE_REGISTRY_URL": cluster.registry_url,
           "MARKETPIPE_CONSUMER_TOPIC_PREFIX": prefix}
    res = await asyncio.to_thread(subprocess.run, [sys.executable, str(REPO / "examples" / script), *args],
                                  capture_output=True, text=True, env=env, cwd=REPO, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


async def test_book_follower_example_prints_the_final_books_and_resumes_with_a_group(
        cluster: Cluster, registry: ContractRegistry, unique: str) -> None:
    venue = f"exb{unique}"
    async with EventWriter(cluster.bootstrap, registry) as w:
        await w.book(venue, "BTC-USD", "SNAPSHOT", seq=1, bids=[("100", "1"), ("99", "2")], asks=[("101", "1")])
        await w.book(venue, "BTC-USD", "DELTA", seq=2, prev=1, bids=[("100", "0"), ("99.5", "3")])
        await w.book(venue, "ETH-USD", "SNAPSHOT", seq=7, bids=[("10", "1")], asks=[("11", "1")])
        await w.book(venue, "ETH-USD", "RESET", reason="checksum")
        await w.book(venue, "ETH-USD", "DELTA", seq=8, prev=7, bids=[("10.5", "1")])  # waits for a snapshot
        dup = {"event_id": f"dup-{unique}", "venue": venue, "market": "BTC-USD", "venue_symbol": "BTCUSD",
               "exchange_ts": now_us(), "receive_ts": now_us(), "kind": "DELTA", "sequence": 3, "prev_sequence": 2,
               "checksum": None, "bids": [], "asks": [{"price": "101.5", "size": "2"}], "reason": None}
        await w.send(BOOK, market_key(venue, "BTC-USD"), dup)
        await w.send(BOOK, market_key(venue, "BTC-USD"), dup)
        await w.flush()
        group = f"example-books-{unique}"
        books = {b["market"]: b for b in await run_example(
            cluster, "book_follower.py", "--venue", venue, "--until-end", "--quiet", "--group", group)}
        assert books["BTC-USD"] == {
            "venue": venue, "market": "BTC-USD", "in_sync": True, "sequence": 3, "best_bid": ["99.5", "3"],
            "best_ask": ["101", "1"], "resets": [], "bids": [{"price": "99.5", "size": "3"}, {"price": "99", "size": "2"}],
            "asks": [{"price": "101", "size": "1"}, {"price": "101.5", "size": "2"}]}
        assert books["ETH-USD"]["in_sync"] is False and books["ETH-USD"]["resets"] == ["checksum"]

        # the group committed its offsets: the next run sees only what came after
        await w.book(venue, "ETH-USD", "SNAPSHOT", seq=9, bids=[("10.25", "4")], asks=[("11", "2")])
        await w.flush()
    again = await run_example(cluster, "book_follower.py", "--venue", venue, "--until-end", "--quiet", "--group", group)
    assert [(b["market"], b["in_sync"], b["sequence"], b["best_bid"]) for b in again] == [
        ("ETH-USD", True, 9, ["10.25", "4"])]


def _past_minute() -> int:
    return (time.time_ns() // 1000) // MINUTE * MINUTE - 5 * MINUTE


async def test_candle_reader_example_equals_the_processor_candles(
        ready_worker: Worker, writer: EventWriter, cluster: Cluster, unique: str,
        topic_prefix: str) -> None:
    venue, market = f"exc{unique}", "BTC-USD"
    m = _past_minute()
    t = m + 50 * S
    await writer.trade(venue, market, t + 100_000, "100", "1", "BUY")
    await writer.trade(venue, market, t + 600_000, "102", "1", "SELL")
    await writer.trade(venue, market, t + 1_300_000, "101", "2", "BUY")
    await writer.trade_gap(venue, market, t + 1_500_000, t + 3_400_000, after_id="3", before_id="7", missing_count=3)
    await writer.trade(venue, market, t + 4_200_000, "99", "1", "SELL")
    await writer.trade(venue, market, t + 5_500_000, "98", "1", "BUY")
    await writer.trade_gap(venue, market, t + 200_000, t + 200_000, reason="id-gap")  # late: 1s [t] rev 1
    await writer.trade(venue, market, m + 60 * S + 500_000, "105", "1", "BUY")
    await writer.flush()
    url = f"{ready_worker.url}/candles/{venue}/{market}/1s?end={m + 60 * S}"
    body = await poll_json(url, lambda st, b: st == 200 and len(b["candles"]) == 6 and b["candles"][0]["gap"],
                           timeout=60)
    fields = ("start_ts", "revision", "gap", "open", "high", "low", "close", "volume", "trade_count")
    want = [{f: c[f] for f in fields} for c in body["candles"]]
    assert [c["trade_count"] for c in want] == [2, 1, 0, 0, 1, 1] and want[0]["revision"] == 1

    # the worker publishes to the derived topic as it updates its table: read until the example agrees (bounded)
    deadline = time.monotonic() + 60
    while True:
        rows = await run_example(cluster, "candle_reader.py", "--venue", venue, "--interval", "1s", "--until-end",
                                 "--quiet", prefix=topic_prefix)
        got = [{f: r[f] for f in fields} for r in rows if r["start_ts"] < m + 60 * S]
        if got == want or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert got == want

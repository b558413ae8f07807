"""Gap markers through real workers: a trade stream with a gap marker in the middle gives hand-computed
candles, the ones overlapping the gap window flagged (a late marker re-publishes an already finished
candle), the others not; account gap markers show in the account queries; a restarted worker keeps the flags.

Worker intervals: 1s, 10s, 1m; grace 2 s; timer close delay 200 ms (see harness.worker_env).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from marketpipe.infra.stack import Cluster
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, BOOK_TOP, OHLCV, TRADES, market_key
from tests.processors.harness import (
    DerivedReader,
    EventWriter,
    Worker,
    create_prefixed_topics,
    delete_topics,
    get_json,
    poll_json,
    worker_env,
)
from tests.processors.test_accounts import fill

S = 1_000_000
MINUTE = 60 * S
FIGURES = ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume", "sell_volume",
           "trade_count")
EMPTY = ("0", "0", "0", "0", "0", "0", "0", "0", "0", 0)


def past_minute() -> int:
    return (time.time_ns() // 1000) // MINUTE * MINUTE - 5 * MINUTE


async def metrics_text(worker: Worker) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{worker.url}/metrics") as r:
        assert r.status == 200
        return await r.text()


def gap_markers(text: str, stream: str) -> float:
    line = f'marketpipe_processor_gap_markers_total{{stream="{stream}"}} '
    return sum(float(x[len(line):]) for x in text.splitlines() if x.startswith(line))


def latest(records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in records:
        k = (r["interval"], r["start_ts"])
        if k not in out or r["revision"] > out[k]["revision"]:
            out[k] = r
    return out


async def test_candles_overlapping_a_gap_are_flagged_and_the_marker_is_no_trade(
        ready_worker: Worker, writer: EventWriter, cluster: Cluster, registry: ContractRegistry, unique: str,
        topic_prefix: str) -> None:
    venue, market = f"tg{unique}", "BTC-USD"
    m = past_minute()
    t = m + 50 * S  # the 10s candle [t, t+10s) and the 1m candle [m, m+60s)
    async with DerivedReader(cluster.bootstrap, OHLCV, registry, {market_key(venue, market)},
                             topic_prefix=topic_prefix) as reader:
        await writer.trade(venue, market, t + 100_000, "100", "1", "BUY")
        await writer.trade(venue, market, t + 600_000, "102", "1", "SELL")
        await writer.trade(venue, market, t + 1_300_000, "101", "2", "BUY")  # publishes 1s [t] (no gap)
        # trades may be missing in [t+1.5s, t+3.4s]: 1s [t+1] (one trade), [t+2] and [t+3] (none), 10s, 1m
        await writer.trade_gap(venue, market, t + 1_500_000, t + 3_400_000, after_id="3", before_id="7",
                               missing_count=3)
        await writer.trade(venue, market, t + 4_200_000, "99", "1", "SELL")
        await writer.trade(venue, market, t + 5_500_000, "98", "1", "BUY")
        # a late marker for [t+0.2s]: 1s [t] is final by now (end + grace < t+5.5s) and is re-published
        await writer.trade_gap(venue, market, t + 200_000, t + 200_000, reason="id-gap")
        await writer.trade(venue, market, m + 60 * S + 500_000, "105", "1", "BUY")  # closes 10s and 1m
        await writer.flush()
        ten = ("100", "102", "98", "98", "6", "601", "100.1666666666666666666666666666667", "4", "2", 5)
        expected = {  # (interval, start) -> figures of the latest revision, gap
            ("1s", t): (("100", "102", "100", "102", "2", "202", "101", "1", "1", 2), True),
            ("1s", t + S): (("101", "101", "101", "101", "2", "202", "101", "2", "0", 1), True),
            ("1s", t + 2 * S): (EMPTY, True),
            ("1s", t + 3 * S): (EMPTY, True),
            ("1s", t + 4 * S): (("99", "99", "99", "99", "1", "99", "99", "0", "1", 1), False),
            ("1s", t + 5 * S): (("98", "98", "98", "98", "1", "98", "98", "1", "0", 1), False),
            ("10s", t): (ten, True),
            ("1m", m): (ten, True),
            ("1s", m + 60 * S): (("105", "105", "105", "105", "1", "105", "105", "1", "0", 1), False),
        }

        def done(rs: list[dict[str, Any]]) -> bool:
            got = latest(rs)
            return all(k in got and got[k]["gap"] == want[1] for k, want in expected.items())

        await reader.read_until(done, timeout=30)
        records = await reader.settle(1.0)
    got = latest(records)
    before_next_minute = {k for k in got if k[1] < m + 60 * S}
    assert before_next_minute | {("1s", m + 60 * S)} == set(expected), "a candle outside the expected set"
    for k, (figures, gap) in expected.items():
        assert (tuple(got[k][f] for f in FIGURES), got[k]["gap"]) == (figures, gap), k
    # the late marker: 1s [t] was first published without the flag, then re-published with it, same figures
    first = [r for r in records if (r["interval"], r["start_ts"]) == ("1s", t)]
    assert [r["gap"] for r in sorted(first, key=lambda r: r["revision"])] == [False, True]
    assert got[("1s", t)]["revision"] == 1 and got[("1s", t + 2 * S)]["exchange_ts"] == t + 2 * S
    assert len({r["event_id"] for r in records}) == len(records), "a candle revision was published twice"

    base = f"{ready_worker.url}/candles/{venue}/{market}"
    status, body = await get_json(f"{base}/1s?end={m + 60 * S}")
    assert status == 200
    assert [(c["start_ts"] - t, c["gap"], c["trade_count"]) for c in body["candles"]] == [
        (0, True, 2), (S, True, 1), (2 * S, True, 0), (3 * S, True, 0), (4 * S, False, 1), (5 * S, False, 1)]
    status, body = await get_json(f"{base}/10s?include_open=true")
    assert [(c["start_ts"], c["gap"], c["final"]) for c in body["candles"]] == [(t, True, True),
                                                                                (m + 60 * S, False, False)]
    assert gap_markers(await metrics_text(ready_worker), "trades") >= 2


async def test_account_gap_marker_shows_in_the_account_queries(ready_worker: Worker, writer: EventWriter,
                                                                unique: str) -> None:
    venue, acct = f"tag{unique}", "acct-1"
    await writer.account(venue, acct, "BTC-PERP", "FILL", fill("f1", "o1", "0.5"))
    await writer.account_gap(venue, acct, "FILL", 1_000, 2_000, reason="reconnect", missing_count=4)
    await writer.account(venue, acct, "BTC-PERP", "FILL", fill("f2", "o1", "1.5"))
    await writer.flush()
    url = f"{ready_worker.url}/accounts/{venue}/{acct}"
    body = await poll_json(f"{url}/fills", lambda st, b: st == 200 and len(b["fills"]) == 2, timeout=20)
    assert [f["fill_id"] for f in body["fills"]] == ["f1", "f2"]  # the marker is no fill
    gap = body["gaps"]["FILL"]
    assert (gap["count"], gap["missing_known"]) == (1, 4)
    assert (gap["last"]["from_ts"], gap["last"]["to_ts"], gap["last"]["reason"]) == (1_000, 2_000, "reconnect")
    status, orders = await get_json(f"{url}/orders?status=all")
    assert status == 200 and orders["orders"] == [] and orders["gaps"] == body["gaps"]
    text = await metrics_text(ready_worker)
    assert gap_markers(text, "account") >= 1
    assert 'marketpipe_processor_account_updates_total{outcome="gap"}' in text


async def committed_through_end(bootstrap: str, group: str, topic: str, partitions: int) -> bool:
    """True when the group's committed offset of every partition of topic is at its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            if ends[tp] and (await consumer.committed(tp) or 0) < ends[tp]:
                return False
        return True
    finally:
        await consumer.stop()


async def test_gap_flags_survive_a_kill_and_restart(cluster: Cluster, registry: ContractRegistry, unique: str,
                                                    tmp_path: Path) -> None:
    assert cluster.registry_url
    prefix, app_id = f"test{unique}.", f"test-proc-gap-{unique}"
    create_prefixed_topics(cluster.bootstrap, prefix, (TRADES, BOOK, ACCOUNT, OHLCV, BOOK_TOP))
    # the timer never closes a candle here (close delay 10 min): only the last trade does, after the restart
    env = worker_env(cluster.bootstrap, cluster.registry_url, app_id, tmp_path / "data", store_url="rocksdb://",
                     topic_prefix=prefix, candle_close_delay_ms="600000")
    venue, market = f"tgr{unique}", "ETH-USD"
    key = market_key(venue, market)
    m = past_minute()
    t = m + 10 * S
    first = Worker(env, tmp_path / "first.log").start()
    second = Worker(env, tmp_path / "second.log")
    try:
        async with EventWriter(cluster.bootstrap, registry, topic_prefix=prefix) as writer, \
                DerivedReader(cluster.bootstrap, OHLCV, registry, {key}, topic_prefix=prefix) as reader:
            await first.wait_ready()
            await writer.trade(venue, market, t + 100_000, "10", "1", "BUY")
            # the open 1s [t], 10s [t] and 1m [m] candles, and 1s [t+1], [t+2] (no trades yet) are flagged
            await writer.trade_gap(venue, market, t + 500_000, t + 2_500_000)
            await writer.flush()
            base = f"{first.url}/candles/{venue}/{market}"
            await poll_json(f"{base}/1s?include_open=true",
                            lambda st, b: st == 200 and len(b["candles"]) == 3, timeout=20)
            # state in the changelog: the worker committed the marker's offset, so nothing is replayed
            deadline = time.monotonic() + 30
            while not await committed_through_end(cluster.bootstrap, app_id, prefix + TRADES.name,
                                                  TRADES.partitions):
                assert time.monotonic() < deadline, "offsets never committed"
                await asyncio.sleep(0.3)
            first.kill()
            second.start()
            await second.wait_ready()
            base = f"{second.url}/candles/{venue}/{market}"
            body = await poll_json(f"{base}/1s?include_open=true", lambda st, b: st == 200, timeout=20)
            assert [(c["start_ts"] - t, c["gap"], c["trade_count"]) for c in body["candles"]] == [
                (0, True, 1), (S, True, 0), (2 * S, True, 0)]
            status, body = await get_json(f"{base}/1m?include_open=true")
            assert [(c["start_ts"], c["gap"]) for c in body["candles"]] == [(m, True)]
            await writer.trade(venue, market, m + 60 * S + 100, "11", "2", "SELL")  # closes every candle above
            await writer.flush()
            want = {("1s", t): True, ("1s", t + S): True, ("1s", t + 2 * S): True, ("10s", t): True, ("1m", m): True}
            await reader.read_until(lambda rs: set(want) <= set(latest(rs)), timeout=30)
            records = await reader.settle(1.0)
    finally:
        first.kill()
        second.stop()
        delete_topics(cluster.bootstrap, (prefix, app_id))
    got = latest(records)
    assert {k: got[k]["gap"] for k in want} == want
    assert tuple(got[("10s", t)][f] for f in FIGURES) == ("10", "10", "10", "10", "1", "10", "10", "1", "0", 1)
    assert tuple(got[("1s", t + S)][f] for f in FIGURES) == EMPTY
    assert all(r["revision"] == 0 for r in records if (r["interval"], r["start_ts"]) in want)

"""EventStream against the real broker and registry: decoding, filters, dedup, group resume, start positions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from marketpipe.consumer import ConsumerSettings, EventStream
from marketpipe.infra.stack import Cluster
from schemas.registry import ContractRegistry
from schemas.topics import TRADES
from tests.processors.harness import EventWriter, now_us


def settings(cluster: Cluster, **kw: Any) -> ConsumerSettings:
    return ConsumerSettings(kafka_bootstrap=cluster.bootstrap, registry_url=cluster.registry_url, **kw)


async def ids(cluster: Cluster, registry: ContractRegistry, venue: str, **kw: Any) -> list[str]:
    start = kw.pop("start", "earliest")
    async with EventStream(settings(cluster, **kw), TRADES.name, venues={venue}, start=start,
                           registry=registry) as stream:
        return [r.value["event_id"] for r in await stream.read_to_end(timeout_s=120)]


async def test_group_resumes_after_its_committed_offsets_and_duplicates_are_dropped(
        cluster: Cluster, registry: ContractRegistry, unique: str) -> None:
    venue, group = f"st{unique}", f"stream-test-{unique}"
    async with EventWriter(cluster.bootstrap, registry) as w:
        for i in range(3):
            await w.trade(venue, "BTC-USD", now_us(), "1", "1", "BUY", event_id=f"{unique}-{i}")
        await w.trade(venue, "BTC-USD", now_us(), "1", "1", "BUY", event_id=f"{unique}-1")  # a re-delivery
        await w.trade(f"x{venue}", "BTC-USD", now_us(), "1", "1", "BUY", event_id=f"{unique}-other")
        await w.flush()
        assert await ids(cluster, registry, venue, consumer_group_id=group) == [f"{unique}-{i}" for i in range(3)]
        for i in range(3, 5):
            await w.trade(venue, "BTC-USD", now_us(), "1", "1", "BUY", event_id=f"{unique}-{i}")
        await w.flush()
    assert await ids(cluster, registry, venue, consumer_group_id=group) == [f"{unique}-3", f"{unique}-4"]
    assert await ids(cluster, registry, venue, consumer_group_id=group) == []  # nothing new
    # without a group: everything from the beginning, again
    assert await ids(cluster, registry, venue) == [f"{unique}-{i}" for i in range(5)]


async def test_start_at_a_time_uses_the_first_offset_at_or_after_it(
        cluster: Cluster, registry: ContractRegistry, unique: str) -> None:
    venue = f"st{unique}"
    async with EventWriter(cluster.bootstrap, registry) as w:
        await w.trade(venue, "BTC-USD", now_us(), "1", "1", "BUY", event_id=f"{unique}-before")
        await w.flush()
        await asyncio.sleep(0.05)  # record timestamps are milliseconds
        since = datetime.now(UTC)
        await asyncio.sleep(0.05)
        await w.trade(venue, "BTC-USD", now_us(), "1", "1", "BUY", event_id=f"{unique}-after")
        await w.flush()
    assert await ids(cluster, registry, venue, start=since) == [f"{unique}-after"]
    with pytest.raises(ValueError, match="timezone-aware"):
        await ids(cluster, registry, venue, start=datetime(2026, 1, 1))


async def test_a_missing_topic_is_named(cluster: Cluster, registry: ContractRegistry, unique: str) -> None:
    s = settings(cluster, consumer_topic_prefix=f"nope{unique}.")
    with pytest.raises(LookupError, match=f"nope{unique}.marketpipe.trades.v1 does not exist"):
        async with EventStream(s, TRADES.name, registry=registry):
            pass


async def test_a_malformed_record_is_counted_and_skipped(cluster: Cluster, registry: ContractRegistry,
                                                         unique: str) -> None:
    venue = f"st{unique}"
    key = f"{venue}:BTC-USD".encode()
    async with EventWriter(cluster.bootstrap, registry) as w:
        await w.send(TRADES, key, b"not avro at all")
        good = registry.framer("trade").encode({
            "event_id": f"{unique}-ok", "venue": venue, "market": "BTC-USD", "venue_symbol": "BTCUSD",
            "exchange_ts": now_us(), "receive_ts": now_us(), "trade_id": "1", "price": "1", "size": "1",
            "side": "BUY", "liquidation": None})
        await w.send(TRADES, key, good[:-3])  # a truncated body
        await w.send(TRADES, key, good)
        await w.flush()
    async with EventStream(settings(cluster), TRADES.name, venues={venue}, registry=registry) as stream:
        got = await stream.read_to_end(timeout_s=120)
        assert [r.value["event_id"] for r in got] == [f"{unique}-ok"] and stream.malformed == 2

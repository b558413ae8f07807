"""newest_by_key: the newest event of each key read back from the tail of its partition (real Kafka)."""

from __future__ import annotations

from marketpipe.settings import PublisherSettings
from producers.core.emitter import EventEmitter
from producers.core.metrics import FeedMetrics
from producers.core.resume import newest_by_key
from producers.publisher import KafkaPublisher
from schemas.registry import ContractRegistry
from schemas.topics import TRADES, market_key


async def test_newest_event_per_key_across_chunks_and_within_the_scan_limit(
        cluster, registry: ContractRegistry, publisher_settings: PublisherSettings, unique: str) -> None:
    venue = f"res{unique}"
    markets = ["A-USD", "B-USD", "C-USD"]
    publisher = KafkaPublisher(publisher_settings)
    await publisher.start()
    emitter = EventEmitter(venue, registry, publisher, FeedMetrics(venue))
    await emitter.prepare()
    try:
        for i in range(40):  # A and B interleaved; C's only trade comes first, far behind the others
            if i == 0:
                await emitter.trade("C-USD", "C-USD", trade_id="C-USD-1", price="1", size="1", side="BUY",
                                    exchange_ts=1_000 + i, receive_ts=2_000 + i)
            market = markets[i % 2]
            await emitter.trade(market, market, trade_id=f"{market}-{i}", price="1.5", size="2", side="SELL",
                                exchange_ts=1_000 + i, receive_ts=2_000 + i)
        await publisher.flush()
        keys = {market_key(venue, m): m for m in markets}
        partitions = {k: await publisher.partition_of(TRADES.name, k) for k in keys}
    finally:
        await publisher.stop(timeout=30)

    # small chunks: the newest A and B are in the last chunk, C only many chunks further back
    found = await newest_by_key(publisher_settings, registry, TRADES, partitions, scan_max=10_000, chunk=3)
    assert {keys[k]: e["trade_id"] for k, e in found.items()} == {
        "A-USD": "A-USD-38", "B-USD": "B-USD-39", "C-USD": "C-USD-1"}
    # only the last scan_max records of a partition are read (nothing else writes meanwhile: tests run one at a
    # time): A's newest is its partition's last record, unless B shares the partition (then B-39 comes after it)
    a_key, b_key = market_key(venue, "A-USD"), market_key(venue, "B-USD")
    behind = 1 if partitions[a_key] == partitions[b_key] else 0
    too_short = await newest_by_key(publisher_settings, registry, TRADES, {a_key: partitions[a_key]},
                                    scan_max=behind, chunk=1)
    just_enough = await newest_by_key(publisher_settings, registry, TRADES, {a_key: partitions[a_key]},
                                      scan_max=behind + 1, chunk=1)
    assert too_short == {} and just_enough[a_key]["trade_id"] == "A-USD-38"

"""The main job on the embedded default (foundation stage): local Kafka + registry up, schemas
registered, one event per contract published through the KafkaPublisher and read back decoded."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from marketpipe.settings import PublisherSettings
from marketpipe.topics_admin import ensure_topics
from producers.publisher import KafkaPublisher
from schemas import topics
from schemas.registry import ContractRegistry


def now_us() -> int:
    return time.time_ns() // 1000


def sample_events() -> dict[str, dict[str, Any]]:
    """One valid event per market-keyed contract (used by the smoke job and tests)."""
    ts = now_us()
    base = {"venue": "smoke", "market": "BTC-USD", "venue_symbol": "BTCUSD", "exchange_ts": ts, "receive_ts": ts}
    px = str(Decimal("65289.20"))
    return {
        "trade": {**base, "event_id": f"smoke:trade:{uuid.uuid4()}", "trade_id": "1", "price": px,
                  "size": "0.00100000", "side": "BUY", "liquidation": None, "gap": None},
        "book": {**base, "event_id": f"smoke:book:{uuid.uuid4()}", "kind": "SNAPSHOT", "sequence": 1,
                 "prev_sequence": None, "checksum": None, "bids": [{"price": px, "size": "1.5"}],
                 "asks": [{"price": "65289.30", "size": "2"}], "reason": None},
    }


async def run_smoke(settings: PublisherSettings, progress=print) -> dict[str, dict[str, Any]]:
    registry = ContractRegistry(settings.registry_url, basic_auth=settings.registry_auth())
    created = ensure_topics(settings.kafka_bootstrap, replication=settings.topic_replication,
                            min_insync=settings.topic_min_insync_replicas, extra_conf=settings.librdkafka_security())
    progress(f"topics ready ({len(created)} created)")
    regs = registry.register_all()
    progress("schemas registered: " + ", ".join(f"{r.subject}=id {r.schema_id}" for r in regs))
    events = sample_events()
    names = [topics.BY_SCHEMA[n].name for n in events]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                group_id=None, **settings.aiokafka_security())
    await consumer.start()
    try:
        # read back only what is published after this point (the topics may hold anything before)
        tps = [TopicPartition(t, p) for t in names for p in (await consumer._client.fetch_all_metadata()  # noqa: SLF001
                                                                  ).partitions_for_topic(t) or ()]
        consumer.assign(tps)
        start = await consumer.end_offsets(tps)
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        publisher = KafkaPublisher(settings, client_id="marketpipe-smoke")
        await publisher.start()
        t0 = time.monotonic()
        for name, record in events.items():
            value = registry.framer(name).encode(record)
            await publisher.publish(topics.BY_SCHEMA[name], topics.market_key(record["venue"], record["market"]), value)
        await publisher.stop(timeout=30)
        progress(f"published {len(events)} events (acks=all) in {(time.monotonic() - t0) * 1000:.0f} ms")
        back: dict[str, dict[str, Any]] = {}
        wanted = {r["event_id"]: n for n, r in events.items()}
        deadline = time.monotonic() + 30
        while len(back) < len(events) and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for msg in msgs:
                    if msg.key != b"smoke:BTC-USD":
                        continue
                    record = registry.decode(msg.value)
                    if record["event_id"] in wanted:
                        back[wanted[record["event_id"]]] = record
    finally:
        await consumer.stop()
    for name, record in back.items():
        progress(f"read back {name}: {record['venue']}:{record['market']} event_id={record['event_id']}")
    if back.keys() != events.keys():
        raise RuntimeError(f"smoke: only {sorted(back)} of {sorted(events)} came back from Kafka")
    differ = [n for n in events if back[n] != events[n]]
    if differ:
        raise RuntimeError(f"smoke FAILED: decoded {differ} differ from what was published")
    progress("smoke OK: every event came back identical")
    return back


def main(settings: PublisherSettings) -> None:
    asyncio.run(run_smoke(settings))

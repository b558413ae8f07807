"""The main job on the embedded default (foundation stage): local Kafka + registry up, schemas
registered, one event per contract published through the KafkaPublisher and read back decoded."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer

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
                  "size": "0.00100000", "side": "BUY", "liquidation": None},
        "book": {**base, "event_id": f"smoke:book:{uuid.uuid4()}", "kind": "SNAPSHOT", "sequence": 1,
                 "prev_sequence": None, "checksum": None, "bids": [{"price": px, "size": "1.5"}],
                 "asks": [{"price": "65289.30", "size": "2"}], "reason": None},
    }


async def run_smoke(settings: PublisherSettings, progress=print) -> dict[str, dict[str, Any]]:
    registry = ContractRegistry(settings.registry_url, basic_auth=settings.registry_auth())
    created = ensure_topics(settings.kafka_bootstrap, extra_conf=settings.librdkafka_security())
    progress(f"topics ready ({len(created)} created)")
    regs = registry.register_all()
    progress("schemas registered: " + ", ".join(f"{r.subject}=id {r.schema_id}" for r in regs))
    events = sample_events()
    publisher = KafkaPublisher(settings, client_id="marketpipe-smoke")
    await publisher.start()
    t0 = time.monotonic()
    for name, record in events.items():
        spec = topics.BY_SCHEMA[name]
        value = registry.framer(name).encode(record)
        await publisher.publish(spec, topics.market_key(record["venue"], record["market"]), value)
    await publisher.stop(timeout=30)
    progress(f"published {len(events)} events (acks=all) in {(time.monotonic() - t0) * 1000:.0f} ms")
    back: dict[str, dict[str, Any]] = {}
    consumer = AIOKafkaConsumer(*(topics.BY_SCHEMA[n].name for n in events), bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None, **settings.aiokafka_security())
    await consumer.start()
    try:
        wanted = {r["event_id"]: n for n, r in events.items()}
        deadline = time.monotonic() + 30
        while len(back) < len(events) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for msgs in batches.values():
                for msg in msgs:
                    record = registry.decode(msg.value)
                    if record["event_id"] in wanted:
                        back[wanted[record["event_id"]]] = record
    finally:
        await consumer.stop()
    for name, record in back.items():
        progress(f"read back {name}: {record['venue']}:{record['market']} event_id={record['event_id']}")
    if back.keys() != events.keys():
        raise RuntimeError(f"smoke: only {sorted(back)} of {sorted(events)} came back from Kafka")
    progress("smoke OK: every event came back identical" if all(back[n] == events[n] for n in events)
             else "smoke FAILED: decoded events differ")
    return back


def main(settings: PublisherSettings) -> None:
    asyncio.run(run_smoke(settings))

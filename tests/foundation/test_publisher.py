"""KafkaPublisher against a real broker: per-key order across partitions, and no loss or
duplication through a broker outage (idempotent producer + ordered retries)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from marketpipe.infra.ports import free_port
from marketpipe.infra.processes import LocalKafka
from marketpipe.settings import PublisherSettings
from marketpipe.topics_admin import ensure_topics
from producers.publisher import KafkaPublisher
from schemas.topics import KeyKind, TopicSpec


async def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[tuple[int, bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        while not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - first metadata for a new topic
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[int, bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                out.extend((tp.partition, m.key, m.value) for m in msgs)
        # read a little more to catch duplicates beyond the expected count
        for tp, msgs in (await consumer.getmany(timeout_ms=1000)).items():
            out.extend((tp.partition, m.key, m.value) for m in msgs)
        return out
    finally:
        await consumer.stop()


def check_per_key_order(records: list[tuple[int, bytes, bytes]], keys: int, per_key: int) -> None:
    by_key: dict[bytes, list[int]] = defaultdict(list)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for partition, key, value in records:
        by_key[key].append(int(value.split(b":")[1]))
        partitions[key].add(partition)
    assert len(by_key) == keys
    for key, seqs in by_key.items():
        assert seqs == list(range(per_key)), f"{key!r}: lost, duplicated or reordered events"
        assert len(partitions[key]) == 1, f"{key!r} spread over partitions {partitions[key]}"


async def test_per_key_order_across_partitions(transactional, unique: str) -> None:
    cluster = transactional  # idempotent producers need InitProducerId (not on Tansu)
    spec = TopicSpec(f"test.publisher.order.{unique}", "trade", 6, KeyKind.MARKET)
    ensure_topics(cluster.bootstrap, (spec,))
    publisher = KafkaPublisher(PublisherSettings(kafka_bootstrap=cluster.bootstrap, publisher_buffer=500))
    await publisher.start()
    keys, per_key = 24, 400
    for i in range(per_key):
        for k in range(keys):
            await publisher.publish(spec, f"venue:M{k}".encode(), f"M{k}:{i}".encode())
    await publisher.stop(timeout=60)
    assert publisher.acked == keys * per_key
    records = await consume_all(cluster.bootstrap, spec.name, keys * per_key)
    assert len(records) == keys * per_key
    assert len({p for p, _, _ in records}) > 1, "24 keys should use several of the 6 partitions"
    check_per_key_order(records, keys, per_key)


@pytest.fixture
def own_broker(tmp_path: Path):
    kafka = LocalKafka(tmp_path / "kafka", free_port(), free_port())
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.mark.parametrize(("outage_s", "request_timeout_ms"), [(4, 30_000), (9, 2_000)],
                         ids=["short-outage-aiokafka-retries", "outage-beyond-request-timeout-renews-producer"])
async def test_outage_loses_and_duplicates_nothing(own_broker: LocalKafka, outage_s: float,
                                                   request_timeout_ms: int) -> None:
    """Stop the broker while publishing; everything arrives once, in order. In the second case batches
    fail for good inside aiokafka (request timeout) and the publisher re-sends them on a new producer."""
    spec = TopicSpec(f"test.publisher.outage.{request_timeout_ms}", "trade", 3, KeyKind.MARKET)
    ensure_topics(own_broker.bootstrap, (spec,))
    publisher = KafkaPublisher(PublisherSettings(kafka_bootstrap=own_broker.bootstrap, publisher_buffer=2000,
                                                 publisher_request_timeout_ms=request_timeout_ms))
    await publisher.start()
    keys = 6
    sent_per_key = 0
    done = asyncio.Event()

    async def produce() -> None:
        nonlocal sent_per_key
        while not done.is_set():  # a steady stream that spans stop, outage and restart
            for k in range(keys):
                await publisher.publish(spec, f"venue:M{k}".encode(), f"M{k}:{sent_per_key}".encode())
            sent_per_key += 1
            await asyncio.sleep(0.005)

    producing = asyncio.create_task(produce())
    await asyncio.sleep(0.5)
    await asyncio.to_thread(own_broker.stop)  # SIGTERM: broker away
    before_outage = sent_per_key
    await asyncio.sleep(outage_s / 2)
    held_during_outage = publisher.buffered()
    await asyncio.sleep(outage_s / 2)
    await asyncio.to_thread(own_broker.start)  # same data dir, same ports
    await asyncio.sleep(1.0)
    done.set()
    await asyncio.wait_for(producing, 120)
    await publisher.stop(timeout=120)
    per_key = sent_per_key
    assert per_key > before_outage > 0
    assert held_during_outage > 0, "events must be held (not dropped) while Kafka is down"
    assert publisher.acked == keys * per_key
    if request_timeout_ms < outage_s * 1000:
        assert publisher.retries >= 1 and publisher.renewals >= 1, "batches should have failed and been re-sent"
    records = await consume_all(own_broker.bootstrap, spec.name, keys * per_key, timeout=90)
    assert len(records) == keys * per_key, f"{len(records)} records for {keys * per_key} published"
    check_per_key_order(records, keys, per_key)

"""KafkaPublisher against a real broker: per-key order across partitions; no loss and no duplicate
(for read_committed and read_uncommitted consumers) through a broker outage longer than the request
timeout (batches never expire, the idempotent producer is never renewed); outage metrics live on
/metrics while the outage lasts; aiokafka's child-logger warnings rate limited."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from marketpipe.infra.ports import free_port
from marketpipe.infra.processes import LocalKafka
from marketpipe.settings import PublisherSettings
from marketpipe.topics_admin import ensure_topics
from producers.core.health import HealthServer
from producers.core.runtime import RateLimitFilter, rate_limit_noisy_loggers
from producers.publisher import KafkaPublisher
from schemas.topics import KeyKind, TopicSpec


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0,
                      isolation_level: str = "read_committed") -> list[tuple[int, bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                isolation_level=isolation_level)
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
    kafka.start(timeout=240)
    try:
        yield kafka
    finally:
        kafka.stop()


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(("outage_s", "request_timeout_ms"), [(4, 30_000), (9, 2_000)],
                         ids=["short-outage", "outage-beyond-request-timeout"])
async def test_outage_loses_and_duplicates_nothing(own_broker: LocalKafka, outage_s: float,
                                                   request_timeout_ms: int) -> None:
    """Stop the broker while publishing (SIGTERM), keep it away, start it again: every event arrives
    once, in order per key, seen by a read_committed and a read_uncommitted consumer alike. In the second
    case the outage lasts far beyond the request timeout: batches are retried inside aiokafka on the same
    producer id (they never expire), and the producer is never renewed. aiokafka's retry warnings are
    counted and reach a handler rate-limited."""
    spec = TopicSpec(f"test.publisher.outage.{request_timeout_ms}", "trade", 3, KeyKind.MARKET)
    ensure_topics(own_broker.bootstrap, (spec,))
    seen = Records()
    aiokafka_log = logging.getLogger("aiokafka")
    aiokafka_log.addHandler(seen)
    rate_limit_noisy_loggers([seen], RateLimitFilter(every=10.0))
    watched_since = time.monotonic()
    kafka_retries_before = sample("marketpipe_publisher_kafka_retries_total")
    publisher = KafkaPublisher(PublisherSettings(kafka_bootstrap=own_broker.bootstrap, publisher_buffer=2000,
                                                 publisher_request_timeout_ms=request_timeout_ms))
    try:
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
        await wait_for(lambda: publisher.acked >= keys * 20, 120, "events acknowledged before the outage")
        await asyncio.to_thread(own_broker.stop)  # SIGTERM: broker away
        down_at = time.monotonic()
        before_outage = sent_per_key
        await asyncio.sleep(outage_s / 2)
        held_during_outage = publisher.buffered()
        await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - down_at)))
        outage = time.monotonic() - down_at
        await asyncio.to_thread(own_broker.start, 240)  # same data dir, same ports
        await wait_for(lambda: publisher.acked > keys * before_outage, 180, "deliveries after the restart")
        done.set()
        await asyncio.wait_for(producing, 180)
        await publisher.stop(timeout=180)
    finally:
        aiokafka_log.removeHandler(seen)
        watched = time.monotonic() - watched_since
    per_key = sent_per_key
    assert per_key > before_outage > 0
    assert held_during_outage > 0, "events must be held (not dropped) while Kafka is down"
    assert outage * 1000 > request_timeout_ms or request_timeout_ms == 30_000
    assert publisher.acked == keys * per_key
    assert publisher.renewals == 0, "an outage must never renew the producer (a new producer id can duplicate)"
    for isolation in ("read_committed", "read_uncommitted"):
        records = await consume_all(own_broker.bootstrap, spec.name, keys * per_key, timeout=120,
                                    isolation_level=isolation)
        assert len(records) == keys * per_key, f"{isolation}: {len(records)} records for {keys * per_key} published"
        check_per_key_order(records, keys, per_key)
    kafka_retries = sample("marketpipe_publisher_kafka_retries_total") - kafka_retries_before
    assert kafka_retries >= 1, "aiokafka's internal retries during the outage must be counted"
    # how many retry warnings aiokafka logs depends on timing (while no broker answers it mostly waits
    # for metadata); whatever their number, at most one per template per 10 s reaches the handler
    sender = [r for r in seen.records if r.name == "aiokafka.producer.sender"]
    assert len(sender) <= kafka_retries
    per_template: dict[object, int] = defaultdict(int)
    for r in sender:
        per_template[r.msg.split(" (and ")[0]] += 1
    assert all(n <= 1 + watched / 10 for n in per_template.values()), (per_template, watched)


async def scrape(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("marketpipe_publisher_")}


async def test_outage_metrics_are_live_on_the_metrics_endpoint(own_broker: LocalKafka) -> None:
    """/metrics scraped during an outage: the buffer gauge and the blocked time grow while it lasts
    (not only once the wait ends), and the buffer stays within buffer + in-flight."""
    spec = TopicSpec("test.publisher.metrics", "trade", 2, KeyKind.MARKET)
    ensure_topics(own_broker.bootstrap, (spec,))
    buffer, in_flight = 300, 100
    publisher = KafkaPublisher(PublisherSettings(kafka_bootstrap=own_broker.bootstrap, publisher_buffer=buffer,
                                                 publisher_max_in_flight=in_flight,
                                                 publisher_request_timeout_ms=2_000))
    health = HealthServer(free_port(), host="127.0.0.1", ready=lambda: (True, ""))
    await health.start()
    await publisher.start()
    published = 0

    async def produce() -> None:
        nonlocal published
        while True:
            await publisher.publish(spec, f"venue:M{published % 4}".encode(), f"M{published % 4}:{published}".encode())
            published += 1
            await asyncio.sleep(0.01)

    producing = asyncio.create_task(produce())
    try:
        await wait_for(lambda: publisher.acked >= 20, 120, "events acknowledged before the outage")
        scrapes = [await scrape(health.port)]
        await asyncio.to_thread(own_broker.stop)

        async def scraped(check: Callable[[dict[str, float]], bool], what: str) -> dict[str, float]:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                await asyncio.sleep(0.3)
                got = await scrape(health.port)
                if check(got):
                    scrapes.append(got)
                    return got
            raise AssertionError(f"no scrape showed {what}: last {got}")

        first = await scraped(lambda m: m["marketpipe_publisher_buffer_events"] >= 30, "events buffered")
        second = await scraped(lambda m: m["marketpipe_publisher_buffer_events"]
                               > first["marketpipe_publisher_buffer_events"]
                               and m["marketpipe_publisher_blocked_seconds_total"] > 0.2,
                               "the buffer growing and a caller blocked")
        third = await scraped(lambda m: m["marketpipe_publisher_blocked_seconds_total"]
                              > second["marketpipe_publisher_blocked_seconds_total"] + 0.5,
                              "the blocked time growing during the wait")
        assert own_broker.pid is None, "all three scrapes happened during the outage"
        assert third["marketpipe_publisher_buffer_events"] <= buffer + in_flight
        # the first produce attempt after the stop fails inside aiokafka, which retries it: counted
        assert third["marketpipe_publisher_kafka_retries_total"] > scrapes[0]["marketpipe_publisher_kafka_retries_total"]
        await asyncio.to_thread(own_broker.start, 240)
        await wait_for(lambda: publisher.buffered() < buffer, 180, "the buffer draining after the restart")
    finally:
        producing.cancel()
        await asyncio.gather(producing, return_exceptions=True)
        await publisher.stop(timeout=180)
        await health.stop()
    assert publisher.acked == published
    records = await consume_all(own_broker.bootstrap, spec.name, published, timeout=120)
    assert len(records) == published


async def test_a_stop_that_times_out_counts_what_kafka_never_acknowledged(own_broker: LocalKafka) -> None:
    """Stopping while Kafka is unreachable: stop() gives up after its timeout, and every event Kafka never
    acknowledged is counted (marketpipe_publisher_events_abandoned_total, per topic), not just logged."""
    spec = TopicSpec("test.publisher.abandoned", "trade", 2, KeyKind.MARKET)
    ensure_topics(own_broker.bootstrap, (spec,))
    publisher = KafkaPublisher(PublisherSettings(kafka_bootstrap=own_broker.bootstrap, publisher_buffer=100,
                                                 publisher_max_in_flight=10, publisher_request_timeout_ms=2_000))
    await publisher.start()

    def abandoned() -> float:
        return REGISTRY.get_sample_value("marketpipe_publisher_events_abandoned_total", {"topic": spec.name}) or 0.0

    before = abandoned()
    try:
        for i in range(20):
            await publisher.publish(spec, f"venue:M{i % 3}".encode(), f"M{i % 3}:{i}".encode())
        await publisher.flush()
        assert publisher.acked == 20
        await asyncio.to_thread(own_broker.stop)
        for i in range(20, 65):  # 45 events Kafka will never see from this process
            await publisher.publish(spec, f"venue:M{i % 3}".encode(), f"M{i % 3}:{i}".encode())
        with pytest.raises(TimeoutError):
            await publisher.stop(timeout=2)
        assert publisher.abandoned == 45 and publisher.acked == 20
        assert abandoned() - before == 45
    finally:
        await asyncio.to_thread(own_broker.start, 240)  # later tests of this module find their broker

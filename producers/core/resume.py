"""Where a producer left off, read back from Kafka: the newest event of each key on a topic.

A producer that restarts (a deploy, a crash, kill -9) remembers nothing of what it published: without
this, the first trade it sees after the restart becomes its baseline, so the venue's trades between the
last one in Kafka and that first one are lost without a trace, and the trades a subscribe reply repeats are
published a second time. The topic itself knows where the producer stopped: its events are keyed by market,
so the newest event of a key is in one partition (the one the publisher's partitioner gives that key), near
its end. ``newest_by_key`` reads each such partition backwards in chunks until every wanted key is found
or ``scan_max`` records were read (a market quiet for longer than that starts from scratch, as before).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from marketpipe.settings import KafkaClientSettings
from producers.publisher import KafkaPublisher
from schemas.registry import ContractRegistry
from schemas.topics import TRADES, TopicSpec

log = logging.getLogger(__name__)


async def newest_by_key(settings: KafkaClientSettings, registry: ContractRegistry, topic: TopicSpec,
                        partitions: dict[bytes, int], *, scan_max: int, chunk: int = 2_000,
                        timeout: float = 60.0) -> dict[bytes, dict[str, Any]]:
    """The newest decoded event of each key of ``partitions`` (key -> its partition) on ``topic``; keys with
    no event in the last ``scan_max`` records of their partition are left out."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, client_id="marketpipe-resume",
                                isolation_level="read_committed", **settings.aiokafka_security())
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            return await _scan(consumer, registry, topic, partitions, scan_max=scan_max, chunk=chunk)
    finally:
        await consumer.stop()


async def _scan(consumer: AIOKafkaConsumer, registry: ContractRegistry, topic: TopicSpec,
                partitions: dict[bytes, int], *, scan_max: int, chunk: int) -> dict[bytes, dict[str, Any]]:
    wanted_by_tp: dict[TopicPartition, set[bytes]] = {}
    for key, p in partitions.items():
        wanted_by_tp.setdefault(TopicPartition(topic.name, p), set()).add(key)
    tps = sorted(wanted_by_tp, key=lambda tp: tp.partition)
    consumer.assign(tps)
    begins = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    found: dict[bytes, dict[str, Any]] = {}
    for tp in tps:
        wanted = wanted_by_tp[tp]
        floor = max(begins[tp], ends[tp] - scan_max)
        hi = ends[tp]
        while wanted and hi > floor:
            lo = max(floor, hi - chunk)
            newest: dict[bytes, bytes] = {}
            consumer.seek(tp, lo)
            while await consumer.position(tp) < hi:
                batch = await consumer.getmany(tp, timeout_ms=1_000)
                for rec in batch.get(tp, []):
                    if rec.offset >= hi:
                        break
                    if rec.key in wanted and rec.value is not None:
                        newest[rec.key] = rec.value  # later offsets overwrite: the newest of this chunk
            for key, value in newest.items():
                found[key] = await asyncio.to_thread(registry.decode, value)
                wanted.discard(key)
            hi = lo
    return found


async def newest_trades(settings: KafkaClientSettings, registry: ContractRegistry, publisher: KafkaPublisher,
                        keys: list[bytes], *, scan_max: int, timeout: float = 60.0) -> dict[bytes, dict[str, Any]]:
    """The newest trade (or gap marker) of each market key on the trades topic, from the partitions the
    publisher sends those keys to. Raises when Kafka or the registry cannot answer within ``timeout``."""
    async with asyncio.timeout(timeout):
        partitions = {k: await publisher.partition_of(TRADES.name, k) for k in keys}
        return await newest_by_key(settings, registry, TRADES, partitions, scan_max=scan_max, timeout=timeout)


def covered_through(event: dict[str, Any], number: Callable[[str], int | None]) -> tuple[int, int] | None:
    """(the highest trade number the event accounts for, its exchange time in micros) of a trade read back by
    ``newest_trades``: a trade its own number; a gap marker the number before its ``before_id`` (the trade
    that revealed the hole, published right after the marker, maybe not yet). None when ``number`` cannot
    read the id."""
    gap = event.get("gap")
    n = number(str(gap["before_id"] if gap else event["trade_id"]))
    if n is None:
        return None
    return (n - 1, int(gap["to_ts"])) if gap else (n, int(event["exchange_ts"]))

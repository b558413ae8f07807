"""Read back what a producer wrote: mark end offsets before a test, then read decoded events after it.

Reusable by every venue's tests (the broker is shared, so always filter by your own keys)::

    start = await end_offsets(cluster.bootstrap, [BOOK, TRADES])
    ... run the producer, flush ...
    events = await read_events(cluster.bootstrap, registry, BOOK, start[BOOK.name], keys={market_key(v, m)})

``read_events`` reads every partition from the given start offsets up to the end offsets as they are
when it is called (so flush the producer first), decodes each value through the registry (writer
schema by id) and returns the events of the wanted keys in per-partition offset order, each with
``_key``, ``_partition`` and ``_offset`` added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.registry import ContractRegistry
from schemas.topics import TopicSpec


async def end_offsets(bootstrap: str, topics: Iterable[TopicSpec]) -> dict[str, dict[int, int]]:
    """{topic: {partition: end offset}} now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        out: dict[str, dict[int, int]] = {}
        for spec in topics:
            parts = consumer.partitions_for_topic(spec.name)
            if not parts:
                await consumer._client.force_metadata_update()  # first look at a topic
                parts = consumer.partitions_for_topic(spec.name) or set()
            tps = [TopicPartition(spec.name, p) for p in sorted(parts)]
            ends = await consumer.end_offsets(tps)
            out[spec.name] = {tp.partition: off for tp, off in ends.items()}
        return out
    finally:
        await consumer.stop()


async def read_events(bootstrap: str, registry: ContractRegistry, topic: TopicSpec, start: dict[int, int], *,
                      keys: set[bytes] | None = None, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Decoded events of ``keys`` (all if None) between ``start`` and the current end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic.name, p) for p in sorted(start)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > start[tp.partition]}
        for tp in tps:
            consumer.seek(tp, start[tp.partition])
        out: dict[int, list[dict[str, Any]]] = {tp.partition: [] for tp in tps}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while todo:
            if loop.time() > deadline:
                raise TimeoutError(f"reading {topic.name}: partitions {sorted(tp.partition for tp in todo)} "
                                   f"did not reach their end offsets in {timeout}s")
            batches = await consumer.getmany(*todo, timeout_ms=500)
            for tp, records in batches.items():
                for rec in records:
                    if rec.offset >= ends[tp]:
                        break
                    if keys is None or rec.key in keys:
                        event = registry.decode(rec.value)
                        event["_key"] = rec.key
                        event["_partition"] = tp.partition
                        event["_offset"] = rec.offset
                        out[tp.partition].append(event)
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        return [e for p in sorted(out) for e in out[p]]
    finally:
        await consumer.stop()

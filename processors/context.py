"""Helpers tying state writes to the source event that caused them (faust table partition rules)."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiokafka.partitioner import murmur2
from faust.types import EventT

from processors.faust_fence import current_event_var  # faust's (private) current-event ContextVar


def wall_us() -> int:
    return time.time_ns() // 1000


def key_partition(key: bytes, partitions: int) -> int:
    """Kafka's default (murmur2) partitioner: the partition producers and faust both pick for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@contextmanager
def event_context(event: EventT) -> Iterator[None]:
    """Make `event` faust's current event, so a table write lands in that event's partition.

    Batches taken with Stream.take_events mix partitions; faust's table and RocksDB store pick the
    changelog partition and the partition database from the current event.
    """
    token = current_event_var.set(weakref.ref(event))
    try:
        yield
    finally:
        current_event_var.reset(token)


def describe(event: EventT) -> dict[str, Any]:
    m = event.message
    return {"topic": m.topic, "partition": m.partition, "offset": m.offset, "key": m.key}

"""CapturingEmitter: an EventEmitter that keeps records in memory (unit tests of venue logic, no Kafka).

Integration tests must use the real ``EventEmitter`` (real Kafka + registry); this double is for
transport/book unit tests only. ``records`` holds ``(topic name, key, record)`` in publish order.
"""

from __future__ import annotations

from typing import Any

from producers.core.emitter import EventEmitter
from producers.core.metrics import FeedMetrics
from schemas.topics import BOOK, TopicSpec


class CapturingEmitter(EventEmitter):
    def __init__(self, venue: str, metrics: FeedMetrics) -> None:
        super().__init__(venue, None, None, metrics)  # type: ignore[arg-type]
        self.records: list[tuple[str, bytes, dict[str, Any]]] = []

    async def prepare(self, topics: tuple[TopicSpec, ...] = ()) -> None:
        return None

    async def emit(self, spec: TopicSpec, key: bytes, record: dict[str, Any], channel: str) -> None:
        self.records.append((spec.name, key, record))
        self.metrics.inc("events_out", channel)

    def of(self, spec: TopicSpec) -> list[dict[str, Any]]:
        return [r for name, _, r in self.records if name == spec.name]

    def books(self) -> list[dict[str, Any]]:
        return self.of(BOOK)

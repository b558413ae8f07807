"""Decoded events of a marketpipe topic, over aiokafka, through the schema registry.

    async with EventStream(ConsumerSettings(), "marketpipe.trades.v1", venues={"drift"}) as stream:
        async for record in stream:
            print(record.key, record.value["price"])

- Values are decoded with the writer schema fetched from the registry by the id in the Confluent header
  (`schemas.registry.ContractRegistry.decode`), so every schema version reads.
- Duplicates (same `event_id`) are dropped within a bounded window (`consumer_dedup_window`).
- A record that is not Confluent-framed Avro (or whose body is corrupt) is counted (`malformed`), logged with
  topic/partition/offset and skipped; an unreachable registry or an unknown schema id raises.
- `venues` / `markets` filter on the record key (`<venue>:<market>`) before decoding.
- Where to start: with `consumer_group_id` set, from the group's committed offsets (auto-committed every
  5 s and on close: a restart resumes; delivery is at-least-once), else `consumer_auto_offset_reset`.
  Without a group: `start="earliest"` (default), `"latest"`, or a datetime (first offset at or after it,
  Kafka's offsets_for_times); `start` with a group only applies where the group has no committed offset.
- `stop_at_end=True` ends the iteration once every partition reached the end offset it had when the
  stream was assigned (read what is there, then stop), which is what batch jobs and tests want.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from marketpipe.consumer.dedup import Deduplicator
from marketpipe.consumer.settings import ConsumerSettings
from schemas.registry import ContractRegistry
from schemas.serde import FramingError
from schemas.topics import parse_key

log = logging.getLogger(__name__)

Start = Literal["earliest", "latest"] | datetime


@dataclass(frozen=True)
class Record:
    """One decoded event with where it came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str
    value: dict[str, Any]


class EventStream:
    def __init__(self, settings: ConsumerSettings, topic: str, *, venues: Iterable[str] | None = None,
                 markets: Iterable[str] | None = None, start: Start = "earliest", stop_at_end: bool = False,
                 registry: ContractRegistry | None = None) -> None:
        self.settings = settings
        self.topic = settings.consumer_topic_prefix + topic
        self.venues = set(venues) if venues else None
        self.markets = set(markets) if markets else None
        self.start_at = start
        self.stop_at_end = stop_at_end
        self.registry = registry or ContractRegistry(settings.registry_url, basic_auth=settings.registry_auth())
        self.dedup = Deduplicator(settings.consumer_dedup_window)
        self.filtered = 0
        self.malformed = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: dict[TopicPartition, int] | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    async def __aenter__(self) -> EventStream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        s = self.settings
        group = s.consumer_group_id
        reset = s.consumer_auto_offset_reset if group else "earliest"
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=group, enable_auto_commit=group is not None,
            auto_offset_reset=reset, max_poll_records=s.consumer_max_poll_records, **s.aiokafka_security())
        await consumer.start()
        self._consumer = consumer
        try:
            if group is None:
                partitions = await self._partitions()
                consumer.assign(partitions)
                await self._seek(partitions)
            else:
                consumer.subscribe([self.topic])
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()  # commits the consumed positions when the stream has a group

    async def commit(self) -> None:
        """Commit the positions of everything yielded so far (the group resumes after it)."""
        if self._consumer is not None and self.settings.consumer_group_id is not None:
            await self._consumer.commit()

    async def _partitions(self) -> list[TopicPartition]:
        s = self.settings
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, **s.aiokafka_security())
        await admin.start()
        try:
            described = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        parts = sorted(p["partition"] for t in described if t.get("topic") == self.topic and not t.get("error_code")
                       for p in t["partitions"])
        if not parts:
            raise LookupError(f"topic {self.topic} does not exist (or has no partitions) on {s.kafka_bootstrap}")
        return [TopicPartition(self.topic, p) for p in parts]

    async def _seek(self, partitions: list[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        if self.start_at == "latest":
            await consumer.seek_to_end(*partitions)
            for tp in partitions:  # resolve the end now: events published after start() are all read
                await consumer.position(tp)
        elif self.start_at == "earliest":
            await consumer.seek_to_beginning(*partitions)
        else:
            when = self.start_at
            if when.tzinfo is None:
                raise ValueError("start datetime must be timezone-aware (UTC)")
            found = await consumer.offsets_for_times({tp: int(when.timestamp() * 1000) for tp in partitions})
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])

    # -- reading -------------------------------------------------------------------------------------
    def _wanted(self, key: bytes | None) -> bool:
        if self.venues is None and self.markets is None:
            return True
        if key is None:
            return False
        try:
            venue, rest = parse_key(key)
        except (ValueError, UnicodeDecodeError):
            return False
        return (self.venues is None or venue in self.venues) and (self.markets is None or rest in self.markets)

    async def _at_end(self) -> bool:
        """True once every assigned partition's position reached its end offset as of the first check."""
        consumer = self._consumer
        assert consumer is not None
        assigned = consumer.assignment()
        if not assigned:
            return False
        if self._ends is None or set(self._ends) != set(assigned):
            self._ends = await consumer.end_offsets(list(assigned))
        for tp, end in self._ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    async def batch(self, timeout_s: float = 1.0) -> list[Record]:
        """The next decoded, deduplicated, filtered records (possibly none after timeout_s)."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("EventStream is not started (use `async with`)")
        raw = await consumer.getmany(timeout_ms=int(timeout_s * 1000))
        out: list[Record] = []
        for tp in sorted(raw, key=lambda t: t.partition):
            for msg in raw[tp]:
                record = self._decode(msg)
                if record is not None:
                    out.append(record)
        return out

    def _decode(self, msg: ConsumerRecord) -> Record | None:
        if not self._wanted(msg.key) or msg.value is None:
            self.filtered += 1
            return None
        try:
            value = self.registry.decode(msg.value)
        except (FramingError, ValueError, EOFError, IndexError) as exc:  # not framed Avro, or a corrupt body
            self.malformed += 1
            log.warning("skipping malformed record %s[%d]@%d key=%r: %s: %s", msg.topic, msg.partition,
                        msg.offset, msg.key, type(exc).__name__, exc)
            return None
        event_id = value.get("event_id")
        if event_id is not None and self.dedup.seen(str(event_id)):
            return None
        key = msg.key.decode(errors="replace") if msg.key is not None else ""
        return Record(msg.topic, msg.partition, msg.offset, msg.timestamp, key, value)

    async def __aiter__(self) -> AsyncIterator[Record]:
        while True:
            if self.stop_at_end and await self._at_end():
                return
            for record in await self.batch(1.0 if not self.stop_at_end else 0.2):
                yield record

    async def read_to_end(self, timeout_s: float = 60.0) -> list[Record]:
        """Everything up to the end offsets (as of assignment); TimeoutError when not done within timeout_s."""
        async def collect() -> list[Record]:
            out: list[Record] = []
            while not await self._at_end():
                out.extend(await self.batch(0.2))
            return out

        return await asyncio.wait_for(collect(), timeout_s)

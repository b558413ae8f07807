"""KafkaPublisher: the one way producers write to Kafka.

- aiokafka with ``acks=all`` and idempotence: broker-side dedup of retried batches, per-partition order.
- Batches never expire (``marketpipe.aiokafka_fence.never_expire_batches``): through any outage aiokafka
  retries a batch on the same producer id with the same sequence numbers, so the broker drops a retry of
  a batch it already wrote. The producer is renewed only after an error by which the broker refused a
  batch (never because of an outage), so no consumer sees a duplicate.
- A bounded in-memory buffer (``publisher_buffer`` events). ``publish()`` awaits while it is full:
  back-pressure reaches the venue reader instead of memory growing or events being dropped.
- A sender task drains the buffer, groups events by partition (keys map to partitions with Kafka's
  murmur2 partitioner, cached per key), hands aiokafka whole batches (``send_batch``), and waits for
  every batch's acknowledgement before the next drain. A failed batch is retried, with capped
  exponential backoff, before anything newer is sent: so per-key order holds through outages and
  nothing is dropped. Batches aiokafka refused before queueing them (its per-partition queue stayed full
  for ``request_timeout_ms`` while an earlier batch was being retried) are re-sent on the same producer.
  ``stop()`` flushes what is buffered.
- Memory: at most ``publisher_buffer`` + ``publisher_max_in_flight`` events (the buffer and the drain
  being delivered).
- Metrics computed when scraped (live during an outage): buffered events, time callers have been
  blocked (including waits still going on), aiokafka's internal retries, the publisher's re-sends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from marketpipe.aiokafka_fence import count_internal_retries, never_expire_batches
from marketpipe.settings import PublisherSettings
from schemas.topics import TopicSpec

log = logging.getLogger(__name__)

EVENTS_QUEUED = Counter("marketpipe_publisher_events_queued_total", "Events accepted into the buffer", ["topic"])
EVENTS_ACKED = Counter("marketpipe_publisher_events_acked_total", "Events acknowledged by Kafka", ["topic"])
BATCH_RETRIES = Counter("marketpipe_publisher_batch_retries_total",
                        "Partition batches the publisher re-sent (aiokafka refused to queue them, or refused them)")
KAFKA_RETRIES = Counter("marketpipe_publisher_kafka_retries_total",
                        "Produce attempts that failed inside aiokafka and that it retries itself (same producer "
                        "id and sequence numbers); counted from aiokafka.producer.sender's warnings")
RENEWALS = Counter("marketpipe_publisher_producer_renewals_total",
                   "New idempotent producers started after Kafka refused a batch for good")
BUFFER_DEPTH = Gauge("marketpipe_publisher_buffer_events",
                     "Events buffered or in flight, not yet acknowledged (read when scraped)")
ABANDONED = Counter("marketpipe_publisher_events_abandoned_total",
                    "Events still unacknowledged by Kafka when the publisher stopped (a stop timeout while Kafka "
                    "was unreachable): lost to this process; venues with consecutive trade ids recover their "
                    "trades at the next start (producers/core/resume.py)", ["topic"])
LAST_ERROR = Gauge("marketpipe_publisher_last_error_timestamp_seconds", "When the last send error happened")

Item = tuple[str, bytes, bytes, float | None]  # topic, key, value, enqueue time (for latency probes)


class PublisherClosed(RuntimeError):
    pass


class BlockedTime(Collector):
    """``marketpipe_publisher_blocked_seconds_total``: time callers of ``publish()`` waited on a full
    buffer, including the waits still going on when scraped (a Counter would only move when a wait
    ends, i.e. after the outage)."""

    def __init__(self) -> None:
        self.ended = 0.0
        self._waiting: dict[int, float] = {}
        self._tokens = itertools.count()

    def begin(self) -> int:
        token = next(self._tokens)
        self._waiting[token] = time.monotonic()
        return token

    def end(self, token: int) -> None:
        self.ended += time.monotonic() - self._waiting.pop(token)

    def total(self) -> float:
        now = time.monotonic()
        return self.ended + sum(now - t0 for t0 in list(self._waiting.values()))

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("marketpipe_publisher_blocked_seconds",
                                  "Time callers waited on a full buffer (ongoing waits included)", value=self.total())


BLOCKED = BlockedTime()
REGISTRY.register(BLOCKED)
_LIVE: weakref.WeakSet[KafkaPublisher] = weakref.WeakSet()
BUFFER_DEPTH.set_function(lambda: sum(p.buffered() for p in list(_LIVE)))
count_internal_retries(KAFKA_RETRIES.inc)


class KafkaPublisher:
    def __init__(self, settings: PublisherSettings, *, client_id: str = "marketpipe-producer",
                 on_ack: Callable[[list[Item]], None] | None = None) -> None:
        self.settings = settings
        self.client_id = client_id
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=settings.publisher_buffer)
        self._producer: AIOKafkaProducer | None = None
        self._sender: asyncio.Task[None] | None = None
        self._partitioner = DefaultPartitioner()
        self._partition_cache: dict[tuple[str, bytes], int] = {}
        self._partitions: dict[str, list[int]] = {}
        self._queued_counters: dict[str, Any] = {}
        self._in_flight = 0
        self._in_flight_items: list[Item] = []
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_ack = on_ack
        self.acked = 0
        self.abandoned = 0  # events still unacknowledged when stop() gave up
        self.retries = 0
        self.renewals = 0
        self.last_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        _LIVE.add(self)
        self._producer = self._new_producer()
        await self._start_producer()
        self._sender = asyncio.create_task(self._send_loop(), name="kafka-publisher")

    def _new_producer(self) -> AIOKafkaProducer:
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=s.publisher_linger_ms,
            max_batch_size=s.publisher_max_batch_bytes,
            compression_type=None if s.publisher_compression == "none" else s.publisher_compression,
            request_timeout_ms=s.publisher_request_timeout_ms,
            retry_backoff_ms=200,
            **s.aiokafka_security(),
        )
        never_expire_batches(producer)
        return producer

    async def _renew_producer(self) -> None:
        """Kafka refused a batch for good (a non-retriable error answer: the broker did not write it, and
        batches never expire, so an outage never lands here). aiokafka had already given it sequence
        numbers, so re-sending it on the same producer id would leave a sequence gap
        (OutOfOrderSequenceNumber forever). Start a new idempotent producer and re-send on it."""
        old, self._producer = self._producer, self._new_producer()
        self._partitions.clear()
        self._partition_cache.clear()
        if old is not None:
            try:
                await asyncio.wait_for(old.stop(), 5)
            except Exception as exc:  # the old producer may be wedged; it holds nothing we still need
                log.debug("old producer did not stop cleanly: %s", exc)
        await self._start_producer()

    async def _start_producer(self) -> None:
        delay = 0.5
        while True:
            try:
                assert self._producer is not None
                await self._producer.start()
                return
            except Exception as exc:  # broker not reachable yet: keep trying, say so
                self._note_error(exc)
                log.warning("kafka not reachable at %s (%s); retrying in %.1fs",
                            self.settings.kafka_bootstrap, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop(self, timeout: float | None = None) -> None:
        """Flush everything buffered, then close. With a timeout, raises if not flushed in time."""
        self._closing = True
        try:
            await asyncio.wait_for(self.flush(), timeout)
        finally:
            if self.buffered():
                self.abandoned = self.buffered()
                for topic, n in self._unacked_by_topic().items():
                    ABANDONED.labels(topic).inc(n)
                log.error("publisher stopping with %d events not acknowledged by Kafka (%s): counted in "
                          "marketpipe_publisher_events_abandoned_total", self.abandoned, self.last_error)
            _LIVE.discard(self)
            if self._sender is not None:
                self._sender.cancel()
                await asyncio.gather(self._sender, return_exceptions=True)
            if self._producer is not None:
                try:  # aiokafka's stop() waits for its batches, which never expire: bound it
                    await asyncio.wait_for(self._producer.stop(), 10 if self.abandoned else None)
                except TimeoutError:
                    log.error("kafka producer did not stop within 10 s (broker unreachable)")

    # -- publishing --------------------------------------------------------------------------
    async def publish(self, topic: TopicSpec | str, key: bytes, value: bytes, *, stamp: float | None = None) -> None:
        """Buffer one event; waits (back-pressure) while the buffer is full. Never drops."""
        if self._closing:
            raise PublisherClosed("publisher is stopping")
        name = topic if isinstance(topic, str) else topic.name
        item = (name, key, value, stamp)
        self._idle.clear()
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            token = BLOCKED.begin()
            try:
                await self._queue.put(item)
            finally:
                BLOCKED.end(token)
        counter = self._queued_counters.get(name)
        if counter is None:  # labels() costs ~6 % of a producer's CPU at full rate: look it up once
            counter = self._queued_counters[name] = EVENTS_QUEUED.labels(name)
        counter.inc()

    def _unacked_by_topic(self) -> dict[str, int]:
        """Stopping with events Kafka has not acknowledged: how many per topic (takes them out of the buffer;
        in-flight ones count whole: during an outage, the only time this happens, none of them is acked)."""
        out: dict[str, int] = defaultdict(int)
        for item in self._in_flight_items:
            out[item[0]] += 1
        while not self._queue.empty():
            out[self._queue.get_nowait()[0]] += 1
        return out

    def buffered(self) -> int:
        return self._queue.qsize() + self._in_flight

    async def flush(self) -> None:
        while self.buffered():
            self._idle.clear()
            await self._idle.wait()

    # -- sender ------------------------------------------------------------------------------
    async def partition_of(self, topic: str, key: bytes) -> int:
        """The partition this publisher sends ``key`` to on ``topic`` (waits for metadata while Kafka is away)."""
        return await self._partition(topic, key)

    async def _partition(self, topic: str, key: bytes) -> int:
        cached = self._partition_cache.get((topic, key))
        if cached is not None:
            return cached
        parts = self._partitions.get(topic)
        while parts is None:
            assert self._producer is not None
            try:
                parts = sorted(await self._producer.partitions_for(topic))
            except Exception as exc:  # no metadata while Kafka is away: keep the events, ask again
                self._note_error(exc)
                log.warning("no partitions known for %s (%s); asking again", topic, self.last_error)
                await asyncio.sleep(1.0)
                continue
            self._partitions[topic] = parts
        p = self._partitioner(key, parts, parts)
        self._partition_cache[(topic, key)] = p
        return p

    async def _send_loop(self) -> None:
        while True:
            first = await self._queue.get()
            items = [first]
            while len(items) < self.settings.publisher_max_in_flight:
                try:
                    items.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self._in_flight = len(items)
            self._in_flight_items = items
            groups: dict[tuple[str, int], list[Item]] = defaultdict(list)
            cache = self._partition_cache
            for item in items:
                partition = cache.get((item[0], item[1]))  # hot path: no coroutine once a key is known
                if partition is None:
                    partition = await self._partition(item[0], item[1])
                groups[(item[0], partition)].append(item)
            await self._deliver(groups)
            self._in_flight = 0
            self._in_flight_items = []
            if self.on_ack is not None:
                self.on_ack(items)
            if self._queue.empty():
                self._idle.set()

    async def _deliver(self, groups: dict[tuple[str, int], list[Item]]) -> None:
        """Deliver every group; returns once Kafka acknowledged all of them, in order per partition."""
        pending = dict(groups)
        delay = 0.2
        while pending:
            sent = {tp: await self._send_group(tp, group) for tp, group in pending.items()}
            failed: dict[tuple[str, int], list[Item]] = {}
            refused = False  # did Kafka refuse a queued batch for good (so its sequence numbers are spent)?
            for tp, (batches, unsent) in sent.items():
                results = await asyncio.gather(*(fut for fut, _ in batches), return_exceptions=True)
                again: list[Item] = []
                for (_, chunk), result in zip(batches, results, strict=True):
                    if isinstance(result, BaseException):
                        self._note_error(result)
                        refused = True
                        again.extend(chunk)
                    elif again:  # cannot happen: the broker refuses what follows a refused sequence
                        log.error("kafka acknowledged a batch of %s after refusing an earlier one: per-key "
                                  "order is broken for that partition", tp)
                    else:
                        self.acked += len(chunk)
                        EVENTS_ACKED.labels(tp[0]).inc(len(chunk))
                again.extend(unsent)
                if again:
                    failed[tp] = again
            if failed:
                self.retries += len(failed)
                BATCH_RETRIES.inc(len(failed))
                log.warning("kafka did not take %d partition batches (%s); re-sending in %.1fs%s",
                            len(failed), self.last_error, delay, " on a new producer" if refused else "")
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
                if refused:
                    await self._renew_producer()
                    self.renewals += 1
                    RENEWALS.inc()
                    # partitions are looked up again on the new producer (a topic may have grown)
                    failed = await self._regroup(failed)
            pending = failed

    async def _regroup(self, groups: dict[tuple[str, int], list[Item]]) -> dict[tuple[str, int], list[Item]]:
        out: dict[tuple[str, int], list[Item]] = defaultdict(list)
        for items in groups.values():
            for item in items:
                out[(item[0], await self._partition(item[0], item[1]))].append(item)
        return out

    async def _send_group(self, tp: tuple[str, int], group: list[Item]) -> tuple[list[tuple[Any, list[Item]]], list[Item]]:
        """Hand a partition's events to aiokafka in as few batches as fit. Returns the queued batches
        (ack future, events) and the events aiokafka did not queue: when it refuses one batch (its queue
        for the partition stayed full for request_timeout_ms, or no metadata), nothing after it is sent,
        so the caller re-sends the rest in order, on the same producer (nothing of it has a sequence
        number yet)."""
        assert self._producer is not None
        topic, partition = tp
        out: list[tuple[Any, list[Item]]] = []
        i = 0
        while i < len(group):
            batch = self._producer.create_batch()
            start = i
            while i < len(group) and batch.append(key=group[i][1], value=group[i][2], timestamp=None) is not None:
                i += 1
            if i == start:  # aiokafka always takes a batch's first record, whatever its size
                raise RuntimeError(f"aiokafka refused a record for an empty batch of {tp}")
            try:
                fut = await self._producer.send_batch(batch, topic, partition=partition)
            except Exception as exc:  # not queued: this batch and the rest of the group go again
                self._note_error(exc)
                return out, group[start:]
            out.append((fut, group[start:i]))
        return out, []

    def _note_error(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        LAST_ERROR.set(time.time())

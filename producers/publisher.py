"""KafkaPublisher: the one way producers write to Kafka.

- aiokafka with ``acks=all`` and idempotence: broker-side dedup of retried batches, per-partition order.
- A bounded in-memory buffer (``publisher_buffer`` events). ``publish()`` awaits while it is full:
  back-pressure reaches the venue reader instead of memory growing or events being dropped.
- A sender task drains the buffer, groups events by partition (keys map to partitions with Kafka's
  murmur2 partitioner, cached per key), hands aiokafka whole batches (``send_batch``), and waits for
  every batch's acknowledgement before the next drain. A failed batch is retried, with capped
  exponential backoff, before anything newer is sent: so per-key order holds through outages and
  nothing is dropped. ``stop()`` flushes what is buffered.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import Counter, Gauge

from marketpipe.settings import PublisherSettings
from schemas.topics import TopicSpec

log = logging.getLogger(__name__)

EVENTS_QUEUED = Counter("marketpipe_publisher_events_queued_total", "Events accepted into the buffer", ["topic"])
EVENTS_ACKED = Counter("marketpipe_publisher_events_acked_total", "Events acknowledged by Kafka", ["topic"])
BATCH_RETRIES = Counter("marketpipe_publisher_batch_retries_total", "Batches re-sent after a failure")
BUFFER_DEPTH = Gauge("marketpipe_publisher_buffer_events", "Events buffered, not yet acknowledged")
BLOCKED_SECONDS = Counter("marketpipe_publisher_blocked_seconds_total", "Time callers waited on a full buffer")
LAST_ERROR = Gauge("marketpipe_publisher_last_error_timestamp_seconds", "When the last send error happened")

Item = tuple[str, bytes, bytes, float | None]  # topic, key, value, enqueue time (for latency probes)


class PublisherClosed(RuntimeError):
    pass


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
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_ack = on_ack
        self.acked = 0
        self.retries = 0
        self.renewals = 0
        self.last_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._producer = self._new_producer()
        await self._start_producer()
        self._sender = asyncio.create_task(self._send_loop(), name="kafka-publisher")

    def _new_producer(self) -> AIOKafkaProducer:
        s = self.settings
        return AIOKafkaProducer(
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

    async def _renew_producer(self) -> None:
        """A batch failed for good: aiokafka had already given it sequence numbers, so re-sending it on
        the same producer id would leave a sequence gap (OutOfOrderSequenceNumber forever). Start a new
        idempotent producer (new producer id, sequences from 0) and re-send on it."""
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
            if self._sender is not None:
                self._sender.cancel()
                await asyncio.gather(self._sender, return_exceptions=True)
            if self._producer is not None:
                await self._producer.stop()

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
            t0 = time.monotonic()
            await self._queue.put(item)
            BLOCKED_SECONDS.inc(time.monotonic() - t0)
        counter = self._queued_counters.get(name)
        if counter is None:  # labels() costs ~6 % of a producer's CPU at full rate: look it up once
            counter = self._queued_counters[name] = EVENTS_QUEUED.labels(name)
        counter.inc()

    def buffered(self) -> int:
        return self._queue.qsize() + self._in_flight

    async def flush(self) -> None:
        while self.buffered():
            self._idle.clear()
            await self._idle.wait()

    # -- sender ------------------------------------------------------------------------------
    async def _partition(self, topic: str, key: bytes) -> int:
        cached = self._partition_cache.get((topic, key))
        if cached is not None:
            return cached
        parts = self._partitions.get(topic)
        if parts is None:
            assert self._producer is not None
            parts = sorted(await self._producer.partitions_for(topic))
            self._partitions[topic] = parts
        p = self._partitioner(key, parts, parts)
        self._partition_cache[(topic, key)] = p
        return p

    async def _send_loop(self) -> None:
        while True:
            first = await self._queue.get()
            items = [first]
            while len(items) < 20_000:
                try:
                    items.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self._in_flight = len(items)
            BUFFER_DEPTH.set(self._queue.qsize() + self._in_flight)
            groups: dict[tuple[str, int], list[Item]] = defaultdict(list)
            cache = self._partition_cache
            for item in items:
                partition = cache.get((item[0], item[1]))  # hot path: no coroutine once a key is known
                if partition is None:
                    partition = await self._partition(item[0], item[1])
                groups[(item[0], partition)].append(item)
            await self._deliver(groups)
            self._in_flight = 0
            BUFFER_DEPTH.set(self._queue.qsize())
            if self.on_ack is not None:
                self.on_ack(items)
            if self._queue.empty():
                self._idle.set()

    async def _deliver(self, groups: dict[tuple[str, int], list[Item]]) -> None:
        pending = dict(groups)
        delay = 0.2
        while pending:
            sent = {tp: await self._send_group(tp, group) for tp, group in pending.items()}
            failed: dict[tuple[str, int], list[Item]] = {}
            for tp, batches in sent.items():
                results = await asyncio.gather(*(fut for fut, _ in batches), return_exceptions=True)
                for i, result in enumerate(results):
                    if isinstance(result, BaseException):
                        # this batch and every later one of the partition go again, in order
                        self._note_error(result)
                        failed[tp] = [item for _, chunk in batches[i:] for item in chunk]
                        break
                    n = len(batches[i][1])
                    self.acked += n
                    EVENTS_ACKED.labels(tp[0]).inc(n)
            if failed:
                self.retries += len(failed)
                BATCH_RETRIES.inc(len(failed))
                log.warning("kafka send failed for %d partition batches (%s); retrying in %.1fs",
                            len(failed), self.last_error, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
                await self._renew_producer()
                self.renewals += 1
                # partitions are looked up again on the new producer (a topic may have grown)
                failed = await self._regroup(failed)
            pending = failed

    async def _regroup(self, groups: dict[tuple[str, int], list[Item]]) -> dict[tuple[str, int], list[Item]]:
        out: dict[tuple[str, int], list[Item]] = defaultdict(list)
        for items in groups.values():
            for item in items:
                out[(item[0], await self._partition(item[0], item[1]))].append(item)
        return out

    async def _send_group(self, tp: tuple[str, int], group: list[Item]) -> list[tuple[Any, list[Item]]]:
        """Append a partition's events to as few aiokafka batches as fit; returns (ack future, events)."""
        assert self._producer is not None
        topic, partition = tp
        out: list[tuple[Any, list[Item]]] = []
        batch = self._producer.create_batch()
        chunk: list[Item] = []
        for item in group:
            if batch.append(key=item[1], value=item[2], timestamp=None) is None:
                out.append((await self._send_batch(batch, topic, partition), chunk))
                batch, chunk = self._producer.create_batch(), []
                batch.append(key=item[1], value=item[2], timestamp=None)
            chunk.append(item)
        out.append((await self._send_batch(batch, topic, partition), chunk))
        return out

    async def _send_batch(self, batch: Any, topic: str, partition: int) -> Any:
        assert self._producer is not None
        try:
            return await self._producer.send_batch(batch, topic, partition=partition)
        except Exception as exc:  # metadata timeout while the broker is away: report as a failed future
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            fut.set_exception(exc)
            return fut

    def _note_error(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        LAST_ERROR.set(time.time())

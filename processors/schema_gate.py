"""SchemaGate: holds back the events of a partition while writer schemas it needs are looked up, so registry
lookups never block the event loop, never skip an event, and never stall the other partitions.

Per stream (agent), per batch:
- the batch's schema ids are checked against the wire's cache (one pass, no I/O): the common case, every id
  known, folds the whole batch at once;
- an event with an unseen id *parks* its partition: that event and every later event of the partition wait
  in order (per-partition order is the contract), and the id is looked up in the background
  (`SchemaResolver`: asynchronous, transient faults retried with backoff and counted);
- each later batch first releases the parked prefix whose ids are now resolved (known, or definitively
  unknown: those events are then counted malformed by the stage, as before), then folds the rest. Every
  stream also receives the per-partition timer ticks, so a parked partition is released within a timer
  interval of its lookup even when no new event arrives;
- the partition is not paused in the consumer: faust's pause drops records already fetched for a partition
  it pauses (its fetcher yields only active partitions, and aiokafka's position has moved past them). Memory
  is bounded instead by the agent: with more than `processor_parked_max` events parked it takes no new
  batch until lookups release some (a long registry outage under heavy traffic then pauses the stream).

Offsets stay safe: a parked event holds one extra reference on its message (`Message.incref`), so the batch's
ack does not make it committable; it is acked only after it is folded. At a rebalance (`release_all`, from
the sensor's `on_rebalance_start`, before faust waits for in-flight messages) parked events are let go
without an ack: faust stops waiting for them, their offsets are never committed, and the partition's next
owner reads them again from the committed offset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from faust.types import TP, EventT

from processors.wire import ContractWire, SchemaResolver

log = logging.getLogger(__name__)


class SchemaGate:
    def __init__(self, app: Any, wire: ContractWire, resolver: SchemaResolver, stream: str) -> None:
        self.app, self.wire, self.resolver, self.stream = app, wire, resolver, stream
        self.parked: dict[TP, list[EventT]] = {}
        self._looking_up: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def admit(self, events: list[EventT]) -> tuple[list[EventT], list[EventT]]:
        """(events to fold now, in order per partition; of those, the released parked ones, which the caller
        acks after folding). Events of parked partitions, and events with unseen ids, are parked."""
        unseen = self.wire.unresolved_ids(event.message.value for event in events)
        if not unseen and not self.parked:
            return events, []  # hot path
        released = self._release_resolved()
        now: list[EventT] = list(released)
        unresolved = self.wire.unresolved_ids
        for event in events:
            msg = event.message
            parked = self.parked.get(msg.tp)
            if parked is None:
                if not unseen or not unresolved((msg.value,)):
                    now.append(event)
                    continue
                parked = self.parked[msg.tp] = []
                log.info("%s: %s:%s parked at offset %s until its writer schema is known", self.stream,
                         msg.topic, msg.partition, msg.offset)
            msg.incref()  # the batch's ack leaves it uncommitted; acked once folded
            parked.append(event)
        if unseen:
            self._look_up(unseen)
        return now, released

    def _release_resolved(self) -> list[EventT]:
        released: list[EventT] = []
        unresolved = self.wire.unresolved_ids
        for tp, parked in list(self.parked.items()):
            ready = 0
            while ready < len(parked) and not unresolved((parked[ready].message.value,)):
                ready += 1
            if ready:
                released.extend(parked[:ready])
                del parked[:ready]
            if not parked:
                del self.parked[tp]
        return released

    def backlog(self) -> int:
        """Events parked in this stream."""
        return sum(map(len, self.parked.values()))

    def _look_up(self, ids: set[int]) -> None:
        new = ids - self._looking_up
        if not new:
            return
        self._looking_up |= new
        task = asyncio.ensure_future(self._resolve(new))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, ids: set[int]) -> None:
        keep_trying: Callable[[], bool] = lambda: not self.app.should_stop  # noqa: E731
        try:
            await self.resolver.resolve(ids, keep_trying, self.stream)
        except Exception:  # a bug, not a registry fault: the partition stays parked (nothing is skipped)
            log.exception("%s: schema lookup of ids %s failed", self.stream, sorted(ids)[:10])
        finally:
            self._looking_up -= ids

    def release_all(self) -> int:
        """A rebalance starts: let every parked event go unacked (never committed; read again by the
        partition's next owner, maybe this worker)."""
        count = 0
        for parked in self.parked.values():
            for event in parked:
                event.message.acked = True  # faust's wait_empty drops it; Consumer.ack never sees it
                count += 1
        self.parked.clear()
        if count:
            log.warning("%s: rebalance: %d parked events left uncommitted, read again from the committed "
                        "offset", self.stream, count)
        return count

    def ack(self, released: list[EventT]) -> None:
        consumer = self.app.consumer
        for event in released:
            event.message.ack(consumer)

"""A faust transport whose consumer hands fetched messages to the conductor without a task per message.

faust's `Consumer._drain_messages` delivers every fetched message with
`await self.wait_first(callback(message), self.suspend_flow.wait())`: four tasks (the callback, the
suspend-flow, stopped and crashed waits), an `asyncio.wait` and three cancellations per message. On this
hardware that was about a third of the worker's main-thread CPU.

`FastDrainConsumer` runs the callback's first step inline (and calls the partition's conductor handler
directly while the conductor's handler map is not being rebuilt). The callback (the conductor's `on_message`) almost
always completes without suspending: it only waits when flow control is suspended (rebalance), the producer
buffer is over its high-water mark, or a stream's queue is full. Then, and only then, the rest of the callback
runs exactly as faust runs it: raced against `suspend_flow` (and the consumer stopping or crashing) in
`wait_first`, and cancelled if the flow is suspended first.

The commit faust starts every `broker_commit_every` acked messages runs beside the loop instead of inside it:
faust awaits it in the loop, so every 10k messages nothing was delivered while the state was flushed, the
producer drained and the offsets committed (30-60 ms: the largest cause of the event -> queryable p99). The
commit itself is faust's own, unchanged (one at a time; acks made meanwhile go into the next one).
Everything else (read offsets, gaps, errors) is faust 0.15.3's loop unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TransportT
from mode import Service, ServiceT


class _Resume:
    """Awaitable that continues `coro`, which already ran its first step and is suspended on `waiting`
    (what the coroutine yielded to its task): the same protocol a Task uses to drive a coroutine."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self.coro, self.waiting = coro, waiting

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self.coro, self.waiting
        while True:
            try:
                value = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and the like go into the coroutine
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(value)
                except StopIteration as stop:
                    return stop.value


def first_step(coro: Coroutine[Any, Any, Any]) -> _Resume | None:
    """Run coro until it first suspends: None when it completed, else an awaitable for the rest."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return _Resume(coro, waiting)


class ShortPollConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """faust's consumer thread with a short fetch long-poll.

    aiokafka keeps one fetch request in flight per broker, for the partitions that have no fetched records
    waiting. While a backlog's records are being processed the request in flight covers only idle
    partitions, and the broker holds it until data arrives there or `fetch_max_wait_ms` passes: faust sets
    1500 ms. The backlog's partitions are fetched again only after that, so a worker working through a
    backlog idled up to a second after each ~15k fetched records: 25-40 % of its time in half the benchmark
    runs (16.5-20k instead of 27-30k deltas/s). With `processor_fetch_max_wait_ms` (20 ms) the next fetch
    of the backlog goes out at most that much later; the price is that many empty fetches per second per
    broker while the worker is idle."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read by the Fetcher created at start()
        return consumer


class FastDrainConsumer(aiokafka_driver.Consumer):
    def _new_consumer_thread(self) -> Any:
        return ShortPollConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - exercised end to end
        # faust 0.15.3 Consumer._drain_messages, except how the callback is awaited (see the module doc)
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        # the conductor's on_message only looks the partition's handler up under this lock (held while
        # subscriptions change); when it is free, look it up directly and save an `async with` per message
        conductor: Any = self.app.topics
        handler_lock = conductor._tp_to_callback_lock
        handlers = conductor._tp_to_callback

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = getmany(timeout=1.0)

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                if self._commit_fut is None:  # else the running commit takes these acks
                                    self.add_future(self.commit())
                            if handler_lock.locked():
                                rest = first_step(callback(message))
                            else:
                                rest = first_step(handlers[tp](message))
                            if rest is not None:
                                await self.wait_first(rest, self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


class RawBytesSchema(faust.Schema):
    """Raw bytes keys and values whose events are built without faust's serializer registry.

    For raw topics faust's compiled decode runs both payloads through `app.serializers` (registry, codec
    lookup, `want_bytes`) only to return the bytes it was given, then builds the Event. This decode builds
    the same Event from the message's key and value directly (None stays None). Sending (dumps) is faust's."""

    def __init__(self) -> None:
        super().__init__(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    def compile(self, app: Any, *, on_key_decode_error: Any = None, on_value_decode_error: Any = None,
                default_propagate: bool = False) -> Any:
        event_type = app.conf.Event

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            return event_type(app, message.key, message.value, message.headers, message)

        return decode


class FastTransport(aiokafka_driver.Transport):
    Consumer = FastDrainConsumer


class ProcessorFaustApp(faust.App):
    """faust.App on the aiokafka transport with FastDrainConsumer (the broker URL is always kafka://);
    `fetch_max_wait_ms` is the consumer's fetch long-poll (see ShortPollConsumerThread)."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> TransportT:
        return FastTransport(self.conf.broker_consumer, self)

"""A faust transport whose consumer hands fetched messages to the conductor without a task per message.

faust's `Consumer._drain_messages` delivers every fetched message with
`await self.wait_first(callback(message), self.suspend_flow.wait())`: four tasks (the callback, the
suspend-flow, stopped and crashed waits), an `asyncio.wait` and three cancellations per message. On this
hardware that was about a third of the worker's main-thread CPU.

`FastDrainConsumer` runs the callback's first step inline. The callback (the conductor's `on_message`) almost
always completes without suspending: it only waits when flow control is suspended (rebalance), the producer
buffer is over its high-water mark, or a stream's queue is full. Then, and only then, the rest of the callback
runs exactly as faust runs it: raced against `suspend_flow` (and the consumer stopping or crashing) in
`wait_first`, and cancelled if the flow is suspended first. Everything else (read offsets, gaps, commit_every,
errors) is faust 0.15.3's loop unchanged.
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


class FastDrainConsumer(aiokafka_driver.Consumer):
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
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            rest = first_step(callback(message))
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


class FastTransport(aiokafka_driver.Transport):
    Consumer = FastDrainConsumer


class ProcessorFaustApp(faust.App):
    """faust.App on the aiokafka transport with FastDrainConsumer (the broker URL is always kafka://)."""

    def _new_transport(self) -> TransportT:
        return FastTransport(self.conf.broker_consumer, self)

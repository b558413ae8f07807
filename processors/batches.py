"""take_batches: the events of an agent's stream in batches, without faust's per-event stream machinery.

`Stream.take_events` feeds its buffer from a second task that iterates the stream one event at a time: an
event-loop round trip (`await sleep(0)`) and an awaited buffer processor per event, and a `wait_first` (four
tasks) per batch. `take_batches` reads the same channel queue in bulk inside the agent's task and keeps what
faust's stream iterator and `take_events` do for offsets:

- events of an older consumer generation, or taken while flow control is suspended (a rebalance), are
  skipped and acked at once, like faust's stream does;
- the message is tracked as unacked (`consumer.unacked`) before it is handed out;
- after the caller is done with the batch (also when it raises), every event is acked, in order, as
  `take_events` does (`Event.ack`: the message's refcount, then `Consumer.ack` marks the offset committable);
- StopAsyncIteration from the queue (faust stopping its streams) ends the iteration, as it ends faust's.
So offsets are committed only for processed events, and the StateFlusher still writes their state to the
changelog before faust commits them. Marking the stream as iterated and releasing its channel at the end
reach into faust's private members: `processors/faust_fence.py` does both.

What it leaves out on purpose: faust's per-event sensor hooks (`on_message_in/out`,
`on_stream_event_in/out`), which feed faust's own Monitor statistics; at 20k events/s they were ~8 % of
the worker's CPU. The processors' Prometheus metrics (events, lag, latency) are counted per batch instead.
The one Monitor field faust itself reads, `stream_inbound_time` (its consumer's "stream stopped processing
this partition" check), is kept up to date here, once per event at batch time.

A batch is whatever the queue holds (up to `max_`); when that is less than `max_` it waits `within` once
for more, then hands out what it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from time import monotonic
from typing import Any

from faust.types import EventT, StreamT

from processors.faust_fence import begin_stream_iteration, end_stream_iteration


async def take_batches(stream: StreamT, max_: int, within: float) -> AsyncIterator[list[EventT]]:
    s: Any = stream
    app: Any = s.app
    channel: Any = s.channel
    queue = channel.queue
    queue_empty, queue_get_nowait, queue_get = queue.empty, queue.get_nowait, queue.get
    flow_control, consumer = app.flow_control, app.consumer
    add_unacked = consumer.unacked.add
    acking_topics = app.topics.acking_topics
    sleep = asyncio.sleep
    inbound_time = app.monitor.stream_inbound_time  # tp -> when a stream last took an event of it

    def fill(taken: list[EventT]) -> Exception | None:
        """Move queued events into taken; an error thrown into the queue is returned, to be raised only
        after the events taken before it are processed (faust's stream processes them before it raises)."""
        try:
            while len(taken) < max_ and not queue_empty():
                taken.append(queue_get_nowait())
        except Exception as exc:  # includes StopAsyncIteration
            return exc
        return None

    begin_stream_iteration(stream)
    started_here = await s.maybe_start()
    try:
        while not s.should_stop:
            taken = [await queue_get()]
            thrown = fill(taken)
            if thrown is None and len(taken) < max_ and within > 0:
                await sleep(within)
                thrown = fill(taken)
            events: list[EventT] = []
            now = monotonic()
            try:
                for event in taken:
                    message = event.message
                    if not flow_control.is_active() or message.generation_id != app.consumer_generation_id:
                        continue  # stale (rebalance): acked below without being handed out, as faust does
                    if message.topic in acking_topics and not message.tracked:
                        message.tracked = True
                        add_unacked(message)
                    inbound_time[message.tp] = now
                    events.append(event)
                if events:
                    s.events_total += len(events)
                    yield events
            finally:
                for event in taken:
                    event.message.ack(consumer)
            if thrown is not None:
                raise thrown
    except StopAsyncIteration:
        # faust throws StopAsyncIteration into the queue to end its streams (rebalance, stop); its stream
        # iterator then returns, and so does this (StopAsyncIteration may not escape an async generator)
        return
    finally:
        end_stream_iteration(stream, channel)
        if started_here:
            await s.stop()
            s.service_reset()

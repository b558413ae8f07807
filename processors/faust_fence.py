"""The faust fence: every place the processors reach into faust-streaming's private members, and nowhere else.

Written against faust-streaming 0.15.3 (with the mode-streaming 0.7.1 services and aiokafka 0.14.0 consumer
it runs on). Importing this module refuses any other installed version with a message saying what to do
(`require_pinned_versions`; `processors.worker.run` imports it before anything starts), because the code
below copies or depends on the inner workings of exactly these versions: an upgrade would break loudly at
the first message or, worse, silently keep running a copy of a loop upstream has since fixed.
`tests/processors/test_faust_fence.py` compares the source of every upstream function listed in
`UPSTREAM_SHA256` with the fingerprint recorded here and names each one that changed.

Touch points, and why the public API is not enough for each:

1. `faust.transport.consumer.Consumer._drain_messages` -- overridden in `FastDrainConsumer` by a copy of
   0.15.3's loop with two changes (see the class). faust has no hook for how a fetched message is handed to
   the conductor, nor for where the periodic commit runs: both are inside this private method. The copy
   reads, exactly as the original does, mode's `Service._stopped` and the consumer's `_read_offset`,
   `_commit_every`, `_n_acked` and `_add_gap`; it also reads `_commit_fut` (set while `Consumer.commit`
   runs), because its commit runs beside the loop and must not be started twice.
2. `faust.transport.conductor.Conductor._tp_to_callback_lock` / `_tp_to_callback` -- the conductor's public
   callback (`Conductor.on_message`, what `Consumer.callback` is) takes this asyncio lock for every message
   only to look the partition's handler up. The drain loop looks the handler up directly while the lock is
   free (it is held only while subscriptions are rebuilt) and calls the public callback otherwise.
3. `faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer` and aiokafka's
   `AIOKafkaConsumer._fetch_max_wait_ms` -- faust hard-codes `fetch_max_wait_ms=1500` in that method and
   has no setting for it. `ShortPollConsumerThread` lets faust build the consumer and sets the attribute
   before `AIOKafkaConsumer.start()` builds its Fetcher from it: one line instead of a copy of the
   60-line constructor. It also wraps `AIOKafkaConsumerThread._fetch_records` (the fetch the thread runs for
   every `getmany`) only to note when the fetch returned, for the latency breakdown (`fetched_at`): faust
   records no such time. The drain loop stores it and its own time on the public `Message.time_out` /
   `time_in` fields (faust's Monitor would set them from its per-message hooks, which are off).
4. `faust.transport.drivers.aiokafka.Consumer._new_consumer_thread` and `faust.App._new_transport` --
   overridden to put (3) and (1) in place: faust chooses these classes only there (the alternative, a new
   broker URL scheme registered through a `faust.transports` entry point, is process-wide and changes the
   URL faust hands to aiokafka).
5. `faust.streams.Stream._finalized` and `Stream._channel_stop_iteration` -- `processors.batches.take_batches`
   iterates an agent's stream in batches, as the stream's own iterators (`Stream._py_aiter`, the Cython
   `StreamIterator`) do one event at a time. Those mark the stream finalized when iteration starts and
   release its channel when it ends, in private code with no public equivalent: `begin_stream_iteration`
   and `end_stream_iteration` below do the same.
6. `faust.streams._current_event` -- the ContextVar from which faust's tables and stores pick the changelog
   partition and the partition's store for a write. faust sets it only inside its per-event stream
   iterator (`faust.current_event()` only reads it); `processors.context.event_context` sets it to each
   event of a batch through `current_event_var`.

7. `faust.transport.consumer.Consumer._read_offset` -- where faust reads a partition from (the committed offset
   it sought to after an assignment, then the last offset read). `read_position` gives it to the candle stage,
   which must not let its timer close candles of a partition whose backlog it has not folded a trade of yet;
   faust exposes no read position (`perform_seek` and `seek`, which set it, are fingerprinted).

Not private, but fingerprinted because code here or beside it reproduces what they do:
`take_batches` follows `Stream._py_aiter`, `Stream._c_aiter` and `faust/_cython/streams.pyx` (skipping
stale events, tracking unacked messages, stream_inbound_time) and `Stream.take_events` (acking after the
batch); `processors.transport.RawBytesSchema` replaces the decode of `Schema.compile` and
`App.create_event`; the functions that maintain the private state read in (1) and (2) (`Consumer.ack`,
`Consumer.commit`, `Conductor._update_indices`).

To move to another version: install it, run `pytest tests/processors/test_faust_fence.py`, read the
upstream changes of every function it names, port them here, then update PINNED, UPSTREAM_SHA256 and the
pins in pyproject.toml.
"""

from __future__ import annotations

from marketpipe.fencing import UnpinnedLibraryError, require_versions

# The exact versions this module was written against (pyproject.toml pins the same).
PINNED: dict[str, str] = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}
FENCE_TEST = "tests/processors/test_faust_fence.py"


def require_pinned_versions() -> None:
    """Refuse to run on faust (or its mode / aiokafka) in any version but the pinned one."""
    require_versions(PINNED, fence="processors/faust_fence.py", test=FENCE_TEST)


# At import, i.e. at worker start-up, before any faust internals below are looked up or patched in.
require_pinned_versions()

# ruff: noqa: E402 - the imports below must come after the version check above
import asyncio
from time import monotonic
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import StreamT, TransportT
from mode import Service, ServiceT

from marketpipe.aiokafka_fence import set_fetch_max_wait
from processors.transport import first_step

__all__ = ["PINNED", "UPSTREAM_SHA256", "FastDrainConsumer", "ProcessorFaustApp", "UnpinnedLibraryError",
           "begin_stream_iteration", "current_event_var", "end_stream_iteration", "require_pinned_versions"]

# SHA-256 of the source of each upstream function this module copies, overrides, reproduces or relies on
# the inner workings of (`module:Qualified.name`, or a package file for compiled code), for the PINNED
# versions. tests/processors/test_faust_fence.py names every one whose source differs.
UPSTREAM_SHA256: dict[str, str] = {
    # (1) copied: the drain loop, and what maintains the state it reads
    "faust.transport.consumer:Consumer._drain_messages":
        "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417",
    "faust.transport.consumer:Consumer.commit":
        "a354437baaa08bf8096d978ca195963e22f7a497d18392960dd53dacb7c9f2d8",
    "faust.transport.consumer:Consumer.ack":
        "5fcf41cf45153475de3790dc56fec1b83335956dc8b3bf7ff6bbb2b57627f03f",
    "faust.transport.consumer:Consumer.perform_seek":
        "0e8c130ff4b0afd82c0be9c5fd831316e10febc62c94032833911096e156d7c6",
    "faust.transport.consumer:Consumer.seek":
        "b86a9fe05f956b30cf299c787b6787c6e0349cbf1ae556f2456a1e97b15dbb22",
    "faust.transport.consumer:Consumer._add_gap":
        "4df2573ded7c1c2cde04dc6bde6d4480cb5875ef565256e56966b585ae39b1c1",
    "mode.services:Service.should_stop":
        "dfb6c695a63eb332a91a4fcdc94ed8009f56dcb242f4aae69e3469f4811f37cf",
    # (2) the conductor's per-message handler lookup, the rebuild that holds its lock, the handlers it builds
    "faust.transport.conductor:Conductor._compile_message_handler":
        "9fbc0538097aa4eca6113b99df8d17605ae72a6b5030482f041a183f4cc34df1",
    "faust.transport.conductor:Conductor._update_indices":
        "619b3247b96ac7d508b9b571e30fdaceb00378b77c79e4aee12a5d8ee3f41d34",
    "faust.transport.conductor:Conductor._build_handler":
        "5c071d1277988c57e4bb62e25551981babd67d6544d85db9b14bdb0d8aa1b56d",
    "faust/transport/_cython/conductor.pyx":
        "dde1f974267881cf8c5f7e4fd2b114a2c6d754633a2aa9a2a2fc92f93e143dba",
    # (3) the consumer faust builds (fetch_max_wait_ms=1500) and where aiokafka reads the attribute
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer":
        "c2701bfc3e6f6cad95c2be36d6a255a86e2c57d18d36cc1082b5fb5c482d99d7",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._fetch_records":
        "39a2c6c79fc1455a199629912b533458a720c64983bc957420a42feef6593baa",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.start":
        "2f1ba70443327538800d348e61042cdedd5a5e6306f40ebe1a06dddba7494c45",
    # (4) overridden factories
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread":
        "0870ec53dea75083995e3565c0f0a25a1c63ecceaeb238e92e2585e3623af5a9",
    "faust.app.base:App._new_transport":
        "42db531312dd776fc3937154a32f19eeb9ad7d4ebc2722a92d081a2d271baea1",
    # (5) the stream iterators take_batches stands in for, and take_events' acking
    "faust.streams:Stream._py_aiter":
        "3a48ee257a65435b482d51edb74f2993a67867949b1ef89b49fea893769e0614",
    "faust.streams:Stream._c_aiter":
        "fa44582a5882e9df5240199eabc475668bcd3c13b1816c45805dc746145b80bf",
    "faust/_cython/streams.pyx":
        "0041622f4a251188f53d73e6d51d18d16f0f427512df1e96c043cfdeea4c3250",
    "faust.streams:Stream._channel_stop_iteration":
        "ff1df01f515725a777f993f2525f7430eac681be1cfdda75c2e2dcfaed055d4e",
    "faust.streams:Stream.take_events":
        "607d48aead118ba8ea868718a0df87de1c5fcecd10ec542c659b448796728e08",
    # (6) the current event: how faust sets it, reads it, and picks a table write's partition and store from it
    "faust.streams:Stream._set_current_event":
        "b9a41294b605ac08c44529e087ad0b907a11c587b2e0fcbecf9ad667a4633e61",
    "faust.streams:current_event":
        "3b821f1a78d86a58234dfe781fbf539775b00e66fdac9489c1c398a2d81d7e9d",
    "faust.tables.base:Collection.partition_for_key":
        "3b2291811b8dd791cdd0e690b2b09d966a4e961e2a2861182241195696393bed",
    "faust.stores.rocksdb:Store._set":
        "4227e561e288d9413bf663a3a67940fd4976f5484e70e49445858ce4d400d26e",
    # RawBytesSchema (processors/transport.py) replaces this decode
    "faust.serializers.schemas:Schema.compile":
        "d46eec5ce3195b2c6752cb860a10946cee66ddf6a955f2ea44ac1568c0ecb9ad",
    "faust.app.base:App.create_event":
        "15fea3d1e95e6625b2f6a969e9ce4bbed786bed15fde58f0c6518f6e461f7a10",
}


# -- (6) the current event -----------------------------------------------------------------------------------
current_event_var = _current_event  # ContextVar[weakref to the event | None]


# -- (5) a stream iterated by processors.batches.take_batches ----------------------------------------------
def begin_stream_iteration(stream: StreamT) -> None:
    """What faust's stream iterators do first: the stream is being consumed, no more processors/combining."""
    cast(Any, stream)._finalized = True


def end_stream_iteration(stream: StreamT, channel: Any) -> None:
    """What faust's stream iterators do last: release the stream's channel."""
    cast(Any, stream)._channel_stop_iteration(channel)


def read_position(consumer: Any, tp: Any) -> int | None:
    """Where faust reads ``tp`` from: after an assignment, the committed offset it sought to (the next offset to
    read); once messages were read, the offset of the last one. None when unknown (no commit yet). faust keeps
    it only in `Consumer._read_offset` (set by `perform_seek`/`seek` and the drain loop)."""
    offset = consumer._read_offset.get(tp)
    return offset if isinstance(offset, int) else None


# -- (3) the fetch long-poll ---------------------------------------------------------------------------------
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

    fetched_at: float | None = None  # monotonic time the last fetch returned its records (in this thread)

    async def _fetch_records(self, *args: Any, **kwargs: Any) -> Any:
        # runs in the consumer thread; the drain loop (main thread) reads fetched_at for the latency breakdown
        records = await super()._fetch_records(*args, **kwargs)
        self.fetched_at = monotonic()
        return records

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        app = cast("ProcessorFaustApp", self.app)
        set_fetch_max_wait(consumer, app.fetch_max_wait_ms)  # the private attribute: marketpipe/aiokafka_fence.py
        return consumer


# -- (1), (2), (4) the drain loop ------------------------------------------------------------------------------
class FastDrainConsumer(aiokafka_driver.Consumer):
    """A faust consumer that hands fetched messages to the conductor without a task per message.

    faust's `Consumer._drain_messages` delivers every fetched message with
    `await self.wait_first(callback(message), self.suspend_flow.wait())`: four tasks (the callback, the
    suspend-flow, stopped and crashed waits), an `asyncio.wait` and three cancellations per message. On this
    hardware that was about a third of the worker's main-thread CPU.

    This loop runs the callback's first step inline (and calls the partition's conductor handler directly
    while the conductor's handler map is not being rebuilt). The callback (the conductor's `on_message`)
    almost always completes without suspending: it only waits when flow control is suspended (rebalance),
    the producer buffer is over its high-water mark, or a stream's queue is full. Then, and only then, the
    rest of the callback runs exactly as faust runs it: raced against `suspend_flow` (and the consumer
    stopping or crashing) in `wait_first`, and cancelled if the flow is suspended first.

    The commit faust starts every `broker_commit_every` acked messages runs beside the loop instead of inside
    it: faust awaits it in the loop, so every 10k messages nothing was delivered while the state was
    flushed, the producer drained and the offsets committed (30-60 ms: the largest cause of the event ->
    queryable p99). The commit itself is faust's own, unchanged (one at a time; acks made meanwhile go into
    the next one). Everything else (read offsets, gaps, errors) is faust 0.15.3's loop unchanged.
    """

    def _new_consumer_thread(self) -> Any:
        return ShortPollConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - exercised end to end
        # faust 0.15.3 Consumer._drain_messages, except how the callback is awaited (see the class doc)
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

        thread = cast(Any, self)._thread  # the ShortPollConsumerThread: when did its last fetch return?

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

                        # the latency breakdown: when the consumer thread fetched it and when this loop took it
                        # (faust's Monitor sets both fields; its per-message hooks are off, see batches.py)
                        message.time_out = thread.fetched_at
                        message.time_in = monotonic()
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

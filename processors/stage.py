"""Stage: the common frame of one processing stream (decode, skip replays, count, persist per batch)."""

from __future__ import annotations

import logging
from time import monotonic
from typing import Any, Generic, TypeVar

import orjson
from faust.types import EventT, TableT

from processors import metrics
from processors.context import describe, event_context, wall_us
from processors.wire import ContractWire, UnresolvedSchema

log = logging.getLogger(__name__)
S = TypeVar("S")


class Stage(Generic[S]):
    """Holds the in-memory state objects of one table (cache) and writes changed ones back to the table
    (and so to its changelog) right before faust commits source offsets (see StateFlusher).

    The cache always holds the newest state of a key owned here and is what queries read; the table holds
    it as of the last commit, which is all a restarted or new owner needs: offsets after that commit are
    consumed again. Every state object carries `last_offset`, the source offset last folded in, so events
    replayed after a crash or rebalance are recognized and skipped: updates are idempotent.
    """

    stream = "stage"

    def __init__(self, table: TableT, wire: ContractWire, latency: metrics.LatencyWindow) -> None:
        self.table = table
        self.wire = wire
        self.latency = latency
        self.cache: dict[bytes, S] = {}
        self.dirty: dict[bytes, tuple[S, EventT]] = {}  # changed since the last flush, with their last event
        self.last_offsets: dict[tuple[str, int], int] = {}  # by faust's TP (a (topic, partition) tuple)
        self._latency_hist = metrics.QUERYABLE_LATENCY.labels(self.stream)
        self._events = metrics.EVENTS.labels(self.stream)
        self._malformed = metrics.MALFORMED.labels(self.stream)
        self._replayed = metrics.REPLAYED.labels(self.stream)

    # -- state -----------------------------------------------------------------------------------
    def load(self, key: bytes) -> S | None:
        """The newest state for key: cache first, else the table (after recovery), else None."""
        state = self.cache.get(key)
        if state is None:
            raw = self.table.get(key)
            if raw is not None:
                state = self.cache[key] = self.from_state(orjson.loads(raw))
        return state

    def peek(self, key: bytes) -> S | None:
        """Read-only lookup for queries (does not fill the cache)."""
        state = self.cache.get(key)
        if state is None:
            raw = self.table.get(key)
            if raw is not None:
                state = self.from_state(orjson.loads(raw))
        return state

    def forget(self) -> None:
        """Partitions are being revoked: write changed state to the tables, then drop the cache (the next
        owner of each partition, maybe this worker again, reads the tables / changelogs)."""
        self.flush()
        self.cache.clear()

    def from_state(self, state: dict[str, Any]) -> S:
        raise NotImplementedError

    def to_state(self, obj: S) -> dict[str, Any]:
        raise NotImplementedError

    # -- batches -----------------------------------------------------------------------------------
    def process(self, events: list[EventT]) -> None:
        dirty, last_offsets, decode, load, fold = self.dirty, self.last_offsets, self.wire.decode, self.load, self.fold
        receive: list[int] = []
        # when the consumer thread fetched each message and when the drain loop took it (monotonic), or None
        fetched: list[tuple[float | None, float | None]] = []
        started = monotonic()
        for event in events:
            msg = event.message
            offset = msg.offset
            last_offsets[msg.tp] = offset
            key = msg.key
            try:
                if self.on_other(event, dirty):
                    continue
                if not isinstance(key, bytes) or b":" not in key:
                    raise ValueError(f"key {key!r} is not b'<venue>:<id>'")
                value = msg.value
                if value is None:
                    raise ValueError("no value (a tombstone): not a marketpipe event")
                record = decode(value)
                state = load(key)
                if state is not None and offset <= state.last_offset:  # type: ignore[attr-defined]
                    self._replayed.inc()
                    continue
                state = fold(key, state, record, event)
            except UnresolvedSchema:  # not the event's fault (a bug): never skip it as malformed
                raise
            except Exception as exc:  # malformed input never kills the stream
                self._malformed.inc()
                log.warning("%s: skipped malformed event %s: %s: %s", self.stream, describe(event),
                            type(exc).__name__, exc)
                continue
            state.last_offset = offset  # type: ignore[attr-defined]
            dirty[key] = (state, event)
            receive.append(record["receive_ts"])
            fetched.append((msg.time_out, msg.time_in))
        if receive:
            self._events.inc(len(receive))
            now = wall_us()
            seconds = [max(0.0, (now - ts) / 1e6) for ts in receive]
            self.latency.samples.extend(seconds)
            self.latency.add_parts(seconds, fetched, started, monotonic())
            metrics.observe_all(self._latency_hist, seconds)

    def flush(self) -> int:
        """Write every changed state to the table (in its source event's partition); returns how many."""
        dirty, self.dirty = self.dirty, {}
        self.persist(dirty)
        return len(dirty)

    def persist(self, dirty: dict[bytes, tuple[S, EventT]]) -> None:
        for key, (state, event) in dirty.items():
            with event_context(event):
                self.table[key] = orjson.dumps(self.to_state(state))

    def on_other(self, event: EventT, dirty: dict[bytes, tuple[S, EventT]]) -> bool:
        """Handle events that are not source records (timer ticks); True when handled."""
        return False

    def fold(self, key: bytes, state: S | None, record: dict[str, Any], event: EventT) -> S:
        raise NotImplementedError

    @staticmethod
    def check_key(key: bytes, venue: str, ident: str) -> None:
        if key != f"{venue}:{ident}".encode():
            raise ValueError(f"key {key!r} does not match the record's {venue}:{ident}")

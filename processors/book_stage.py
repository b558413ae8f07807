"""BookStage: materializes L2 books from marketpipe.book.v1 and publishes rate-limited BookTop events."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from faust.types import EventT, TableT, TopicT

from processors import metrics
from processors.book import OrderBook, Outcome
from processors.context import key_partition, wall_us
from processors.metrics import LatencyWindow
from processors.stage import Stage
from processors.wire import ContractWire

log = logging.getLogger(__name__)


class BookStage(Stage[OrderBook]):
    stream = "book"

    def __init__(self, table: TableT, wire: ContractWire, latency: LatencyWindow, out: TopicT, *,
                 depth: int, min_interval_s: float, ticks_topic: str, partitions: int) -> None:
        super().__init__(table, wire, latency)
        self.out = out
        self.depth = depth
        self.min_interval = min_interval_s
        self._last_publish: dict[bytes, float] = {}
        self.pending: set[bytes] = set()
        self._due_now: set[bytes] = set()
        self._outcomes = {o: metrics.BOOK_OUTCOMES.labels(o.value) for o in Outcome}
        self._batch_outcomes: Counter[Outcome] = Counter()  # counted per event, added to the metric per batch
        self.ticks_topic, self.partitions = ticks_topic, partitions

    def from_state(self, state: dict[str, Any]) -> OrderBook:
        return OrderBook.from_state(state)

    def to_state(self, obj: OrderBook) -> dict[str, Any]:
        return obj.to_state()

    def forget(self) -> None:
        super().forget()
        self.pending.clear()
        self._last_publish.clear()

    def fold(self, key: bytes, book: OrderBook | None, record: dict[str, Any], event: EventT) -> OrderBook:
        self.check_key(key, record["venue"], record["market"])
        if book is None:
            book = self.cache[key] = OrderBook(record["venue"], record["market"], record["venue_symbol"])
        was_crossed, was_sequence = book.crossed, book.sequence
        result = book.apply(record)
        self._batch_outcomes[result.outcome] += 1
        if result.outcome in (Outcome.GAP, Outcome.STALE, Outcome.WAITING):
            log.info("book %s: %s at sequence %s (book sequence %s, offset %s)", key.decode(),
                     result.outcome.value, record.get("sequence"), was_sequence, event.message.offset)
        if book.crossed and not was_crossed:
            metrics.CROSSED_DETECTED.inc()
            log.warning("book %s crossed after sequence %s", key.decode(), record.get("sequence"))
        if result.outcome not in (Outcome.STALE, Outcome.WAITING):
            self.request_publish(key, force=result.changed_sync)
        return book

    # -- BookTop publishing --------------------------------------------------------------------------
    def request_publish(self, key: bytes, *, force: bool = False) -> None:
        """Publish at the end of this batch if the market's rate limit allows (or force), else hold it back
        for the timer: the newest state is always published, at most once per min interval per market."""
        self.pending.add(key)
        if force or time.monotonic() - self._last_publish.get(key, 0.0) >= self.min_interval:
            self._due_now.add(key)

    def process(self, events: list[EventT]) -> None:
        self._due_now.clear()
        try:
            super().process(events)
        finally:
            for outcome, count in self._batch_outcomes.items():
                self._outcomes[outcome].inc(count)
            self._batch_outcomes.clear()
        for key in self._due_now:
            self.publish(key)

    def on_other(self, event: EventT, dirty: dict[bytes, tuple[OrderBook, EventT]]) -> bool:
        """A timer tick for partition p: publish the books of p whose last change the rate limit held back."""
        msg = event.message
        if msg.topic != self.ticks_topic:
            return False
        now = time.monotonic()
        for key in list(self.pending):
            if key_partition(key, self.partitions) == msg.partition and \
                    now - self._last_publish.get(key, 0.0) >= self.min_interval:
                self._due_now.add(key)
        return True

    def publish(self, key: bytes) -> int:
        self.pending.discard(key)
        book = self.cache.get(key)
        if book is None:
            return 0
        self._last_publish[key] = time.monotonic()
        self.out.send_soon(key=key, value=self.wire.book_top.encode(self.top_record(book)))
        metrics.BOOK_TOPS.inc()
        return 1

    def top_record(self, book: OrderBook) -> dict[str, Any]:
        return {"event_id": f"{book.venue}:{book.market}:top:o{book.last_offset}", "venue": book.venue,
                "market": book.market, "venue_symbol": book.venue_symbol, "exchange_ts": book.exchange_ts,
                "receive_ts": wall_us(), "in_sync": book.in_sync, "crossed": book.crossed,
                "sequence": book.sequence, **book.top_fields(), **book.depth(self.depth)}

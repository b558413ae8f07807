"""Prometheus metrics of the processors (served on the faust web server at /metrics)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from marketpipe.prometheus_fence import observe_all as observe_all  # bulk observe (private fields: fenced)

EVENTS = Counter("marketpipe_processor_events_total", "Source events folded into state", ["stream"])
MALFORMED = Counter("marketpipe_processor_malformed_total", "Source events skipped as malformed", ["stream"])
REPLAYED = Counter("marketpipe_processor_replayed_total", "Source events skipped: offset already in state",
                   ["stream"])
BOOK_OUTCOMES = Counter("marketpipe_processor_book_updates_total", "Book updates by outcome", ["outcome"])
BOOKS_OUT_OF_SYNC = Gauge("marketpipe_processor_books_out_of_sync", "Books owned here waiting for a snapshot")
BOOKS_CROSSED = Gauge("marketpipe_processor_books_crossed", "Books owned here that are crossed")
CROSSED_DETECTED = Counter("marketpipe_processor_crossed_detected_total", "Updates that left a book crossed")
BOOK_TOPS = Counter("marketpipe_processor_book_tops_published_total", "BookTop events published")
CANDLES = Counter("marketpipe_processor_candles_published_total", "FinishedCandle events published",
                  ["interval", "kind"])
LATE_TRADES = Counter("marketpipe_processor_late_trades_dropped_total", "Trades too late for a final candle",
                      ["interval"])
GAP_MARKERS = Counter("marketpipe_processor_gap_markers_total",
                      "Gap markers seen per source stream (trades, account): events of the key may be missing",
                      ["stream"])
GAP_CANDLES = Counter("marketpipe_processor_gap_candles_total",
                      "Candles a gap marker's window overlaps, by what was done: flagged (open), amended "
                      "(re-published with gap), empty (gap candle without trades), beyond_retention (not re-published)",
                      ["interval", "kind"])
DUPLICATES = Counter("marketpipe_processor_duplicates_total", "Events dropped as duplicates", ["stream"])
ACCOUNT_OUTCOMES = Counter("marketpipe_processor_account_updates_total", "Account events by outcome", ["outcome"])
REGISTRY_RETRIES = Counter("marketpipe_processor_registry_retries_total", "Schema lookups retried after a transient "
                           "registry failure (the stream waits; no event is skipped)", ["stream", "reason"])
REGISTRY_WAITING = Gauge("marketpipe_processor_registry_waiting", "1 while the stream waits for the registry",
                         ["stream"])
LAG = Gauge("marketpipe_processor_consumer_lag", "Messages behind the partition's high watermark",
            ["topic", "partition"])
QUERYABLE_LATENCY = Histogram(
    "marketpipe_processor_event_to_queryable_seconds", "receive_ts of an event -> its state queryable here",
    ["stream"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

_WORK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
BATCH_SECONDS = Histogram("marketpipe_processor_batch_seconds", "Time to fold one batch of events into state",
                          ["stream"], buckets=_WORK_BUCKETS)
BATCH_EVENTS = Histogram("marketpipe_processor_batch_events", "Events per batch", ["stream"],
                         buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000))
FLUSH_SECONDS = Histogram("marketpipe_processor_flush_seconds", "Time to write changed state to the tables at a "
                          "commit (the worker handles no events meanwhile)", ["stream"], buckets=_WORK_BUCKETS)

GC_SECONDS = Histogram("marketpipe_processor_gc_seconds", "Garbage collector pauses (the worker handles no events "
                       "meanwhile), by generation", ["generation"], buckets=_WORK_BUCKETS)


class GcPauses:
    """``gc.callbacks`` entry timing each collection into GC_SECONDS (a collection costs one histogram
    observation; collections are rare next to events)."""

    def __init__(self) -> None:
        self._start = 0.0
        self._by_generation = {g: GC_SECONDS.labels(str(g)) for g in (0, 1, 2)}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._start)


def events_by_stream() -> dict[str, float]:
    """marketpipe_processor_events_total per stream, read through the public collect()."""
    return {sample.labels["stream"]: sample.value for metric in EVENTS.collect() for sample in metric.samples
            if sample.name.endswith("_total")}


class LatencyWindow:
    """The last N event -> queryable latencies (seconds) for exact percentiles on /stats, and where each
    one was spent: `parts` holds, per event, (before the consumer thread fetched it, from that fetch until
    the drain loop took it, queued before its batch started, its batch's fold). The first part is the
    producer's linger, the broker and the fetch; the second faust's consumer-thread hand-off to the main
    loop (and the messages of the same fetch ahead of it); the third the conductor, the stream queue and
    batches ahead of it; the fourth the batch itself (decode, fold, publish)."""

    PARTS = ("before_fetch", "handoff", "queued", "batch")

    def __init__(self, size: int = 50_000) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self.parts: deque[tuple[float, float, float, float]] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def add_parts(self, seconds: list[float], stamps: list[tuple[float | None, float | None]], started: float,
                  ended: float) -> None:
        """Split each event's latency (seconds, ending at `ended`) at the monotonic times its message was
        fetched by the consumer thread and taken by the drain loop (`stamps`; events missing either are left
        out) and its batch `started`."""
        work = ended - started
        for total, (fetched, taken) in zip(seconds, stamps, strict=True):
            if fetched is None or taken is None:
                continue
            queued = max(0.0, started - taken)
            handoff = max(0.0, taken - fetched)
            self.parts.append((max(0.0, total - handoff - queued - work), handoff, queued, work))

    def clear(self) -> None:
        self.samples.clear()
        self.parts.clear()

    def percentiles(self) -> dict[str, Any]:
        data = sorted(self.samples)
        if not data:
            return {"count": 0}
        pick = lambda q: data[min(len(data) - 1, int(q * len(data)))]  # noqa: E731
        body: dict[str, Any] = {"count": len(data), "p50_ms": pick(0.5) * 1e3, "p99_ms": pick(0.99) * 1e3,
                                "max_ms": data[-1] * 1e3}
        if self.parts:
            body["breakdown"] = self.breakdown()
        return body

    def breakdown(self) -> dict[str, dict[str, float]]:
        """Mean milliseconds of each part over all events and over the slowest 1 % (what makes the p99)."""
        parts = sorted(self.parts, key=sum)
        tail = parts[int(0.99 * len(parts)):] or parts[-1:]

        def means(rows: list[tuple[float, float, float, float]]) -> dict[str, float]:
            return {name: round(sum(r[i] for r in rows) / len(rows) * 1e3, 2) for i, name in enumerate(self.PARTS)}
        return {"all": means(parts), "slowest_1pct": means(tail)}

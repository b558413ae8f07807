"""CandleStage: OHLCV candles from marketpipe.trades.v1, closed by newer windows and by timer ticks."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from faust.types import EventT, TableT, TopicT

from processors import metrics
from processors.candles import MarketCandles
from processors.context import event_context, key_partition, wall_us
from processors.metrics import LatencyWindow
from processors.stage import Stage
from processors.wire import ContractWire
from schemas.topics import TRADES

log = logging.getLogger(__name__)


class CandleStage(Stage[MarketCandles]):
    """Trades and timer ticks arrive on one co-partitioned stream: a tick for partition p closes the due
    candles of the markets on p. Ticks travel through Kafka because faust tables may only be written while
    processing an event of the table's partition."""

    stream = "trades"

    def __init__(self, table: TableT, history_table: TableT, wire: ContractWire, latency: LatencyWindow, out: TopicT, *,
                 ticks_topic: str, intervals: list[str], grace_ms: int, close_delay_ms: int, history: int,
                 dedup_window: int, partitions: int, highwater: Callable[[str, int], int | None],
                 read_position: Callable[[str, int], int | None],
                 trades_topic: str = TRADES.name) -> None:
        super().__init__(table, wire, latency)
        self.history = history_table  # key b"<venue>:<market>|<interval>|<chunk>" -> published candles of the chunk
        self.out = out
        self.ticks_topic = ticks_topic
        self.intervals = intervals
        self.partitions = partitions
        self._opts = {"grace_us": grace_ms * 1000, "close_delay_us": close_delay_ms * 1000, "history": history,
                      "dedup_window": dedup_window}
        self._partition_of: dict[bytes, int] = {}
        self.ticks_seen = 0
        self.processing_since: dict[int, int] = {}  # partition -> wall time this worker began processing it
        self.highwater = highwater
        self.read_position = read_position
        self.trades_topic = trades_topic
        self._gap_markers = metrics.GAP_MARKERS.labels(self.stream)
        # the web view's trades tape: the last TAPE_SIZE trades per market folded here, numbered in arrival
        # order (memory only: empty again after a restart or a rebalance, filled by the next trades)
        self.tape: dict[bytes, deque[tuple[int, dict[str, Any]]]] = {}
        self.tape_seq = 0

    def from_state(self, state: dict[str, Any]) -> MarketCandles:
        prefix = f"{state['venue']}:{state['market']}"

        def load_chunk(interval: str, chunk: int) -> list[dict[str, Any]]:
            raw = self.history.get(f"{prefix}|{interval}|{chunk}".encode())
            return orjson.loads(raw) if raw is not None else []

        return MarketCandles.from_state(state, self.intervals, load_chunk=load_chunk, **self._opts)

    def persist(self, dirty: dict[bytes, tuple[MarketCandles, EventT]]) -> None:
        """Trade state per key, plus only the history chunks that changed."""
        super().persist(dirty)
        for key, (mc, event) in dirty.items():
            with event_context(event):
                for name, series in mc.series.items():
                    for chunk in series.dirty_chunks:
                        hkey = b"%s|%s|%d" % (key, name.encode(), chunk)
                        candles = series.chunk(chunk)
                        if candles:
                            self.history[hkey] = orjson.dumps(candles)
                        elif hkey in self.history:
                            del self.history[hkey]
                    series.dirty_chunks.clear()

    def to_state(self, obj: MarketCandles) -> dict[str, Any]:
        return obj.to_state()

    def fold(self, key: bytes, mc: MarketCandles | None, record: dict[str, Any], event: EventT) -> MarketCandles:
        self.check_key(key, record["venue"], record["market"])
        if mc is None:
            mc = self.cache[key] = MarketCandles(record["venue"], record["market"], self.intervals, **self._opts)
        if record.get("gap") is not None:  # a gap marker, not a trade
            return self._fold_gap(key, mc, record)
        folded = mc.add_trade(record, wall_us())
        if folded.duplicate:
            metrics.DUPLICATES.labels(self.stream).inc()
        for name in folded.late_intervals:
            metrics.LATE_TRADES.labels(name).inc()
            log.info("trade %s of %s too late for the final %s candle (exchange_ts %s)", record["event_id"],
                     key.decode(), name, record["exchange_ts"])
        if not folded.duplicate:
            self._remember_trade(key, record)
        self._publish(key, folded.records)
        return mc

    TAPE_SIZE = 100

    def _remember_trade(self, key: bytes, record: dict[str, Any]) -> None:
        tape = self.tape.get(key)
        if tape is None:
            tape = self.tape[key] = deque(maxlen=self.TAPE_SIZE)
        self.tape_seq += 1
        tape.append((self.tape_seq, {"trade_id": record["trade_id"], "price": record["price"], "size": record["size"],
                                     "side": record["side"], "exchange_ts": record["exchange_ts"]}))

    def _fold_gap(self, key: bytes, mc: MarketCandles, record: dict[str, Any]) -> MarketCandles:
        folded = mc.add_gap(record, wall_us())
        self._gap_markers.inc()
        if folded.duplicate:
            metrics.DUPLICATES.labels(self.stream).inc()
            return mc
        gap = record["gap"]
        log.warning("gap marker %s of %s: trades may be missing in [%s, %s] (%s, after %s, before %s, %s missing); "
                    "candles %s", record["event_id"], key.decode(), gap["from_ts"], gap["to_ts"], gap["reason"],
                    gap.get("after_id"), gap.get("before_id"), gap.get("missing_count"),
                    {f"{i}/{k}": n for (i, k), n in folded.candles.items()})
        for (interval, kind), n in folded.candles.items():
            metrics.GAP_CANDLES.labels(interval, kind).inc(n)
        self._publish(key, folded.records)
        return mc

    def on_other(self, event: EventT, dirty: dict[bytes, tuple[MarketCandles, EventT]]) -> bool:
        msg = event.message
        if msg.topic != self.ticks_topic:
            return False
        self.ticks_seen += 1
        now = wall_us()
        since = self.processing_since.setdefault(msg.partition, now)
        if not self.caught_up(msg.partition):
            return True  # a backlog of trades is not idle time: let event time close the candles
        for key in list(self.table.keys()):
            part = self._partition_of.get(key)
            if part is None:
                part = self._partition_of[key] = key_partition(key, self.partitions)
            if part != msg.partition:
                continue
            mc = self.load(key)
            if mc is None:
                continue
            before = sum(len(s.buckets) for s in mc.series.values())
            records = mc.on_timer(now, since)
            if records or before != sum(len(s.buckets) for s in mc.series.values()):
                self._publish(key, records)
                dirty.setdefault(key, (mc, event))
        return True

    def forget(self) -> None:
        super().forget()
        self.processing_since.clear()
        self.tape.clear()

    def caught_up(self, partition: int) -> bool:
        """True when this worker has folded in every trade of the partition it knows of. Before it folded any
        (a start, a restart, a partition just assigned) only when it starts reading at the end: a backlog not
        yet fetched is not idle time (the timer would close, then finalize, the candles its trades belong to)."""
        high = self.highwater(self.trades_topic, partition)
        if high is None:
            return False
        last = self.last_offsets.get((self.trades_topic, partition))
        if last is not None:
            return last + 1 >= high
        start = self.read_position(self.trades_topic, partition)
        return high == 0 or (start is not None and start >= high)

    def _publish(self, key: bytes, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.out.send_soon(key=key, value=self.wire.ohlcv.encode(record))
            metrics.CANDLES.labels(record["interval"], "first" if record["revision"] == 0 else "amendment").inc()

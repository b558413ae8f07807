"""Candles from trades by event time (pure logic, no Kafka): CandleSeries per interval, MarketCandles per market.

Policy (documented contract of marketpipe.derived.ohlcv.v1):
- Buckets are aligned to the epoch: start = ts - ts % interval, end = start + interval (microseconds).
- A bucket is first published (revision 0) when a trade of a newer bucket arrives for the same market
  (event time moved past its end) or when the timer sees the market's event-time clock pass end + close
  delay. The event-time clock of an idle market is its newest trade time plus the wall time elapsed since
  that trade arrived, so live feeds close on time and replays of recorded trades close by their own time.
- A late trade (its bucket already published) amends the bucket while the market's clock is before
  end + grace: the candle is re-published with revision + 1. After end + grace the bucket is final; later
  trades for it are dropped and counted.
- Empty intervals: NO candle is emitted for an interval without trades. A gap in the series means "no
  trades", never "price unchanged"; consumers that want flat bars fill them from the previous close.
  Except inside a gap window (below): there an empty interval is a known-unknown, not "no trades".
- Gap markers (a trade record with `gap` set) are not trades: they never enter the figures (`add_gap`).
  Every candle of every interval whose [start, end) overlaps the marker's [from_ts, to_ts] gets `gap: true`:
  an open bucket is flagged (re-published with revision + 1 if already published); a final candle still in
  the published history is re-published with revision + 1 and gap true; an interval without trades gets an
  empty gap candle (trade_count 0, every figure "0", exchange_ts = start_ts), published like any other
  bucket (or at once, revision 0, if its interval is already final). Reach: at most `history` + open buckets
  intervals per marker and interval (the newest of the window), and only what the history still holds;
  older candles are not re-published (counted as beyond_retention). A gap marker does not move the event-time clock.
- OHLC follow event time: open is the earliest trade, close the latest (ties: arrival order). VWAP is
  quote_volume / volume with 34 significant digits; all other figures are exact sums of the venue text.
- Replays are idempotent: the processor skips source offsets already folded in, and a bounded window of
  recent trade event_ids drops producer-side duplicates.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any

from processors.decimal_text import ZERO, parse, ratio, text

_start_ts = itemgetter("start_ts")  # the history's sort key

CHUNK = 64  # candles per persisted history chunk
NEVER = 1 << 62  # a deadline no clock (microseconds) reaches
_UNITS = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}


def interval_us(name: str) -> int:
    m = re.fullmatch(r"(\d+)([smhd])", name)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"candle interval {name!r}: expected <n>s|m|h|d, e.g. 1s, 1m, 5m, 1h")
    return int(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class Folded:
    """What folding one trade produced: candle records to publish, intervals where it came too late."""

    records: list[dict[str, Any]] = field(default_factory=list)
    late_intervals: list[str] = field(default_factory=list)
    duplicate: bool = False


@dataclass
class GapFolded:
    """What folding one gap marker produced: candle records to publish and how many candles it touched,
    by (interval, kind): flagged (open, not yet published), amended (published, re-published with gap),
    empty (an interval without trades, now a gap candle), beyond_retention (too old to re-publish)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    candles: dict[tuple[str, str], int] = field(default_factory=dict)
    duplicate: bool = False

    def count(self, interval: str, kind: str, n: int = 1) -> None:
        self.candles[(interval, kind)] = self.candles.get((interval, kind), 0) + n


# the figures of a candle without trades (inside a gap): like the gap marker itself, "0" means "no data"
_NO_TRADES: dict[str, Any] = {"open": "0", "high": "0", "low": "0", "close": "0", "volume": "0",
                              "quote_volume": "0", "vwap": "0", "buy_volume": "0", "sell_volume": "0",
                              "trade_count": 0}


class Bucket:
    __slots__ = ("start", "end", "open", "open_ts", "high", "low", "close", "close_ts", "volume",
                 "quote_volume", "buy_volume", "sell_volume", "count", "last_ts", "revision", "high_value",
                 "low_value", "gap")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end
        self.open = self.high = self.low = self.close = ""
        self.high_value = self.low_value = ZERO  # high and low as numbers (the texts are what is published)
        self.open_ts = self.close_ts = self.last_ts = 0
        self.volume = self.quote_volume = self.buy_volume = self.sell_volume = ZERO
        self.count = 0
        self.revision = -1  # -1: never published
        self.gap = False  # a gap marker's window overlaps this interval: trades may be missing

    def add(self, ts: int, price_text: str, price: Decimal, size: Decimal, side: str) -> None:
        if self.count == 0:
            self.open = self.high = self.low = self.close = price_text
            self.high_value = self.low_value = price
            self.open_ts = self.close_ts = ts
        else:
            if ts < self.open_ts:
                self.open, self.open_ts = price_text, ts
            if ts >= self.close_ts:
                self.close, self.close_ts = price_text, ts
            if price > self.high_value:
                self.high, self.high_value = price_text, price
            if price < self.low_value:
                self.low, self.low_value = price_text, price
        self.volume += size
        self.quote_volume += price * size
        if side == "BUY":
            self.buy_volume += size
        elif side == "SELL":
            self.sell_volume += size
        self.count += 1
        self.last_ts = max(self.last_ts, ts)

    def figures(self) -> dict[str, Any]:
        if not self.count:  # only a gap creates a bucket without trades
            return {"start_ts": self.start, "end_ts": self.end, **_NO_TRADES, "gap": self.gap}
        return {"start_ts": self.start, "end_ts": self.end, "open": self.open, "high": self.high, "low": self.low,
                "close": self.close, "volume": text(self.volume), "quote_volume": text(self.quote_volume),
                "vwap": text(ratio(self.quote_volume, self.volume)) if self.volume else self.close,
                "buy_volume": text(self.buy_volume), "sell_volume": text(self.sell_volume),
                "trade_count": self.count, "gap": self.gap}

    def to_state(self) -> list[Any]:
        return [self.start, self.end, self.open, self.open_ts, self.high, self.low, self.close, self.close_ts,
                str(self.volume), str(self.quote_volume), str(self.buy_volume), str(self.sell_volume),
                self.count, self.last_ts, self.revision, self.gap]

    @classmethod
    def from_state(cls, s: list[Any]) -> Bucket:
        b = cls(s[0], s[1])
        (b.open, b.open_ts, b.high, b.low, b.close, b.close_ts) = s[2:8]
        if b.high:
            b.high_value, b.low_value = Decimal(b.high), Decimal(b.low)
        b.volume, b.quote_volume, b.buy_volume, b.sell_volume = (Decimal(x) for x in s[8:12])
        b.count, b.last_ts, b.revision = s[12], s[13], s[14]
        b.gap = len(s) > 15 and bool(s[15])  # state written before gap markers has no flag
        return b


class CandleSeries:
    """The open (not yet final) buckets and the recent published candles of one market and interval.

    `due` and `finalize` run for every trade; they scan the buckets only once the clock has reached the
    earliest end of an unpublished bucket (`_due_at`) or of a published one plus grace (`_final_at`), which
    every change to the buckets keeps up to date. `scan_always` turns that off (tests compare both ways)."""

    __slots__ = ("name", "length", "buckets", "final_before", "history", "dirty_chunks", "_due_at", "_final_at")
    scan_always = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.length = interval_us(name)
        self.buckets: dict[int, Bucket] = {}
        self.final_before = 0  # buckets starting before this are final
        self.history: list[dict[str, Any]] = []  # published candles (latest revision), oldest first
        self.dirty_chunks: set[int] = set()  # history chunks changed since the last persist
        self._due_at = self._final_at = NEVER  # earliest end of an unpublished / a published bucket

    def reindex(self) -> None:
        """Recompute both deadlines from the buckets (after loading them from state)."""
        self._due_at = min((b.end for b in self.buckets.values() if b.revision < 0), default=NEVER)
        self._final_at = min((b.end for b in self.buckets.values() if b.revision >= 0), default=NEVER)

    def bucket_for(self, ts: int, clock: int, grace: int) -> Bucket | None:
        start = ts - ts % self.length
        if start < self.final_before or start + self.length + grace <= clock:
            return None
        bucket = self.buckets.get(start)
        if bucket is None:
            bucket = self.buckets[start] = Bucket(start, start + self.length)
            self._due_at = min(self._due_at, bucket.end)
        return bucket

    def gap_bucket(self, start: int) -> Bucket:
        """An open bucket without trades for an interval inside a gap window (flagged; published when due)."""
        bucket = self.buckets[start] = Bucket(start, start + self.length)
        bucket.gap, bucket.last_ts = True, start
        self._due_at = min(self._due_at, bucket.end)
        return bucket

    def due(self, clock: int, close_delay: int) -> list[Bucket]:
        """Unpublished buckets whose end the clock has passed (by close_delay), oldest first. The caller
        publishes every one of them (`published`)."""
        if self._due_at + close_delay > clock and not self.scan_always:
            return []
        due = sorted((b for b in self.buckets.values() if b.revision < 0 and b.end + close_delay <= clock),
                     key=lambda b: b.start)
        self._due_at = min((b.end for b in self.buckets.values() if b.revision < 0 and b.end + close_delay > clock),
                           default=NEVER)
        return due

    def published(self, bucket: Bucket) -> None:
        self._final_at = min(self._final_at, bucket.end)

    def finalize(self, clock: int, grace: int) -> None:
        if self._final_at + grace > clock and not self.scan_always:
            return
        for start in [s for s, b in self.buckets.items() if b.end + grace <= clock and b.revision >= 0]:
            bucket = self.buckets.pop(start)
            self.final_before = max(self.final_before, bucket.end)
        self._final_at = min((b.end for b in self.buckets.values() if b.revision >= 0), default=NEVER)

    def chunk_of(self, start_ts: int) -> int:
        """History is persisted in chunks of CHUNK candles, so a new candle rewrites one small chunk."""
        return start_ts // (self.length * CHUNK)

    def chunks(self) -> list[int]:
        return sorted({self.chunk_of(c["start_ts"]) for c in self.history})

    def chunk(self, chunk: int) -> list[dict[str, Any]]:
        """The candles of one chunk: a slice of the history (sorted by start_ts), found by bisection; a
        persist touches only the dirty chunks, so its cost no longer grows with the history kept."""
        span = self.length * CHUNK
        hist = self.history
        lo = bisect_left(hist, chunk * span, key=_start_ts)
        return hist[lo:bisect_left(hist, (chunk + 1) * span, lo, key=_start_ts)]

    def remember(self, candle: dict[str, Any], keep: int) -> None:
        self.dirty_chunks.add(self.chunk_of(candle["start_ts"]))
        hist = self.history
        start = candle["start_ts"]
        if not hist or hist[-1]["start_ts"] < start:  # the common case: a newer candle
            hist.append(candle)
        else:
            i = bisect_left(hist, start, key=_start_ts)
            if i < len(hist) and hist[i]["start_ts"] == start:
                hist[i] = candle  # an amendment (revision + 1)
            else:
                hist.insert(i, candle)
        if len(hist) > keep:
            for old in hist[:-keep]:
                self.dirty_chunks.add(self.chunk_of(old["start_ts"]))
            del hist[:-keep]


class MarketCandles:
    """Every configured interval of one (venue, market); turns trades and timer ticks into candle records."""

    def __init__(self, venue: str, market: str, intervals: list[str], *, grace_us: int, close_delay_us: int,
                 history: int = 500, dedup_window: int = 256) -> None:
        self.venue, self.market, self.venue_symbol = venue, market, ""
        self.series = {name: CandleSeries(name) for name in intervals}
        self.grace, self.close_delay, self.keep = grace_us, close_delay_us, history
        self.watermark = 0  # newest trade exchange_ts seen
        self.watermark_wall = 0  # wall clock (us) when the watermark last advanced
        self.last_offset = -1
        self.recent_ids: deque[str] = deque(maxlen=dedup_window)
        self._recent_set: set[str] = set()

    # -- clock ----------------------------------------------------------------------------------------
    def clock(self, wall_now: int, idle_since: int = 0) -> int:
        """Event-time clock: newest trade time, advanced by the wall time elapsed since it arrived (or since
        idle_since, when this worker started processing the market later: its downtime is not idle time)."""
        if not self.watermark:
            return 0
        return self.watermark + max(0, wall_now - max(self.watermark_wall, idle_since))

    # -- inputs ---------------------------------------------------------------------------------------
    def add_trade(self, trade: dict[str, Any], wall_now: int) -> Folded:
        """Fold a decoded Trade in. Raises ValueError on malformed figures (state left unchanged)."""
        if trade["event_id"] in self._recent_set:
            return Folded(duplicate=True)
        price_text, size_text = trade["price"], trade["size"]
        price, size = parse(price_text, "price"), parse(size_text, "size")
        if price <= 0 or size <= 0:
            raise ValueError(f"trade price={price_text!r} size={size_text!r} out of range")
        ts = trade["exchange_ts"]
        self._remember_id(trade["event_id"])
        self.venue_symbol = trade.get("venue_symbol") or self.venue_symbol
        if ts > self.watermark:
            self.watermark, self.watermark_wall = ts, wall_now
        clock = self.watermark
        folded = Folded()
        out = folded.records
        for series in self.series.values():
            bucket = series.bucket_for(ts, clock, self.grace)
            if bucket is None:
                folded.late_intervals.append(series.name)
                continue
            bucket.add(ts, price_text, price, size, trade.get("side", "UNKNOWN"))
            if bucket.revision >= 0:  # amendment of a published candle
                out.append(self._publish(series, bucket, wall_now))
            for due in series.due(clock, 0):  # a newer window started
                out.append(self._publish(series, due, wall_now))
            series.finalize(clock, self.grace)
        return folded

    def on_timer(self, wall_now: int, idle_since: int = 0) -> list[dict[str, Any]]:
        """Publish buckets whose end the market's clock has passed; finalize those past grace."""
        if not self.watermark:
            return []
        clock = self.clock(wall_now, idle_since)
        out = []
        for series in self.series.values():
            for due in series.due(clock, self.close_delay):
                out.append(self._publish(series, due, wall_now))
            series.finalize(clock, self.grace)
        return out

    def add_gap(self, marker: dict[str, Any], wall_now: int) -> GapFolded:
        """Fold a gap marker in (a decoded Trade with `gap` set; it is not a trade): flag every candle of
        every interval overlapping [gap.from_ts, gap.to_ts] (see the module's policy). Raises ValueError when
        the window is inverted (state left unchanged)."""
        folded = GapFolded()
        if marker["event_id"] in self._recent_set:
            folded.duplicate = True
            return folded
        gap = marker["gap"]
        lo, hi = gap["from_ts"], gap["to_ts"]
        if hi < lo or lo < 0:
            raise ValueError(f"gap window [{lo}, {hi}] is inverted or negative")
        self._remember_id(marker["event_id"])
        self.venue_symbol = marker.get("venue_symbol") or self.venue_symbol
        for series in self.series.values():
            self._flag_gap(series, lo, hi, wall_now, folded)
        return folded

    def _flag_gap(self, series: CandleSeries, lo: int, hi: int, wall_now: int, folded: GapFolded) -> None:
        length, name, clock = series.length, series.name, self.watermark
        first, last = lo - lo % length, hi - hi % length
        n = (last - first) // length + 1
        reach = self.keep + len(series.buckets)  # what the state can hold: the history and the open buckets
        if n > reach:  # the newest intervals of the window
            folded.count(name, "beyond_retention", n - reach)
            first = last - (reach - 1) * length
        final_starts: list[int] = []
        for start in range(first, last + 1, length):
            bucket = series.buckets.get(start)
            if bucket is None:
                if start >= series.final_before and start + length + self.grace > clock:  # a trade could still come
                    series.gap_bucket(start)
                    folded.count(name, "empty")
                else:
                    final_starts.append(start)
            elif not bucket.gap:
                bucket.gap = True
                if bucket.revision >= 0:
                    folded.records.append(self._publish(series, bucket, wall_now))
                    folded.count(name, "amended")
                else:
                    folded.count(name, "flagged")
        if final_starts:
            self._flag_final(series, final_starts, wall_now, folded)
        for due in series.due(clock, 0):  # an empty gap bucket whose window event time has already passed
            folded.records.append(self._publish(series, due, wall_now))
        series.finalize(clock, self.grace)

    def _flag_final(self, series: CandleSeries, starts: list[int], wall_now: int, folded: GapFolded) -> None:
        """Final intervals: re-publish the published candle with gap true, or publish an empty gap candle,
        as far as the history (the newest `history` candles) reaches."""
        name = series.name
        published = {c["start_ts"]: c for c in series.history}
        empty = [s for s in starts if s not in published]
        kept = sorted(set(published) | set(empty))
        cutoff = kept[-self.keep] if len(kept) > self.keep else -1  # the oldest start the history will hold
        for start in starts:
            candle = published.get(start)
            if start < cutoff:
                folded.count(name, "beyond_retention")
                continue
            if candle is None:
                revision = 0
                record = {"exchange_ts": start, "interval": name, "start_ts": start, "end_ts": start + series.length,
                          **_NO_TRADES}
                folded.count(name, "empty")
            elif candle.get("gap"):
                continue
            else:
                revision = candle["revision"] + 1
                record = dict(candle)
                folded.count(name, "amended")
            record.update({
                "event_id": f"{self.venue}:{self.market}:ohlcv:{name}:{start}:{revision}",
                "venue": self.venue, "market": self.market, "venue_symbol": self.venue_symbol,
                "receive_ts": wall_now, "revision": revision, "gap": True})
            series.remember(record, self.keep)
            folded.records.append(record)

    def _remember_id(self, event_id: str) -> None:
        if len(self.recent_ids) == self.recent_ids.maxlen:
            self._recent_set.discard(self.recent_ids[0])
        self.recent_ids.append(event_id)
        self._recent_set.add(event_id)

    def _publish(self, series: CandleSeries, bucket: Bucket, wall_now: int) -> dict[str, Any]:
        bucket.revision += 1
        series.published(bucket)
        record = {
            "event_id": f"{self.venue}:{self.market}:ohlcv:{series.name}:{bucket.start}:{bucket.revision}",
            "venue": self.venue, "market": self.market, "venue_symbol": self.venue_symbol,
            "exchange_ts": bucket.last_ts, "receive_ts": wall_now, "interval": series.name,
            **bucket.figures(), "revision": bucket.revision,
        }
        series.remember(record, self.keep)
        return record

    # -- queries --------------------------------------------------------------------------------------
    def open_candles(self, interval: str) -> list[dict[str, Any]]:
        series = self.series[interval]
        return [{**b.figures(), "interval": interval, "revision": b.revision, "final": False}
                for b in sorted(series.buckets.values(), key=lambda b: b.start) if b.revision < 0]

    # -- persistence ------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"venue": self.venue, "market": self.market, "venue_symbol": self.venue_symbol,
                "watermark": self.watermark, "watermark_wall": self.watermark_wall, "offset": self.last_offset,
                "recent_ids": list(self.recent_ids),
                "series": {name: {"final_before": s.final_before, "chunks": s.chunks(),
                                  "buckets": [b.to_state() for b in s.buckets.values()]}
                           for name, s in self.series.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any], intervals: list[str], *, grace_us: int, close_delay_us: int,
                   history: int = 500, dedup_window: int = 256,
                   load_chunk: Callable[[str, int], list[dict[str, Any]]] = lambda name, chunk: [],
                   ) -> MarketCandles:
        """Rebuild from the table value; published history comes back chunk by chunk through load_chunk."""
        mc = cls(state["venue"], state["market"], intervals, grace_us=grace_us, close_delay_us=close_delay_us,
                 history=history, dedup_window=dedup_window)
        mc.venue_symbol = state["venue_symbol"]
        mc.watermark, mc.watermark_wall, mc.last_offset = state["watermark"], state["watermark_wall"], state["offset"]
        for event_id in state["recent_ids"]:
            mc._remember_id(event_id)
        for name, s in state["series"].items():
            if name not in mc.series:  # interval removed from the configuration
                continue
            series = mc.series[name]
            series.final_before = s["final_before"]
            series.history = [c for chunk in s.get("chunks", []) for c in load_chunk(name, chunk)]
            series.buckets = {b[0]: Bucket.from_state(b) for b in (s["buckets"])}
            series.reindex()
        return mc

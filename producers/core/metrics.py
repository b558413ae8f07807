"""FeedMetrics: a feed's counters, labelled ``venue``/``channel``, exported to Prometheus at scrape time.

The hot path only increments plain counts on the object (one dict update); a collector registered once
in the default Prometheus registry turns the counts of every live ``FeedMetrics`` into series when
``/metrics`` is scraped (instances of the same venue are summed). Tests read the same counts:
``metrics.count("gaps")`` (all channels) or ``metrics.count("gaps", "orderbook:BTC-USD")``.

=============================================  ===========================================================
``marketpipe_feed_frames_total``                WebSocket frames received (label ``venue``)
``marketpipe_feed_messages_total``              JSON messages received (several per frame are possible)
``marketpipe_feed_events_total``                events handed to Kafka
``marketpipe_feed_parse_errors_total``          malformed messages: counted, logged, skipped
``marketpipe_feed_reconnects_total``            reconnects (label ``reason``)
``marketpipe_feed_gaps_total``                  sequence gaps detected
``marketpipe_feed_resyncs_total``               book resyncs started
``marketpipe_feed_stale_total``                 updates dropped as stale/duplicate (seq <= current)
``marketpipe_feed_crossed_total``               crossed books detected
``marketpipe_feed_heartbeats_total``            venue pings/heartbeats received
``marketpipe_feed_exact_reparses_total``        messages re-read with Decimal numbers (money as JSON numbers)
``marketpipe_feed_gap_markers_total``           gap markers published in trades/account topics
``marketpipe_feed_missing_events_total``        events known missing (the markers' counts)
``marketpipe_feed_recovered_events_total``      events missed live and recovered (REST replay)
``marketpipe_feed_resume_failed_total``         start-ups that could not read the newest trades back from Kafka
``marketpipe_feed_last_message_age_seconds``    age of the last message per channel (gauge)
``marketpipe_feed_connected``                   1 while connected and subscribed (gauge)
=============================================  ===========================================================
"""

from __future__ import annotations

import time
import weakref
from collections import Counter as Tally
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

SERIES: dict[str, tuple[str, str]] = {  # count name -> (metric name without _total, help)
    "messages_in": ("marketpipe_feed_messages", "JSON messages received"),
    "events_out": ("marketpipe_feed_events", "Events handed to Kafka"),
    "parse_errors": ("marketpipe_feed_parse_errors", "Malformed messages skipped"),
    "gaps": ("marketpipe_feed_gaps", "Sequence gaps detected"),
    "resyncs": ("marketpipe_feed_resyncs", "Book resyncs started"),
    "stale": ("marketpipe_feed_stale", "Stale or duplicate updates dropped"),
    "crossed": ("marketpipe_feed_crossed", "Crossed books detected"),
    "heartbeats": ("marketpipe_feed_heartbeats", "Venue heartbeats/pings received"),
    "reparsed": ("marketpipe_feed_exact_reparses", "Messages re-read with exact decimals"),
    "gap_markers": ("marketpipe_feed_gap_markers", "Gap markers published (events may be missing)"),
    "missing_events": ("marketpipe_feed_missing_events", "Events known missing (covered by gap markers)"),
    "recovered": ("marketpipe_feed_recovered_events", "Events missed live and recovered from the venue (REST)"),
    "resume_failed": ("marketpipe_feed_resume_failed", "Start-ups that could not read the newest trades back "
                      "from Kafka (what happened while no producer ran can be neither recovered nor marked)"),
}
_LIVE: weakref.WeakSet[FeedMetrics] = weakref.WeakSet()


class FeedMetrics:
    """Counts of one feed instance; ``inc(name, channel)`` is all the hot path pays."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.counts: Tally[tuple[str, str]] = Tally()
        self.reconnect_reasons: Tally[str] = Tally()
        self.frames = 0
        self.connected = False
        self.last_seen: dict[str, float] = {}
        _LIVE.add(self)

    def inc(self, name: str, channel: str = "-", n: int = 1) -> None:
        """Count ``n`` under ``name`` (a SERIES key, or a venue's own: exported as marketpipe_feed_<name>)."""
        self.counts[(name, channel)] += n

    def frame(self) -> None:
        self.frames += 1

    def message(self, channel: str, now: float | None = None) -> None:
        """One message in on ``channel`` (received at monotonic ``now``): counts it, refreshes its age."""
        self.counts[("messages_in", channel)] += 1
        self.last_seen[channel] = time.monotonic() if now is None else now

    def reconnect(self, reason: str) -> None:
        self.reconnect_reasons[reason] += 1

    def set_connected(self, up: bool) -> None:
        self.connected = up

    # -- reading (tests, health) ----------------------------------------------------------------
    def count(self, name: str, channel: str | None = None) -> int:
        if name == "reconnects":
            return sum(self.reconnect_reasons.values())
        if name == "frames":
            return self.frames
        if channel is not None:
            return self.counts[(name, channel)]
        return sum(v for (n, _), v in self.counts.items() if n == name)

    def last_message_age(self, channel: str) -> float:
        seen = self.last_seen.get(channel)
        return float("inf") if seen is None else time.monotonic() - seen

    def channels(self) -> list[str]:
        return sorted(self.last_seen)

    def snapshot(self) -> dict[str, int]:
        """All totals by metric name (for logs and test failure messages)."""
        out: dict[str, int] = {"frames": self.frames, "reconnects": self.count("reconnects")}
        for (name, _), v in self.counts.items():
            out[name] = out.get(name, 0) + v
        return out


class FeedCollector(Collector):
    """Turns every live FeedMetrics into Prometheus series at scrape time."""

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        live = list(_LIVE)
        sums: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
        frames: dict[str, int] = defaultdict(int)
        reconnects: dict[tuple[str, str], int] = defaultdict(int)
        ages: dict[tuple[str, str], float] = {}
        connected: dict[str, int] = defaultdict(int)
        for m in live:
            frames[m.venue] += m.frames
            connected[m.venue] = max(connected[m.venue], int(m.connected))
            for (name, channel), v in list(m.counts.items()):
                sums[name][(m.venue, channel)] += v
            for reason, v in list(m.reconnect_reasons.items()):
                reconnects[(m.venue, reason)] += v
            for channel in m.channels():
                age = m.last_message_age(channel)
                ages[(m.venue, channel)] = min(age, ages.get((m.venue, channel), age))
        fam = CounterMetricFamily("marketpipe_feed_frames", "WebSocket frames received", labels=["venue"])
        for venue, v in frames.items():
            fam.add_metric([venue], v)
        yield fam
        extra = {name: (f"marketpipe_feed_{name}", f"Feed count {name}") for name in sums if name not in SERIES}
        for name, (metric, doc) in {**SERIES, **extra}.items():
            fam = CounterMetricFamily(metric, doc, labels=["venue", "channel"])
            for labels, v in sums.get(name, {}).items():
                fam.add_metric(list(labels), v)
            yield fam
        fam = CounterMetricFamily("marketpipe_feed_reconnects", "Reconnects", labels=["venue", "reason"])
        for labels, v in reconnects.items():
            fam.add_metric(list(labels), v)
        yield fam
        gauge = GaugeMetricFamily("marketpipe_feed_last_message_age_seconds", "Seconds since the last message",
                                  labels=["venue", "channel"])
        for labels, age in ages.items():
            gauge.add_metric(list(labels), age)
        yield gauge
        gauge = GaugeMetricFamily("marketpipe_feed_connected", "1 while connected and subscribed", labels=["venue"])
        for venue, up in connected.items():
            gauge.add_metric([venue], up)
        yield gauge


REGISTRY.register(FeedCollector())

"""The live terminal view of `marketpipe dev`: per venue and market the best bid/ask and spread from the
materialized books (derived book-top topic), the last finished candle, events/s per topic, consumer lag
of the processors, gaps/resyncs/reconnects scraped from the producers' /metrics, and the query URLs."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from confluent_kafka import TopicPartition as CKTopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from schemas import topics
from schemas.registry import ContractRegistry

FEED_COUNTERS = {
    "marketpipe_feed_gaps": "gaps",
    "marketpipe_feed_resyncs": "resyncs",
    "marketpipe_feed_reconnects": "reconnects",
    "marketpipe_feed_parse_errors": "bad",
}


@dataclass
class PipelineState:
    tops: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> BookTop
    candles: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (key, interval) -> candle
    rates: dict[str, float] = field(default_factory=dict)  # topic -> events/s
    totals: dict[str, int] = field(default_factory=dict)  # topic -> end offsets summed
    lag: int | None = None
    feeds: dict[str, dict[str, float]] = field(default_factory=dict)  # venue -> counters
    query_urls: list[str] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)  # what runs: name, pid, ports, truth
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "tops": self.tops,
            "candles": {f"{k}|{i}": c for (k, i), c in self.candles.items()},
            "rates": self.rates,
            "totals": self.totals,
            "lag": self.lag,
            "feeds": self.feeds,
            "query_urls": self.query_urls,
            "components": self.components,
            "errors": self.errors,
        }


class PipelineWatcher:
    """Follows the derived topics and samples offsets, lag and producer metrics."""

    def __init__(self, bootstrap: str, registry: ContractRegistry, *, group_id: str | None,
                 metrics_urls: dict[str, str], query_urls: list[str]) -> None:
        self.bootstrap = bootstrap
        self.registry = registry
        self.group_id = group_id
        self.metrics_urls = metrics_urls
        self.state = PipelineState(query_urls=query_urls)
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._last_totals: tuple[float, dict[str, int]] | None = None

    async def follow_derived(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(topics.BOOK_TOP.name, topics.OHLCV.name, bootstrap_servers=self.bootstrap,
                                    group_id=None, auto_offset_reset="latest", enable_auto_commit=False)
        await consumer.start()
        try:
            while not stop.is_set():
                for tp, msgs in (await consumer.getmany(timeout_ms=300)).items():
                    for msg in msgs:
                        try:
                            rec = self.registry.decode(msg.value)
                        except Exception as exc:  # a bad record is shown, never fatal
                            self.state.errors.append(f"{tp.topic}: {exc}")
                            continue
                        key = f"{rec['venue']}:{rec['market']}"
                        if tp.topic == topics.BOOK_TOP.name:
                            self.state.tops[key] = rec
                        else:
                            self.state.candles[(key, rec["interval"])] = rec
        finally:
            await consumer.stop()

    def sample(self) -> None:
        """Events/s per topic (from end offsets), consumer lag, producer counters."""
        md = self._admin.list_topics(timeout=5)
        tps = [CKTopicPartition(t.name, p) for t in topics.ALL_TOPICS if t.name in md.topics
               for p in md.topics[t.name].partitions]
        from confluent_kafka import Consumer

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "marketpipe-dev-view",
                      "enable.auto.commit": False})
        try:
            ends: dict[tuple[str, int], int] = {}
            for tp in tps:
                _, high = c.get_watermark_offsets(tp, timeout=5)
                ends[(tp.topic, tp.partition)] = high
        finally:
            c.close()
        totals: dict[str, int] = {}
        for (topic, _), high in ends.items():
            totals[topic] = totals.get(topic, 0) + high
        now = time.monotonic()
        if self._last_totals is not None:
            t_prev, prev = self._last_totals
            dt = max(now - t_prev, 1e-6)
            self.state.rates = {t: (totals[t] - prev.get(t, 0)) / dt for t in totals}
        self._last_totals = (now, totals)
        self.state.totals = totals
        if self.group_id:
            self.state.lag = self._lag(self.group_id, ends)
        for venue, url in self.metrics_urls.items():
            self.state.feeds[venue] = scrape_feed_counters(url)

    def _lag(self, group_id: str, ends: dict[tuple[str, int], int]) -> int | None:
        from confluent_kafka import ConsumerGroupTopicPartitions

        try:
            futs = self._admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)])
            result = next(iter(futs.values())).result()
        except Exception:
            return None
        lag = 0
        for tp in result.topic_partitions:
            end = ends.get((tp.topic, tp.partition))
            if end is not None and tp.offset >= 0:
                lag += max(end - tp.offset, 0)
        return lag


def scrape_feed_counters(url: str) -> dict[str, float]:
    out = {v: 0.0 for v in FEED_COUNTERS.values()}
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            text = resp.read().decode()
    except OSError:
        out["up"] = 0.0
        return out
    out["up"] = 1.0
    for family in text_string_to_metric_families(text):
        name = FEED_COUNTERS.get(family.name)
        if name is None:
            continue
        out[name] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return out


def render(state: PipelineState, started: float) -> str:
    lines = [f"marketpipe dev — up {time.monotonic() - started:5.0f}s   (Ctrl-C stops everything)", ""]
    lines.append(f"{'venue:market':28} {'bid':>14} {'ask':>14} {'spread':>10} {'sync':>5}  last finished candle")
    for key in sorted(state.tops):
        top = state.tops[key]
        cands = [c for (k, _), c in state.candles.items() if k == key]
        last = max(cands, key=lambda c: c["end_ts"], default=None)
        candle = (f"{last['interval']} O {last['open']} H {last['high']} L {last['low']} C {last['close']} "
                  f"V {last['volume']} n={last['trade_count']}") if last else "-"
        lines.append(f"{key:28} {top['best_bid'] or '-':>14} {top['best_ask'] or '-':>14} "
                     f"{top['spread'] or '-':>10} {'yes' if top['in_sync'] else 'NO':>5}  {candle}")
    if not state.tops:
        lines.append("(waiting for the first materialized books...)")
    lines.append("")
    lines.append("events/s: " + "  ".join(f"{t.split('.', 1)[1]}={state.rates.get(t, 0):.0f}"
                                          for t in sorted(state.totals)))
    lines.append(f"processor consumer lag: {state.lag if state.lag is not None else '?'} events")
    for venue, c in sorted(state.feeds.items()):
        lines.append(f"  {venue:10} {'up' if c.get('up') else 'DOWN'}  gaps={c['gaps']:.0f} resyncs={c['resyncs']:.0f} "
                     f"reconnects={c['reconnects']:.0f} malformed={c['bad']:.0f}")
    lines.append("")
    lines.append("queries: " + "   ".join(state.query_urls))
    for err in state.errors[-3:]:
        lines.append(f"error: {err}")
    return "\n".join(lines)

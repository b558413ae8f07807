"""The live terminal view of `marketpipe dev`: per venue and market the best bid/ask and spread from the
materialized books (derived book-top topic), the last finished candle, events/s per topic, consumer lag
of the processors, gaps/resyncs/reconnects scraped from the producers' /metrics, and the query URLs.

`render` builds a rich renderable (tables with coloured states); `marketpipe dev` shows it in place
with `rich.live` (cursor moves, no clear-screen), so the start-up log stays above it."""

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
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from schemas import topics
from schemas.registry import ContractRegistry

FEED_GAUGES = {"marketpipe_feed_connected": "connected"}  # max over the venue's series
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
        gauge = FEED_GAUGES.get(family.name)
        if gauge is not None:
            out[gauge] = max((s.value for s in family.samples), default=0.0)
            continue
        name = FEED_COUNTERS.get(family.name)
        if name is None:
            continue
        out[name] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return out


# The colour of each state the view shows (rich style strings); tests read the rendered styles.
STYLES = {
    "ok": "green",  # producer up and connected, book in sync, lag small
    "warn": "yellow",  # producer up but not connected to its venue, gaps/malformed counted, lag growing
    "bad": "bold red",  # producer down (its /metrics does not answer), book out of sync, lag large, errors
    "unknown": "dim",
}
LAG_WARN = 1_000  # events behind: yellow from here
LAG_BAD = 10_000  # red from here


def producer_state(counters: dict[str, float]) -> tuple[str, str]:
    """(label, style) of a producer from its scraped counters."""
    if not counters.get("up"):
        return "DOWN", STYLES["bad"]
    if "connected" in counters and not counters["connected"]:
        return "disconnected", STYLES["warn"]
    return "up", STYLES["ok"]


def lag_style(lag: int | None) -> str:
    if lag is None:
        return STYLES["unknown"]
    return STYLES["bad"] if lag >= LAG_BAD else STYLES["warn"] if lag >= LAG_WARN else STYLES["ok"]


def _count(value: float, style_if_nonzero: str) -> Text:
    return Text(f"{value:.0f}", style=style_if_nonzero if value else "")


def render(state: PipelineState, started: float) -> RenderableType:
    """The whole view as one rich renderable (redrawn in place by rich.live, or printed once)."""
    header = Text.assemble(("marketpipe dev", "bold"), f" — up {time.monotonic() - started:.0f}s   ",
                           ("(Ctrl-C stops everything)", "dim"))
    books = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    for col, justify in (("venue:market", "left"), ("bid", "right"), ("ask", "right"), ("spread", "right"),
                         ("sync", "left"), ("last finished candle", "left")):
        books.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for key in sorted(state.tops):
        top = state.tops[key]
        cands = [c for (k, _), c in state.candles.items() if k == key]
        last = max(cands, key=lambda c: c["end_ts"], default=None)
        candle = (f"{last['interval']} O {last['open']} H {last['high']} L {last['low']} C {last['close']} "
                  f"V {last['volume']} n={last['trade_count']}") if last else "-"
        sync = Text("in sync", style=STYLES["ok"]) if top["in_sync"] else Text("OUT OF SYNC", style=STYLES["bad"])
        books.add_row(key, str(top["best_bid"] or "-"), str(top["best_ask"] or "-"), str(top["spread"] or "-"),
                      sync, candle)
    parts: list[RenderableType] = [header, Text(""), books]
    if not state.tops:
        parts.append(Text("(waiting for the first materialized books...)", style=STYLES["unknown"]))
    parts.append(Text(""))
    parts.append(Text("events/s: " + "  ".join(f"{t.split('.', 1)[1]}={state.rates.get(t, 0):.0f}"
                                               for t in sorted(state.totals))))
    parts.append(Text.assemble("processor consumer lag: ",
                               (f"{state.lag if state.lag is not None else '?'}", lag_style(state.lag)), " events"))
    feeds = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("producer", "state", "gaps", "resyncs", "reconnects", "malformed"):
        feeds.add_column(col, justify="left" if col in ("producer", "state") else "right", no_wrap=True)
    for venue, c in sorted(state.feeds.items()):
        label, style = producer_state(c)
        feeds.add_row(venue, Text(label, style=style), _count(c.get("gaps", 0), STYLES["warn"]),
                      _count(c.get("resyncs", 0), STYLES["warn"]), _count(c.get("reconnects", 0), STYLES["warn"]),
                      _count(c.get("bad", 0), STYLES["warn"]))
    if state.feeds:
        parts.append(feeds)
    parts.append(Text(""))
    parts.append(Text("queries: " + "   ".join(state.query_urls), style="dim"))
    for err in state.errors[-3:]:
        parts.append(Text(f"error: {err}", style=STYLES["bad"]))
    return Group(*parts)

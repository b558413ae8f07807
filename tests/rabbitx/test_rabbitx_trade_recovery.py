"""RabbitX trades through a Kafka outage long enough for the venue to cut the producer off.

Kafka (a broker of this module's own, stopped and restarted on the same data directory) goes away while
the venue keeps trading; the publisher's small buffer fills, the reader blocks, the simulator closes the
connection (3012 no pong / 3008 slow) and keeps trading while nobody listens. After the restart the
producer reconnects; the ``trade:`` subscribe reply holds only the last ``recent_trades`` trades, so the
hole must be found by trade number and filled from ``GET /markets/trades``.

Checked against the simulator's truth, by id, per market, in the order of the trades topic: the trades
and gap markers cover every number from the first to the last trade exactly once and in order. With a
REST history deeper than the hole there is no marker (all recovered); with a shallow one, the markers
cover exactly the trades that were neither delivered nor recoverable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from marketpipe.infra.ports import free_port
from marketpipe.infra.processes import LocalKafka
from marketpipe.topics_admin import ensure_topics
from producers.core.emitter import FEED_TOPICS
from producers.rabbitx import RabbitXFeed
from producers.rabbitx.trade_history import trade_number
from schemas.registry import ContractRegistry
from schemas.topics import TRADES, market_key
from simulators.rabbitx import RabbitXSimulator
from tests.feedcore.kafka_reader import end_offsets, read_events
from tests.rabbitx.conftest import FeedFactory, wait_until

FAST_CUTOFF = {"ping_interval": 0.3, "pong_timeout": 1.5, "max_queue": 400, "batch_max": 6,
               "weights": {"book": 0.2, "trade": 0.7, "market": 0.1}, "recent_trades": 500}


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory, registry: ContractRegistry) -> Iterator[LocalKafka]:
    """A broker this module may stop and restart (the session's broker is shared)."""
    kafka = LocalKafka(Path(tmp_path_factory.mktemp("rabbitx-outage")) / "kafka", free_port(), free_port())
    kafka.start()
    try:
        ensure_topics(kafka.bootstrap, FEED_TOPICS)
        yield kafka
    finally:
        kafka.stop()


def number(trade_id: str) -> int:
    parsed = trade_number(trade_id)
    assert parsed is not None, trade_id
    return parsed[1]


def caught_up(feed: RabbitXFeed, sim: RabbitXSimulator) -> bool:
    return all(feed.tapes[m].last == number(t.trades[-1]["id"]) for m, t in sim.markets.items() if t.trades)


def covered_numbers(events: list[dict[str, Any]]) -> list[int]:
    """The trade numbers the topic accounts for, in topic order: a trade its own, a marker its range."""
    out: list[int] = []
    for e in events:
        gap = e["gap"]
        if gap is None:
            out.append(number(e["trade_id"]))
        else:
            after, before = number(gap["after_id"]), number(gap["before_id"])
            assert gap["missing_count"] == before - after - 1 > 0, gap
            assert e["trade_id"] == f"gap:{gap['after_id']}:{gap['before_id']}"
            out.extend(range(after + 1, before))
    return out


@pytest.mark.parametrize("history", [
    pytest.param("deep", marks=pytest.mark.sim(**FAST_CUTOFF, rest_trade_history=100_000)),
    pytest.param("shallow", marks=pytest.mark.sim(**FAST_CUTOFF, rest_trade_history=700)),
    # pongs patient enough that only the server's queue limit cuts the reader off (close 3008 slow)
    pytest.param("deep-3008", marks=pytest.mark.sim(**{**FAST_CUTOFF, "pong_timeout": 600.0},
                                                      rest_trade_history=100_000)),
])
async def test_trades_lost_to_a_cutoff_are_recovered_or_marked(own_kafka: LocalKafka, registry: ContractRegistry,
                                                               sim: RabbitXSimulator, make_feed: FeedFactory,
                                                               history: str) -> None:
    start = await end_offsets(own_kafka.bootstrap, [TRADES])
    feed = make_feed(kafka_bootstrap=own_kafka.bootstrap, account_id=None, publisher_buffer=200, ws_max_queue=4,
                     watchdog_seconds=3.0, trade_recovery_page_limit=250)
    task = asyncio.create_task(feed.run())
    try:
        await sim.wait_subscribed(*feed.channels)
        sim.generate(300)
        await sim.drain()
        await wait_until(lambda: caught_up(feed, sim), 30, "trades published before the outage")

        await asyncio.to_thread(own_kafka.stop)
        async with asyncio.timeout(120):  # the venue keeps trading; the blocked producer stops reading
            while sim.stats["close_3008"] + sim.stats["close_3012"] == 0:
                sim.generate(60)
                await asyncio.sleep(0.02)
        sent_when_cut = {m: len(t.trades) for m, t in sim.markets.items()}
        sim.generate(5000)  # while nobody listens: far more than a subscribe reply holds
        await asyncio.to_thread(own_kafka.start)

        await wait_until(lambda: feed.connections >= 2 and feed.ready, 120, "reconnected after the outage")
        sim.generate(300)
        await sim.drain(timeout=60)
        await wait_until(lambda: caught_up(feed, sim), 120, "trades published after the outage")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # run() flushes the publisher

    m = feed.metrics
    print(f"\n[{history}] closes: 3008={sim.stats['close_3008']} 3012={sim.stats['close_3012']}; "
          f"trades sent when cut off: {sent_when_cut}; REST pages: {sim.stats['rest_trade_pages']}; "
          f"metrics: holes={m.count('trade_holes')} recovered={m.count('recovered')} "
          f"gap_markers={m.count('gap_markers')} missing_events={m.count('missing_events')}")
    assert m.count("trade_holes") >= 1, "the cut-off should have left a hole"
    assert sim.stats["rest_trade_pages"] >= 1

    markers_total = missing_total = 0
    for market_id, truth in sim.markets.items():
        key = market_key("rabbitx", feed.market(market_id))
        events = await read_events(own_kafka.bootstrap, registry, TRADES, start[TRADES.name], keys={key})
        trades = [e for e in events if e["gap"] is None]
        markers = [e for e in events if e["gap"] is not None]
        truth_numbers = [number(t["id"]) for t in truth.trades]
        # every number exactly once, in order: trades and markers tile the venue's sequence
        assert covered_numbers(events) == truth_numbers
        by_id = {t["id"]: t for t in truth.trades}
        for t in trades:  # delivered or recovered, each equal to what the venue sent
            src = by_id[t["trade_id"]]
            assert (t["price"], t["size"], t["exchange_ts"], t["liquidation"]) == (
                src["price"], src["size"], src["timestamp"], src["liquidation"])
            assert t["side"] == {"long": "BUY", "short": "SELL"}[src["taker_side"]]
        missing = sum(e["gap"]["missing_count"] for e in markers)
        assert len(trades) + missing == len(truth.trades)
        for e in markers:
            assert e["gap"]["reason"] == "history-exhausted" and e["gap"]["from_ts"] <= e["gap"]["to_ts"]
        print(f"[{history}] {market_id}: venue trades={len(truth.trades)} in Kafka={len(trades)} "
              f"markers={len(markers)} marked missing={missing}")
        markers_total += len(markers)
        missing_total += missing

    assert m.count("gap_markers") == markers_total and m.count("missing_events") == missing_total
    assert markers_total <= m.count("trade_holes"), "at most one marker per hole"
    if history == "deep-3008":
        assert sim.stats["close_3008"] >= 1
    if history.startswith("deep"):
        assert markers_total == 0, "the REST history held every missing trade"
        assert m.count("recovered") > 0
    else:
        assert markers_total >= 1, "the REST history is shallower than the hole"
        assert m.count("recovered") > 0, "what the shallow history still held is recovered, not marked"


async def run_with_live_holes(feed: RabbitXFeed, sim: RabbitXSimulator, holes: dict[str, int]) -> None:
    task = asyncio.create_task(feed.run())
    try:
        await sim.wait_subscribed(*feed.channels)
        sim.generate(200)
        for market_id, n in holes.items():
            sim.trade_gap(market_id, n)
        sim.generate(400)
        await sim.drain()
        await wait_until(lambda: caught_up(feed, sim), 30, "trades published after the holes")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sim.stats["trades_withheld"] == sum(holes.values())


async def test_a_hole_in_the_live_stream_is_filled_from_rest(cluster: Any, registry: ContractRegistry,
                                                             sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    start = await end_offsets(cluster.bootstrap, [TRADES])
    feed = make_feed(account_id=None)
    m1, m2 = sorted(sim.markets)
    await run_with_live_holes(feed, sim, {m1: 4, m2: 1})
    assert feed.connections == 1, "a live hole needs no reconnect"
    assert feed.metrics.count("trade_holes") == 2 and feed.metrics.count("recovered") == 5
    assert feed.metrics.count("gap_markers") == 0
    for market_id, truth in sim.markets.items():
        key = market_key("rabbitx", feed.market(market_id))
        events = await read_events(cluster.bootstrap, registry, TRADES, start[TRADES.name], keys={key})
        assert [e["trade_id"] for e in events] == [t["id"] for t in truth.trades]  # once each, in venue order


async def test_a_hole_rest_cannot_fill_gets_one_marker(cluster: Any, registry: ContractRegistry,
                                                       sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    start = await end_offsets(cluster.bootstrap, [TRADES])
    feed = make_feed(account_id=None, rest_url=f"http://127.0.0.1:{free_port()}")  # nobody listens there
    m1, _ = sorted(sim.markets)
    await run_with_live_holes(feed, sim, {m1: 3})
    assert feed.metrics.count("gap_markers") == 1 and feed.metrics.count("missing_events") == 3
    assert feed.metrics.count("recovered") == 0
    key = market_key("rabbitx", feed.market(m1))
    events = await read_events(cluster.bootstrap, registry, TRADES, start[TRADES.name], keys={key})
    assert covered_numbers(events) == [number(t["id"]) for t in sim.markets[m1].trades]
    [marker] = [e for e in events if e["gap"] is not None]
    assert marker["gap"]["reason"] == "recovery-failed" and marker["gap"]["missing_count"] == 3
    assert marker["price"] == "0" and marker["side"] == "UNKNOWN"


@pytest.mark.sim(rest_latency=0.25, pong_timeout=60.0, weights={"book": 0.2, "trade": 0.7, "market": 0.1})
async def test_a_slow_recovery_after_a_reconnect_is_not_cut_short_by_subscribe_timeout(
        cluster: Any, registry: ContractRegistry, sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    """The hole found in a resubscribe reply takes longer to walk than ``subscribe_timeout``: the subscription
    was confirmed, so the walk finishes on this connection instead of reconnecting (and walking) forever."""
    start = await end_offsets(cluster.bootstrap, [TRADES])
    feed = make_feed(account_id=None, subscribe_timeout=1.0, trade_recovery_page_limit=100, watchdog_seconds=30)
    task = asyncio.create_task(feed.run())
    try:
        await sim.wait_subscribed(*feed.channels)
        sim.generate(200)
        await sim.drain()
        await wait_until(lambda: caught_up(feed, sim), 30, "trades published")
        assert sim.disconnect_all() == 1
        sim.generate(4000)  # ~1400 trades per market while away, 500 in the reply: 9 pages of 100 at 0.25 s
        await wait_until(lambda: feed.connections >= 2, 30, "reconnected")
        sim.generate(100)
        await sim.drain()
        await wait_until(lambda: caught_up(feed, sim), 60, "trades published after the reconnect")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert feed.connections == 2, list(feed.disconnect_reasons)
    assert feed.metrics.count("trade_holes") == 2 and feed.metrics.count("gap_markers") == 0
    for market_id, truth in sim.markets.items():
        key = market_key("rabbitx", feed.market(market_id))
        events = await read_events(cluster.bootstrap, registry, TRADES, start[TRADES.name], keys={key})
        assert [e["trade_id"] for e in events] == [t["id"] for t in truth.trades]


async def run_until_caught_up(feed: RabbitXFeed, sim: RabbitXSimulator, what: str) -> None:
    task = asyncio.create_task(feed.run())
    try:
        await sim.wait_subscribed(*feed.channels)
        sim.generate(300)
        await sim.drain()
        await wait_until(lambda: caught_up(feed, sim), 60, what)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # run() flushes the publisher


@pytest.mark.sim(recent_trades=50, rest_trade_history=100_000, weights={"book": 0.2, "trade": 0.7, "market": 0.1})
async def test_a_restarted_producer_resumes_from_its_newest_trade_in_kafka(
        cluster: Any, registry: ContractRegistry, sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    """A producer stopped and started again (a deploy, a crash): the new process reads each market's newest
    trade back from Kafka, so the trades made while no producer ran are recovered over REST and the ones the
    subscribe reply repeats are not published a second time."""
    start = await end_offsets(cluster.bootstrap, [TRADES])
    first = make_feed(account_id=None)
    await run_until_caught_up(first, sim, "the first producer's trades")
    published_first = {m: first.tapes[m].last for m in sim.markets}
    sim.generate(2000)  # while no producer runs: far more than a subscribe reply (50 trades) holds
    second = make_feed(account_id=None)
    await run_until_caught_up(second, sim, "the second producer's trades")

    third = make_feed(account_id=None)  # restarted at once: its subscribe reply holds only published trades
    await run_until_caught_up(third, sim, "the third producer's trades")

    m = second.metrics
    print(f"\nfirst run ended at {published_first}; second run: recovered={m.count('recovered')} "
          f"duplicates={m.count('duplicates')} holes={m.count('trade_holes')} markers={m.count('gap_markers')}; "
          f"third run: duplicates={third.metrics.count('duplicates')} holes={third.metrics.count('trade_holes')}")
    assert m.count("resume_failed") == 0
    assert m.count("trade_holes") == len(sim.markets), "one hole per market: from the newest trade in Kafka on"
    assert m.count("recovered") > 0 and m.count("gap_markers") == 0
    assert third.metrics.count("trade_holes") == 0 and third.metrics.count("recovered") == 0
    assert third.metrics.count("duplicates") >= 50, "the subscribe reply repeated trades already in Kafka"
    for market_id, truth in sim.markets.items():
        key = market_key("rabbitx", third.market(market_id))
        events = await read_events(cluster.bootstrap, registry, TRADES, start[TRADES.name], keys={key})
        assert [e["trade_id"] for e in events] == [t["id"] for t in truth.trades]  # once each, in venue order

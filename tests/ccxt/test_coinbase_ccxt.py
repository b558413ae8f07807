"""ccxt producer against the Coinbase Advanced Trade simulator, into the real Kafka + registry.

Faults: a ``sequence_num`` gap (one ``l2_data`` update lost; ccxt does not look at the number, the producer
must), a quiet product (without ``heartbeats`` its subscriptions close silently), a disconnect (trades made
while away come back in the ``market_trades`` snapshot), and a longer one (more trades than the snapshot
holds: the rest gets one gap marker, in place). Kafka must equal the simulator's truth: every book
level, every trade exactly once and in order, the last ticker. The control runs switch the producer's
sequence check or heartbeats off and show each fault then leaves Kafka wrong.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from producers.ccxt import CcxtSettings
from schemas.topics import BOOK, TICKER, TRADES, market_key
from simulators.binance import MarketModel
from simulators.coinbase import CoinbaseSimulator
from tests.ccxt.harness import FeedRun, wait_for
from tests.feedcore.book_replay import replay_book
from tests.feedcore.kafka_reader import read_events

pytestmark = pytest.mark.timeout(120)

BTC, ETH = "BTC-USD", "ETH-USD"


def coinbase_settings(cluster, registry_url: str, sim: CoinbaseSimulator, venue: str, **kw) -> CcxtSettings:  # noqa: ANN001
    options = {"reconnect_initial_delay": 0.05, "reconnect_max_delay": 1.0, "markets": ["BTC/USD", "ETH/USD"],
               "channels": ["book", "trades", "ticker"], **kw}
    return CcxtSettings(
        kafka_bootstrap=cluster.bootstrap, registry_url=registry_url, create_topics=False, register_schemas=False,
        exchange="coinbase", venue=venue, rest_base_override=sim.rest_url, url_overrides={"api.ws": sim.ws_url},
        **options)


def models(seed: int) -> list[MarketModel]:
    return [MarketModel(BTC, "BTC", "USD", seed=seed), MarketModel(ETH, "ETH", "USD", seed=seed + 100,
                                                                    mid=Decimal("2000.00"))]


async def steps(sim: CoinbaseSimulator, n: int, only: list[str] | None = None) -> None:
    for _ in range(n):
        await sim.step(only=only)
        await asyncio.sleep(0.01)


def subscribed(sim: CoinbaseSimulator, channels: tuple[str, ...] = ("level2", "market_trades", "ticker")) -> bool:
    return all(sim.subscribers(c, p) for c in channels for p in (BTC, ETH))


def truth(model: MarketModel):  # noqa: ANN201
    return lambda: (dict(model.bids), dict(model.asks))


async def test_coinbase_gap_quiet_product_and_disconnect_end_equal_to_the_truth(cluster, registry, registry_url,
                                                                               unique):
    btc, eth = models(31)
    sim = CoinbaseSimulator([btc, eth], idle_close_s=1.5, heartbeat_interval=0.3)
    await sim.start()
    settings = coinbase_settings(cluster, registry_url, sim, f"coinbase-{unique}")
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: subscribed(sim) and sim.heartbeat_subscribers() == 1, 20,
                           "ccxt subscribed to every channel, and the producer to heartbeats")
            await steps(sim, 20)

            sim.gap_next(BTC)  # one l2_data update lost: the connection's sequence_num skips one
            await steps(sim, 3)
            await wait_for(lambda: sim.subscribes[("level2", BTC)] >= 2 and subscribed(sim), 10,
                           "resubscribed after the sequence_num gap")
            await steps(sim, 10)

            loop = asyncio.get_running_loop()
            quiet_until = loop.time() + 2 * sim.idle_close_s  # ETH says nothing for longer than the idle close
            while loop.time() < quiet_until:
                await steps(sim, 1, only=[BTC])
                await asyncio.sleep(0.04)
            await steps(sim, 10)
            assert sim.idle_closed == [], "heartbeats keep a quiet product's subscriptions open"

            await sim.disconnect_all()
            await steps(sim, 4)  # made while the producer is away: only the trades snapshot brings them back
            await wait_for(lambda: subscribed(sim) and sim.heartbeat_subscribers() == 1, 20,
                           "resubscribed after the disconnect")
            await steps(sim, 10)

            # a longer outage: more BTC trades than the market_trades snapshot holds; REST has no history by
            # id, so what the snapshot misses must be marked as possibly missing, right where it is
            await sim.disconnect_all()
            before_outage = len(btc.trades)
            for _ in range(150):  # no await yields here: all of it happens before ccxt can reconnect
                await sim.step(only=[BTC])
            lost = btc.trades[before_outage:-sim.trade_snapshot]
            first_in_snapshot = btc.trades[-sim.trade_snapshot]
            assert len(lost) > 10
            await wait_for(lambda: subscribed(sim) and sim.heartbeat_subscribers() == 1, 20,
                           "resubscribed after the second disconnect")
            await steps(sim, 10)

            for model in (btc, eth):
                book, events = await run.book_until(model.symbol, truth(model))
                assert book.problems == [] and book.duplicates == 0, model.symbol
                if model is btc:
                    assert book.resets.count("gap") == 1 and "reconnect" in book.resets, book.resets
                assert sum(e["kind"] == "DELTA" for e in events) > 20

                loop_deadline = loop.time() + 15
                expected = [t for t in model.trades if model is eth or t not in lost]
                while True:  # every trade exactly once, in order, with the venue's digits
                    events = await run.events(TRADES, model.symbol)
                    trades = [e for e in events if e["gap"] is None]
                    if len(trades) >= len(expected) or loop.time() > loop_deadline:
                        break
                    await asyncio.sleep(0.3)
                assert [t["trade_id"] for t in trades] == [str(t.trade_id) for t in expected]
                assert [(t["price"], t["size"], t["side"]) for t in trades] == \
                    [(t.price, t.size, t.taker_side.upper()) for t in expected]
                markers = [(i, e["gap"]) for i, e in enumerate(events) if e["gap"] is not None]
                if model is eth:
                    assert markers == []
                else:  # one marker, in place: after the last trade before the outage, before the snapshot's first
                    assert len(markers) == 1, markers
                    at, gap = markers[0]
                    assert (gap["reason"], gap["after_id"], gap["before_id"]) == \
                        ("snapshot-short", str(btc.trades[before_outage - 1].trade_id),
                         str(first_in_snapshot.trade_id))
                    assert events[at - 1]["trade_id"] == gap["after_id"]
                    assert events[at + 1]["trade_id"] == gap["before_id"]

                tickers = await run.events(TICKER, model.symbol)
                want = sim.last_ticker[model.symbol]
                last = tickers[-1]
                assert (last["best_bid"], last["best_bid_size"], last["best_ask"], last["best_ask_size"],
                        last["last_price"], last["volume_24h"]) == \
                    (want["best_bid"], want["best_bid_quantity"], want["best_ask"], want["best_ask_quantity"],
                     want["price"], want["volume_24_h"])
            assert run.feed.resets.get("gap") == 2  # the sequence is the socket's: both markets resynchronized
            assert sim.duplicate_subscribes == 0  # each resubscribe was a new subscription (unsubscribed first)
            ready, why = run.feed.readiness()
            assert ready, why
    finally:
        await sim.stop()


async def test_coinbase_without_the_sequence_check_the_gap_leaves_a_wrong_level(cluster, registry, registry_url,
                                                                                 unique):
    """The control experiment: ccxt alone applies the updates after the lost one and never resynchronizes."""
    btc, eth = models(32)
    sim = CoinbaseSimulator([btc, eth])
    await sim.start()
    settings = coinbase_settings(cluster, registry_url, sim, f"coinbaseraw-{unique}", markets=["BTC/USD"],
                                 channels=["book"], check_sequence=False)
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.subscribers("level2", BTC), 20, "subscribed")
            await steps(sim, 10, only=[BTC])
            sim.gap_next(BTC)
            await steps(sim, 2, only=[BTC])  # later steps could heal the level by chance: stop here
            await asyncio.sleep(0.5)
            book = replay_book(await run.events(BOOK, BTC))
            assert book.in_sync and book.resets == []
            assert (book.bids, book.asks) != truth(btc)()  # the lost update never reached ccxt's book
            assert sim.subscribes[("level2", BTC)] == 1 and len(sim.withheld_sequence) == 1
    finally:
        await sim.stop()


async def test_coinbase_without_heartbeats_a_quiet_product_goes_stale(cluster, registry, registry_url, unique):
    """The control for heartbeats: the quiet product's subscription closes silently; its book stops following."""
    btc, eth = models(33)
    sim = CoinbaseSimulator([btc, eth], idle_close_s=1.0)
    await sim.start()
    settings = coinbase_settings(cluster, registry_url, sim, f"coinbasenohb-{unique}", channels=["book"],
                                 heartbeats=False)
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: subscribed(sim, ("level2",)), 20, "subscribed")
            assert sim.heartbeat_subscribers() == 0
            await steps(sim, 5)
            await wait_for(lambda: ("level2", ETH) in sim.idle_closed, 10, "the quiet product's level2 closed")
            await steps(sim, 5, only=[ETH])
            await asyncio.sleep(0.5)
            book = replay_book(await run.events(BOOK, ETH))
            assert book.in_sync and book.resets == []
            assert (book.bids, book.asks) != truth(eth)()  # nothing told the producer; its book is stale
    finally:
        await sim.stop()


async def test_coinbase_restart_resumes_from_the_newest_trade_in_kafka(cluster, registry, registry_url, unique):
    """A restart is a reconnect: the first snapshot's trades already in Kafka are not published again, and
    more trades made while no producer ran than the snapshot holds get one marker, in place."""
    btc, eth = models(34)
    sim = CoinbaseSimulator([btc, eth])
    await sim.start()
    venue = f"coinbaserestart-{unique}"
    settings = coinbase_settings(cluster, registry_url, sim, venue, markets=["BTC/USD"], channels=["trades"])
    try:
        async with FeedRun(settings, registry) as first:
            await wait_for(lambda: sim.subscribers("market_trades", BTC), 20, "subscribed")
            await steps(sim, 20, only=[BTC])
            published = len(btc.trades)
            deadline = asyncio.get_running_loop().time() + 15
            while len(await first.events(TRADES, BTC)) < published:  # all in Kafka before the producer stops
                assert asyncio.get_running_loop().time() < deadline, "trades of the first run not in Kafka"
                await asyncio.sleep(0.2)
            start = first.start
        await steps(sim, 150, only=[BTC])  # while no producer runs: more trades than the snapshot holds
        lost = btc.trades[published:-sim.trade_snapshot]
        assert len(lost) > 10
        async with FeedRun(settings, registry) as second:
            await wait_for(lambda: sim.subscribers("market_trades", BTC), 20, "subscribed again")
            await steps(sim, 10, only=[BTC])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            expected = [t for t in btc.trades if t not in lost]
            while True:
                await second.flush()
                events = await read_events(cluster.bootstrap, registry, TRADES, start[TRADES.name],
                                           keys={market_key(venue, BTC)})
                trades = [e for e in events if e["gap"] is None]
                if len(trades) >= len(expected) or loop.time() > deadline:
                    break
                await asyncio.sleep(0.3)
        assert [t["trade_id"] for t in trades] == [str(t.trade_id) for t in expected]  # each once, in order
        markers = [(i, e["gap"]) for i, e in enumerate(events) if e["gap"] is not None]
        assert len(markers) == 1, markers
        at, gap = markers[0]
        assert (gap["reason"], gap["after_id"], gap["before_id"]) == \
            ("snapshot-short", str(btc.trades[published - 1].trade_id), str(lost[-1].trade_id + 1))
        assert events[at - 1]["trade_id"] == gap["after_id"] and events[at + 1]["trade_id"] == gap["before_id"]
    finally:
        await sim.stop()

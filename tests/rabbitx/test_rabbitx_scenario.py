"""RabbitX through the wire into the real Kafka: after gaps, duplicates, reordering, malformed frames,
an abrupt disconnect and a silent server, the book rebuilt from Kafka equals the simulator's true book,
every trade landed exactly once, tickers and account state match the merged truth, and the metrics
counted every fault."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from producers.rabbitx import RabbitXFeed
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, TICKER, TRADES, account_key, market_key
from simulators.rabbitx import RabbitXSimulator
from tests.feedcore.book_replay import replay_book
from tests.feedcore.kafka_reader import end_offsets, read_events
from tests.rabbitx.conftest import FeedFactory, books_caught_up, wait_until

TOPICS = [BOOK, TRADES, TICKER, ACCOUNT]


async def settle(feed: RabbitXFeed, sim: RabbitXSimulator, what: str) -> None:
    await sim.drain()
    await wait_until(lambda: feed.ready and books_caught_up(feed, sim), 15, f"books in sync after {what}")


def last_by(events: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        out[e[key]] = e
    return out


@pytest.mark.sim(numeric_ratio=0.15, ping_interval=0.2)
async def test_faults_end_with_kafka_equal_to_the_truth(cluster: Any, registry: ContractRegistry,
                                                         sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    start = await end_offsets(cluster.bootstrap, TOPICS)
    feed = make_feed()
    task = asyncio.create_task(feed.run())
    m1, m2 = sorted(sim.markets)
    try:
        await sim.wait_subscribed(*feed.channels)
        sim.generate(300)
        await settle(feed, sim, "normal flow")
        assert feed.health is not None
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{feed.health.port}/ready") as r:
                assert r.status == 200

        sim.gap(m1)  # a sequence number never delivered
        sim.generate(150)
        await settle(feed, sim, "gap")
        sim.duplicate_next(m1)
        sim.generate(100)
        await settle(feed, sim, "duplicate")
        sim.reorder_next(m2)  # N+2 before N+1: a gap, then a stale one
        sim.generate(100)
        await settle(feed, sim, "reorder")
        sim.malformed_next(2)  # truncated JSON lines inside batched frames
        sim.ping_now()  # a ping first in a frame full of data: answered, and the data after it kept
        sim.generate(100)
        await settle(feed, sim, "malformed")

        assert sim.disconnect_all() == 1  # abrupt: no close frame
        sim.generate(40)  # the market moves on while we are away
        await sim.wait_subscribed(*feed.channels)
        sim.generate(100)
        await settle(feed, sim, "disconnect")

        sim.silence(2.5)  # no data, no pings: the watchdog (1.5 s) must reconnect
        await wait_until(lambda: feed.metrics.reconnect_reasons["watchdog"] == 1, 10, "watchdog reconnect")
        await sim.wait_subscribed(*feed.channels)
        sim.generate(100)
        sim.gap(m2, 3)
        sim.generate(200)
        await settle(feed, sim, "second gap")
        await wait_until(lambda: sim.stats["pongs_received"] >= 3, 5, "pings answered")
        assert sim.stats["pongs_missed"] == 0 and sim.stats["close_3012"] == 0
        assert sim.stats["pings_sharing_a_frame"] > 0  # pings batched with data were answered, data kept
        assert all(type(i) is int for i in sim.command_ids) and len(set(sim.command_ids)) == len(sim.command_ids)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # run() flushes the publisher on the way out

    m = feed.metrics
    assert m.count("gaps") == 3, m.snapshot()  # gap, reorder, gap x3
    assert m.count("resyncs") == 3
    assert m.count("stale") >= 2  # the duplicate and the late reordered delta
    assert m.count("parse_errors") == 2, m.snapshot()
    assert m.count("reconnects") == 2 and m.reconnect_reasons["watchdog"] == 1
    assert m.count("heartbeats") > 0
    assert m.count("crossed") == 0
    assert m.count("reparsed") > 0  # book levels sent as JSON numbers were re-read exactly
    assert sim.stats["gaps_injected"] == 4 and sim.stats["malformed_sent"] == 2

    for market_id, truth in sim.markets.items():
        key = market_key("rabbitx", feed.market(market_id))
        books = await read_events(cluster.bootstrap, registry, BOOK, start[BOOK.name], keys={key})
        replay = replay_book(books)
        assert replay.problems == []
        assert replay.in_sync and replay.sequence == truth.sequence
        assert replay.bids == truth.bids and replay.asks == truth.asks
        assert Counter(replay.resets) >= Counter({"reconnect": 2})

        trades = await read_events(cluster.bootstrap, registry, TRADES, start[TRADES.name], keys={key})
        ids = [t["trade_id"] for t in trades]
        assert len(ids) == len(set(ids)), "a trade was published twice"
        assert set(ids) == {t["id"] for t in truth.trades}, "a trade was lost"
        by_id = {t["id"]: t for t in truth.trades}
        for t in trades:
            src = by_id[t["trade_id"]]
            assert (t["price"], t["size"], t["exchange_ts"]) == (src["price"], src["size"], src["timestamp"])
            assert t["side"] == {"long": "BUY", "short": "SELL"}[src["taker_side"]]

        tickers = await read_events(cluster.bootstrap, registry, TICKER, start[TICKER.name], keys={key})
        last = tickers[-1]
        info = truth.info
        assert (last["best_bid"], last["best_ask"], last["last_price"], last["mark_price"], last["index_price"],
                last["funding_rate"]) == (info["best_bid"], info["best_ask"], info["last_trade_price"],
                                          info["fair_price"], info["index_price"], info["instant_funding_rate"])

    acct = sim.account
    events = await read_events(cluster.bootstrap, registry, ACCOUNT, start[ACCOUNT.name],
                               keys={account_key("rabbitx", acct.profile_id)})
    fills = [e["fill"] for e in events if e["kind"] == "FILL"]
    assert sorted(f["fill_id"] for f in fills) == sorted(f["id"] for f in acct.fills)  # each once
    orders = last_by([e["order"] for e in events if e["kind"] == "ORDER"], "order_id")
    assert set(orders) == set(acct.orders)
    for oid, o in acct.orders.items():
        got = orders[oid]
        assert (got["venue_status"], got["filled_size"], got["remaining_size"], got["size"], got["price"]) == (
            o["status"], o["total_filled_size"], o["remaining_size"], o["initial_size"], o["price"]), oid
    positions = {e["market"]: e["position"] for e in events if e["kind"] == "POSITION"}
    for market_id, p in acct.positions.items():
        got = positions[feed.market(market_id)]
        assert Decimal(got["size"]) == Decimal(p["size"]) and got["entry_price"] == p["avg_entry_price"]
        assert got["side"] == ("FLAT" if Decimal(p["size"]) == 0 else p["side"].upper())
    balances = [e["balance"] for e in events if e["kind"] == "BALANCE"]
    assert balances[-1]["total"] == str(acct.balance)

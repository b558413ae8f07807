"""Book resync by REST snapshot (``book_resync=rest``): a gap is repaired from ``/markets/orderbook``."""

from __future__ import annotations

import asyncio
from typing import Any

from schemas.registry import ContractRegistry
from schemas.topics import BOOK, market_key
from simulators.rabbitx import RabbitXSimulator
from tests.feedcore.book_replay import replay_book
from tests.feedcore.kafka_reader import end_offsets, read_events
from tests.rabbitx.conftest import FeedFactory, books_caught_up, wait_until


async def test_gap_repaired_from_rest_snapshot(cluster: Any, registry: ContractRegistry, sim: RabbitXSimulator,
                                               make_feed: FeedFactory) -> None:
    start = await end_offsets(cluster.bootstrap, [BOOK])
    feed = make_feed(book_resync="rest", account_id=None)
    task = asyncio.create_task(feed.run())
    m1 = sorted(sim.markets)[0]
    try:
        await sim.wait_subscribed(*feed.channels)
        sim.generate(100)
        sim.gap(m1, 2)
        sim.generate(200)
        await sim.drain()
        await wait_until(lambda: books_caught_up(feed, sim), 10, "books caught up")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sim.stats["rest_snapshots"] == 1 and sim.stats["subscribes"] == len(feed.channels)  # no resubscribe
    assert feed.metrics.count("gaps") == 1 and feed.metrics.count("resyncs") == 1
    books = await read_events(cluster.bootstrap, registry, BOOK, start[BOOK.name],
                              keys={market_key("rabbitx", feed.market(m1))})
    replay = replay_book(books)
    assert replay.problems == [] and replay.resets == ["gap"]
    assert replay.bids == sim.markets[m1].bids and replay.asks == sim.markets[m1].asks


async def test_server_unsubscribe_is_followed_by_a_resubscribe(cluster: Any, registry: ContractRegistry,
                                                              sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    start = await end_offsets(cluster.bootstrap, [BOOK])
    feed = make_feed(account_id=None)
    task = asyncio.create_task(feed.run())
    m1 = sorted(sim.markets)[0]
    try:
        await sim.wait_subscribed(*feed.channels)
        sim.generate(100)
        await sim.drain()
        assert sim.server_unsubscribe(f"orderbook:{m1}", code=2500) == 1
        sim.generate(50)  # not delivered: nobody is subscribed for a moment
        await sim.wait_subscribed(f"orderbook:{m1}")
        sim.generate(100)
        await sim.drain()
        await wait_until(lambda: books_caught_up(feed, sim), 10, "books caught up")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert feed.connections == 1 and feed.metrics.count("reconnects") == 0
    books = await read_events(cluster.bootstrap, registry, BOOK, start[BOOK.name],
                              keys={market_key("rabbitx", feed.market(m1))})
    replay = replay_book(books)
    assert replay.problems == [] and replay.resets == ["unsubscribed"]
    assert replay.bids == sim.markets[m1].bids and replay.asks == sim.markets[m1].asks

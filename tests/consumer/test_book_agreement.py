"""The consumer library's book follower and the processors' books agree on the same topic.

The library (marketpipe.consumer) is an independent implementation of the book contract; the processors
are another. Both read the same `marketpipe.book.v1` written by the real RabbitX producer from its simulator
with sequence gaps and a reconnect (so the topic carries RESETs and fresh SNAPSHOTs), and must end with the
same book for every market: levels (text), sequence and in_sync. A second test writes a topic by hand with
what a producer never writes but a consumer must survive (a chain break without RESET, stale and duplicate
updates, a stale snapshot, deltas while waiting) and compares again.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from marketpipe.consumer import BookFollower, ConsumerSettings, EventStream
from marketpipe.infra.ports import free_port
from marketpipe.infra.stack import Cluster
from producers.rabbitx import RabbitXFeed, RabbitXSettings
from schemas.registry import ContractRegistry
from schemas.topics import BOOK, market_key
from simulators.rabbitx import RabbitXSimulator
from tests.processors.harness import EventWriter, Worker, delete_topics, poll_json, worker_env
from tests.rabbitx.conftest import books_caught_up, sim_config
from tests.waiting import wait_until


async def library_books(cluster: Cluster, registry: ContractRegistry, markets: set[str], venue: str,
                        prefix: str = "") -> tuple[BookFollower, int]:
    """Books of the given markets from the whole topic, and how many duplicates the stream dropped."""
    settings = ConsumerSettings(kafka_bootstrap=cluster.bootstrap, registry_url=cluster.registry_url,
                                consumer_topic_prefix=prefix)
    follower = BookFollower()
    async with EventStream(settings, BOOK.name, venues={venue}, markets=markets, registry=registry) as stream:
        for record in await stream.read_to_end(timeout_s=120):
            follower.apply(record.value)
        return follower, stream.dedup.duplicates


async def assert_processor_agrees(worker_url: str, follower: BookFollower, venue: str, market: str) -> None:
    book = follower.book(venue, market)
    assert book is not None, f"the library saw no book events of {venue}:{market}"
    url = f"{worker_url}/books/{venue}/{market}"
    # the processor may lag: wait until it reached the library's state (bounded), then compare everything
    body = await poll_json(url, lambda st, b: st == 200 and b["sequence"] == book.sequence
                           and b["in_sync"] == book.in_sync
                           and len(b["bids"]) == len(book.bids) and len(b["asks"]) == len(book.asks), timeout=90)
    assert {"in_sync": body["in_sync"], "sequence": body["sequence"], "bids": body["bids"], "asks": body["asks"]} \
        == {"in_sync": book.in_sync, "sequence": book.sequence, **book.depth(None)}, market


async def test_library_books_equal_processor_books_after_simulator_run_with_gaps_and_resets(
        cluster: Cluster, registry: ContractRegistry, registry_url: str, unique: str,
        tmp_path: Path) -> None:
    worker = Worker(worker_env(cluster.bootstrap, registry_url, f"test-agree-{unique}", tmp_path / "data",
                               offset_reset="latest"), tmp_path / "worker.log").start()
    sim = RabbitXSimulator(sim_config(unique))
    await sim.start()
    try:
        await worker.wait_ready(timeout=120)
        feed = RabbitXFeed(RabbitXSettings(
            ws_url=sim.ws_url, rest_url=sim.rest_url, markets=sorted(sim.markets), account_id=None,
            api_token=sim.issue_token(), refresh_token=sim.config.refresh_token, kafka_bootstrap=cluster.bootstrap,
            registry_url=registry_url, health_port=free_port(), health_host="127.0.0.1",
            reconnect_initial_delay=0.05, reconnect_max_delay=0.5, watchdog_seconds=1.5, ws_ping_interval=None,
            create_topics=False, register_schemas=False, subscribe_timeout=5), registry=registry)
        m1, m2 = sorted(sim.markets)
        task = asyncio.create_task(feed.run())
        try:
            await sim.wait_subscribed(*feed.channels)
            sim.generate(150)
            sim.gap(m1, 2)  # the producer sees a sequence hole: RESET(gap) + resubscribe snapshot
            sim.gap(m2, 1)
            sim.generate(150)
            await sim.drain()
            await wait_until(lambda: books_caught_up(feed, sim), 60, "books caught up after the gaps")
            assert sim.disconnect_all() >= 1  # reconnect: RESET(reconnect) + SNAPSHOT for every market
            await wait_until(lambda: feed.connections >= 2 and books_caught_up(feed, sim), 60, "reconnected")
            sim.generate(150)
            sim.gap(m1, 3)
            sim.generate(150)
            await sim.drain()
            await wait_until(lambda: books_caught_up(feed, sim), 60, "books caught up after the reconnect")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        markets = {feed.market(m1), feed.market(m2)}
        follower, _ = await library_books(cluster, registry, markets, "rabbitx")
        for sym in (m1, m2):
            book = follower.book("rabbitx", feed.market(sym))
            assert book is not None and book.in_sync
            reasons = " ".join(book.resets)
            assert "gap" in reasons and "reconnect" in reasons, (sym, book.resets)
            # the library's book is the venue's true book (the simulator's)
            assert {p: Decimal(s) for p, (_, s) in book.bids.items()} == sim.markets[sym].bids
            assert {p: Decimal(s) for p, (_, s) in book.asks.items()} == sim.markets[sym].asks
            await assert_processor_agrees(worker.url, follower, "rabbitx", feed.market(sym))
    finally:
        await sim.stop()
        worker.stop()
        await asyncio.to_thread(delete_topics, cluster.bootstrap, (f"test-agree-{unique}",))  # its changelogs


async def test_library_and_processor_agree_on_topic_level_gaps_stale_and_duplicate_updates(
        cluster: Cluster, registry: ContractRegistry, ready_worker: Worker, writer: EventWriter,
        topic_prefix: str, unique: str) -> None:
    venue = f"agree{unique}"
    b = writer.book
    # market A: chain break without RESET (prev 103 != 102) -> both discard and wait; deltas while waiting dropped
    await b(venue, "A-USD", "SNAPSHOT", seq=100, bids=[("100.0", "1"), ("99.5", "2")], asks=[("100.5", "1")])
    await b(venue, "A-USD", "DELTA", seq=101, prev=100, bids=[("100.0", "1.5")], asks=[("100.5", "0"), ("101", "3")])
    await b(venue, "A-USD", "DELTA", seq=101, prev=100, bids=[("100.0", "9")])  # stale re-send
    await b(venue, "A-USD", "DELTA", seq=102, prev=101, asks=[("100.75", "0.5")])
    await b(venue, "A-USD", "DELTA", seq=104, prev=103, bids=[("99.9", "7")])  # gap
    await b(venue, "A-USD", "DELTA", seq=105, prev=104, bids=[("99.8", "1")])  # waiting
    # market B: gap then a new snapshot, a stale snapshot, deltas with "100.00" vs "100.0" text, an exact duplicate
    await b(venue, "B-USD", "SNAPSHOT", seq=10, bids=[("50.0", "1")], asks=[("51.0", "1")])
    await b(venue, "B-USD", "RESET", reason="checksum")
    await b(venue, "B-USD", "DELTA", seq=11, prev=10, bids=[("50.5", "1")])  # waiting for a snapshot
    await b(venue, "B-USD", "SNAPSHOT", seq=20, bids=[("50.0", "2"), ("49.0", "1")], asks=[("51.0", "2")])
    await b(venue, "B-USD", "SNAPSHOT", seq=15, bids=[("1", "1")], asks=[("2", "1")])  # stale snapshot
    await b(venue, "B-USD", "DELTA", seq=21, prev=20, bids=[("50.00", "3")])
    dup = {"event_id": f"dup-{unique}", "venue": venue, "market": "B-USD", "venue_symbol": "BUSD",
           "exchange_ts": 1, "receive_ts": 1, "kind": "DELTA", "sequence": 22, "prev_sequence": 21,
           "checksum": None, "bids": [{"price": "49.0", "size": "0"}], "asks": [], "reason": None}
    await writer.send(BOOK, market_key(venue, "B-USD"), dup)
    await writer.send(BOOK, market_key(venue, "B-USD"), dup)
    # market C: a venue without sequences (deltas chain by order alone)
    await b(venue, "C-USD", "SNAPSHOT", bids=[("10", "1")], asks=[("11", "1")])
    await b(venue, "C-USD", "DELTA", bids=[("10", "0"), ("9.5", "4")], asks=[("10.5", "1")])
    await writer.flush()

    follower, duplicates = await library_books(cluster, registry, {"A-USD", "B-USD", "C-USD"}, venue,
                                               prefix=topic_prefix)
    a, b_, c = (follower.book(venue, m) for m in ("A-USD", "B-USD", "C-USD"))
    assert a is not None and not a.in_sync and a.sequence is None and not a.bids and not a.asks
    assert b_ is not None and b_.in_sync and b_.sequence == 22
    assert b_.depth() == {"bids": [{"price": "50.00", "size": "3"}], "asks": [{"price": "51.0", "size": "2"}]}
    assert c is not None and c.in_sync and c.best_bid() == ("9.5", "4") and c.best_ask() == ("10.5", "1")
    assert duplicates == 1 and follower.outcomes["stale"] == 2 and follower.outcomes["waiting"] == 2
    for market in ("A-USD", "B-USD", "C-USD"):
        await assert_processor_agrees(ready_worker.url, follower, venue, market)


"""A three-node KRaft cluster from `start_local(brokers=3)`: replicated topics, a persistent registry, and
the partition leader killed with -9 while a venue producer publishes and a processor consumes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from marketpipe.infra.ports import free_port
from marketpipe.infra.stack import Cluster
from marketpipe.topics_admin import ensure_topics
from producers.rabbitx import RabbitXFeed, RabbitXSettings
from schemas.registry import ContractRegistry
from schemas.topics import BOOK, TRADES, TopicSpec, market_key
from simulators.rabbitx import RabbitXSimulator
from tests.feedcore.book_replay import replay_book
from tests.feedcore.kafka_reader import end_offsets, read_events
from tests.processors.harness import Worker, get_json, worker_env
from tests.rabbitx.conftest import books_caught_up, sim_config
from tests.rabbitx.test_rabbitx_trade_recovery import caught_up as trades_caught_up
from tests.waiting import wait_until

pytestmark = [pytest.mark.multibroker, pytest.mark.timeout(900)]


def _admin(c: Cluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": c.bootstrap})


def _replicas(c: Cluster, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, in-sync replicas)"""
    md = _admin(c).list_topics(topic, timeout=15).topics[topic]
    return {p: (m.leader, list(m.replicas), list(m.isrs)) for p, m in md.partitions.items()}


def _topic_config(c: Cluster, topic: str, name: str) -> str:
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = _admin(c)  # held until the answer is in (a collected client cancels its futures)
    configs = admin.describe_configs([res])[res].result(timeout=15)
    return str(configs[name].value)


def test_three_nodes_with_replicated_internal_and_marketpipe_topics(three_brokers: Cluster, unique: str) -> None:
    c = three_brokers
    assert c.kafka_cluster is not None
    md = _admin(c).list_topics(timeout=15)
    assert sorted(md.brokers) == [1, 2, 3]
    assert all(c.kafka_cluster.alive())

    spec = replace(TRADES, name=f"mb-{unique}.trades")
    assert ensure_topics(c.bootstrap, (spec,)) == [spec.name]  # the defaults: RF 3, min.insync.replicas 2
    # the creation answer comes from the controller; the broker asked for metadata may learn of the topic a
    # moment later: wait (bounded) until it reports every partition with its replicas
    deadline = time.monotonic() + 60
    parts = _replicas(c, spec.name)
    while (len(parts) < spec.partitions or any(len(isr) < 3 for _, _, isr in parts.values())) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
        parts = _replicas(c, spec.name)
    assert len(parts) == spec.partitions
    assert all(sorted(replicas) == [1, 2, 3] and sorted(isr) == [1, 2, 3] for _, replicas, isr in parts.values())
    assert _topic_config(c, spec.name, "min.insync.replicas") == "2"

    # a group commit creates __consumer_offsets: replicated on all three as well
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": f"mb-{unique}", "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(spec.name, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    offsets = _replicas(c, "__consumer_offsets")
    assert offsets and all(sorted(replicas) == [1, 2, 3] for _, replicas, _ in offsets.values())
    assert _topic_config(c, "__consumer_offsets", "min.insync.replicas") == "2"


def _schema_text(url: str, schema_id: int) -> str:
    with urllib.request.urlopen(f"{url}/schemas/ids/{schema_id}", timeout=10) as resp:
        return resp.read().decode()


def test_registry_restart_keeps_schema_ids_and_old_records_decode(three_brokers: Cluster) -> None:
    """Killed with -9 right after registering (H2 file, WRITE_DELAY=0: a commit is on disk before the
    answer), restarted: the same ids, and a record framed before decodes through a client with no cache."""
    c = three_brokers
    assert c.registry is not None and c.registry_url is not None
    assert c.registry.storage_options(), "the local registry must use its file-backed storage"
    before = {r.subject: r.schema_id for r in ContractRegistry(c.registry_url).register_all()}
    texts = {sid: _schema_text(c.registry_url, sid) for sid in before.values()}
    writer = ContractRegistry(c.registry_url)
    record = {"event_id": "restart-1", "venue": "rabbitx", "market": "BTC-USD", "venue_symbol": "BTC-USD",
              "exchange_ts": 1, "receive_ts": 2, "trade_id": "7", "price": "65000.5", "size": "0.25",
              "side": "BUY", "liquidation": None, "gap": None}
    framed = writer.framer(TRADES.schema).encode(record)

    pid_before = c.registry.pid
    assert pid_before is not None
    os.kill(pid_before, signal.SIGKILL)  # a crash right after the registrations, not a clean shutdown
    c.registry.stop()  # reaps it
    c.registry.start()  # same port, same database
    assert c.registry.pid != pid_before

    fresh = ContractRegistry(c.registry_url)  # nothing cached: ids come from the restarted registry
    assert fresh.decode(framed) == record  # the id inside a record written before the restart still resolves
    after = {r.subject: r.schema_id for r in fresh.register_all()}
    assert after == before
    assert {sid: _schema_text(c.registry_url, sid) for sid in after.values()} == texts


def _leader_of(c: Cluster, spec: TopicSpec, partition: int) -> int:
    return _replicas(c, spec.name)[partition][0]


async def _wait_isr_full(c: Cluster, specs: list[TopicSpec], timeout: float = 120.0) -> None:
    def full() -> bool:
        return all(sorted(isr) == [1, 2, 3] for s in specs for _, _, isr in _replicas(c, s.name).values())

    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(full):
        assert time.monotonic() < deadline, "in-sync replicas did not recover after the restart"
        await asyncio.sleep(0.5)


def _levels(levels: list[dict[str, str]]) -> dict[Decimal, Decimal]:
    return {Decimal(lv["price"]): Decimal(lv["size"]) for lv in levels}


async def test_leader_killed_during_a_producer_run_loses_and_duplicates_nothing(
        three_brokers: Cluster, unique: str, tmp_path: Path) -> None:
    """RabbitX simulator -> producer -> 3 brokers -> processor worker. The leader of the partition holding
    the book is killed with -9 while events flow and restarted; then the leader of the trades partition.
    Afterwards every book update and trade is in Kafka once, in the simulator's order, no RESET was
    needed, and the processor's books equal the simulator's."""
    c = three_brokers
    kc = c.kafka_cluster
    assert kc is not None and c.registry_url is not None
    ensure_topics(c.bootstrap)  # every contract topic, RF 3 / min.insync.replicas 2
    registry = ContractRegistry(c.registry_url)
    registry.register_all()

    worker = Worker(worker_env(c.bootstrap, c.registry_url, f"mb-proc-{unique}", tmp_path / "data",
                               standby_replicas="0"), tmp_path / "worker.log").start()
    sim = RabbitXSimulator(sim_config(unique, ping_interval=5.0, pong_timeout=60.0))
    await sim.start()
    feed: RabbitXFeed | None = None
    task: asyncio.Task[None] | None = None
    stalls: list[float] = []
    try:
        await worker.wait_ready(timeout=180)
        # the worker's changelogs took the default replication (3 on three brokers) and min.insync.replicas 2
        changelogs = [t for t in _admin(c).list_topics(timeout=15).topics if t.startswith(f"mb-proc-{unique}")]
        assert changelogs
        for name in changelogs:
            assert all(len(replicas) == 3 for _, replicas, _ in _replicas(c, name).values()), name
            assert _topic_config(c, name, "min.insync.replicas") == "2", name
        start = await end_offsets(c.bootstrap, [BOOK, TRADES])
        feed = RabbitXFeed(RabbitXSettings(
            ws_url=sim.ws_url, rest_url=sim.rest_url, markets=sorted(sim.markets),
            account_id=sim.config.profile_id, api_token=sim.issue_token(), refresh_token=sim.config.refresh_token,
            kafka_bootstrap=c.bootstrap, registry_url=c.registry_url, health_port=free_port(),
            health_host="127.0.0.1", ws_ping_interval=None, watchdog_seconds=60, create_topics=False,
            register_schemas=False, subscribe_timeout=10, publisher_request_timeout_ms=5000), registry=registry)
        task = asyncio.create_task(feed.run())
        await sim.wait_subscribed(*feed.channels, timeout=60)
        sim.generate(200)
        await sim.drain(30)
        await wait_until(lambda: feed is not None and feed.ready and books_caught_up(feed, sim), 60, "first sync")
        publisher = feed.publisher
        assert publisher is not None
        # every trade the simulator sent so far is on the tape, and everything buffered is acknowledged
        await wait_until(lambda: feed is not None and trades_caught_up(feed, sim), 60, "first trades")
        await publisher.flush()

        keys = {market_key("rabbitx", feed.market(m)): m for m in sim.markets}
        first_key = next(iter(keys))
        first_market = keys[first_key]
        early_book = await read_events(c.bootstrap, registry, BOOK, start[BOOK.name], keys={first_key})
        early_trades = await read_events(c.bootstrap, registry, TRADES, start[TRADES.name], keys=set(keys))
        assert early_book and early_trades

        generating = True

        async def generate() -> None:  # a steady flow (about 100 venue messages/s) through every kill
            while generating:
                sim.generate(5)
                await asyncio.sleep(0.05)

        gen = asyncio.create_task(generate())
        try:
            for spec, partition in ((BOOK, early_book[0]["_partition"]), (TRADES, early_trades[0]["_partition"])):
                await asyncio.sleep(2)
                leader = await asyncio.to_thread(_leader_of, c, spec, partition)
                acked = publisher.acked
                killed_at = time.monotonic()
                kc.kill(leader)  # kill -9
                last_change, longest = killed_at, 0.0
                # the acknowledgements stop and resume once the partitions have a new leader: watch for 20 s
                # at least, and until they flow again (a busy machine elects slowly: up to 3 minutes)
                while True:
                    await asyncio.sleep(0.05)
                    now = time.monotonic()
                    if publisher.acked != acked:
                        longest = max(longest, now - last_change)
                        acked, last_change = publisher.acked, now
                    if now - killed_at >= 20 and now - last_change < 1:
                        break
                    assert now - killed_at < 180, "the producer did not resume while a broker was down"
                stalls.append(longest)
                # the processor consumes through the leader change, before the dead node is back
                target = sim.markets[first_market].sequence
                deadline = time.monotonic() + 120
                while True:
                    worker.alive()
                    status, body = await get_json(f"{worker.url}/books/rabbitx/{feed.market(first_market)}")
                    if status == 200 and body["sequence"] is not None and body["sequence"] >= target:
                        break
                    assert time.monotonic() < deadline, "the processor did not catch up while a broker was down"
                    await asyncio.sleep(0.3)
                assert not kc.alive()[leader - 1]
                worker.alive()
                await asyncio.to_thread(kc.restart, leader)
                await _wait_isr_full(c, [BOOK, TRADES])
        finally:
            generating = False
            await gen
        sim.generate(100)
        await sim.drain(30)
        await wait_until(lambda: feed is not None and books_caught_up(feed, sim), 60, "books in sync at the end")
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # run() flushes the publisher on the way out
        await sim.stop()
    try:
        print(f"\n[failover] longest pause in acknowledgements after each kill -9: "
              f"{', '.join(f'{s:.1f}s' for s in stalls)}")
        assert feed is not None
        m = feed.metrics
        assert m.count("gaps") == 0 and m.count("resyncs") == 0 and m.count("reconnects") == 0, m.snapshot()
        assert feed.publisher is None or feed.publisher.renewals == 0

        for key, market_id in keys.items():
            truth = sim.markets[market_id]
            books = await read_events(c.bootstrap, registry, BOOK, start[BOOK.name], keys={key}, timeout=60)
            ids = [e["event_id"] for e in books]
            assert len(ids) == len(set(ids)), f"{market_id}: a book event is in Kafka twice"
            replay = replay_book(books)
            assert replay.problems == [], replay.problems[:5]  # prev_sequence chains: nothing lost or reordered
            assert replay.in_sync and replay.sequence == truth.sequence
            assert replay.bids == truth.bids and replay.asks == truth.asks
            resets_after_start = [e for e in books[1:] if e["kind"] == "RESET"]
            assert resets_after_start == [], f"{market_id}: a RESET after the start: {resets_after_start[:1]}"

            trades = await read_events(c.bootstrap, registry, TRADES, start[TRADES.name], keys={key}, timeout=60)
            got = [t["trade_id"] for t in trades if t.get("gap") is None]
            assert not [t for t in trades if t.get("gap") is not None], f"{market_id}: gap marker written"
            assert len(got) == len(set(got)), f"{market_id}: a trade is in Kafka twice"
            assert got == [t["id"] for t in truth.trades], f"{market_id}: trades lost or out of the venue's order"

            async def book_matches(mid: str = market_id) -> bool:
                status, body = await get_json(f"{worker.url}/books/rabbitx/{feed.market(mid)}")  # type: ignore[union-attr]
                return (status == 200 and body["in_sync"] and body["sequence"] == sim.markets[mid].sequence
                        and _levels(body["bids"]) == sim.markets[mid].bids
                        and _levels(body["asks"]) == sim.markets[mid].asks)

            deadline = time.monotonic() + 60
            while not await book_matches():
                worker.alive()
                assert time.monotonic() < deadline, f"{market_id}: the processor's book differs from the venue's"
                await asyncio.sleep(0.5)
        worker.alive()
    finally:
        worker.stop()

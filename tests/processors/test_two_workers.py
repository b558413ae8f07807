"""Two workers in one group split the partitions; every query answers on both (routed to the owner)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka.partitioner import murmur2

from marketpipe.infra.stack import Cluster
from schemas.topics import BOOK
from tests.processors.harness import EventWriter, Worker, get_json, poll_json, worker_env


def partition(key: str) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % BOOK.partitions


def book_partitions(ready: dict) -> set[int]:
    return {int(a.rsplit(":", 1)[1]) for a in ready["actives"] if a.split(":")[0].endswith(BOOK.name)}


async def test_second_worker_takes_partitions_and_routes_queries(
        cluster: Cluster, writer: EventWriter, unique: str, tmp_path: Path, topic_prefix: str,
        session_tag: str) -> None:
    assert cluster.registry_url
    # no standby replicas: a worker that does not own a key has no copy of it, so an answer from it
    # proves the request was routed to the owner
    env = worker_env(cluster.bootstrap, cluster.registry_url, f"test-proc2-{session_tag}", tmp_path / "data",
                     standby_replicas="0", topic_prefix=topic_prefix)
    a = Worker(env, tmp_path / "a.log").start()
    b = Worker(env, tmp_path / "b.log")
    try:
        await a.wait_ready()
        b.start()
        await b.wait_ready()
        # wait until the rebalance settled: the two workers own disjoint halves of the book partitions
        for _ in range(150):
            ra, rb = (await get_json(f"{a.url}/processor/ready"))[1], (await get_json(f"{b.url}/processor/ready"))[1]
            pa, pb = book_partitions(ra), book_partitions(rb)
            if ra["ready"] and rb["ready"] and pa and pb and not pa & pb and pa | pb == set(range(BOOK.partitions)):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"partitions never split: {ra} {rb}")

        # positions of partitions that moved are fixed on the first fetch after the rebalance: wait until
        # both workers consumed new ticks (fetched) since the split
        seen = [(await get_json(f"{w.url}/processor/stats"))[1]["ticks_seen"] for w in (a, b)]
        for w, before in zip((a, b), seen, strict=True):
            await poll_json(f"{w.url}/processor/stats", lambda st, bd, n=before: bd["ticks_seen"] >= n + 6)

        venue = f"tw{unique}"
        markets = [f"M{i}-USD" for i in range(12)]
        owners = {m: ("a" if partition(f"{venue}:{m}") in pa else "b") for m in markets}
        assert set(owners.values()) == {"a", "b"}, owners
        for i, m in enumerate(markets):
            await writer.book(venue, m, "SNAPSHOT", seq=i + 1, bids=[(f"{i + 10}.5", "1")], asks=[(f"{i + 11}", "2")])
            await writer.trade(venue, m, 1_700_000_000_000_000 + i, f"{i + 10}.75", "0.1", "BUY")
            await writer.account(venue, f"acct{i}", "*", "BALANCE", {"asset": "USD", "total": f"{i}.00"})
        await writer.flush()

        for i, m in enumerate(markets):
            answers = []
            for w in (a, b):
                book = await poll_json(f"{w.url}/books/{venue}/{m}", lambda st, bd: st == 200)
                top = (await get_json(f"{w.url}/books/{venue}/{m}/top"))[1]
                candles = await poll_json(f"{w.url}/candles/{venue}/{m}/1s?include_open=true",
                                          lambda st, bd: st == 200)
                bal = await poll_json(f"{w.url}/accounts/{venue}/acct{i}/balances", lambda st, bd: st == 200)
                answers.append((book, top, candles, bal))
            assert answers[0] == answers[1], m
            book, top, candles, bal = answers[0]
            assert book["bids"] == [{"price": f"{i + 10}.5", "size": "1"}] and book["sequence"] == i + 1
            assert top["best_ask"] == f"{i + 11}"
            assert candles["candles"][-1]["close"] == f"{i + 10}.75"
            assert bal["balances"]["USD"]["total"] == f"{i}.00"
            status, _ = await get_json(f"{(b if owners[m] == 'a' else a).url}/books/{venue}/NOPE{i}")
            assert status == 404
    finally:
        a.stop()
        b.stop()

"""Registry faults never lose an event: a stream waits out an unreachable registry and applies everything after
it returns; only an id the registry definitively does not know (404) is counted malformed and skipped.

The worker reaches the real registry through a TCP proxy the test cuts and restores (an in-memory Apicurio
forgets its ids when restarted, which would turn the test's new id into a 404)."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path
from urllib.parse import urlparse

import fastavro
from aiokafka.partitioner import murmur2
from confluent_kafka.schema_registry import Schema

from marketpipe.infra.stack import Cluster
from schemas import contracts
from schemas.registry import ContractRegistry
from schemas.serde import AvroFramer
from schemas.topics import BOOK, market_key
from tests.processors.harness import EventWriter, TcpProxy, Worker, get_json, metric_sum, now_us, poll_json, worker_env

MALFORMED = "marketpipe_processor_malformed_total"


def partition_of(key: bytes) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % BOOK.partitions


RETRIES = "marketpipe_processor_registry_retries_total"


def variant_book_framer(registry: ContractRegistry, unique: str) -> AvroFramer:
    """The book contract plus one optional field, registered under a test subject: a schema id no worker
    has seen."""
    schema = json.loads(contracts.schema_text(BOOK.schema))
    schema["fields"].append({"name": f"note_{unique}", "type": ["null", "string"], "default": None})
    text = json.dumps(schema)
    schema_id = registry.client.register_schema(f"test-{unique}-book-value", Schema(text, "AVRO"))
    return AvroFramer(schema_id, fastavro.parse_schema(json.loads(text)))


def book_event(venue: str, market: str, kind: str, seq: int, bids: list[tuple[str, str]],
               asks: list[tuple[str, str]], note: str) -> dict[str, object]:
    return {"event_id": f"{venue}:{market}:{seq}", "venue": venue, "market": market, "venue_symbol": market,
            "exchange_ts": now_us(), "receive_ts": now_us(), "kind": kind, "sequence": seq,
            "prev_sequence": seq - 1 if kind == "DELTA" else None, "checksum": None,
            "bids": [{"price": p, "size": s} for p, s in bids], "asks": [{"price": p, "size": s} for p, s in asks],
            "reason": None, note: f"n{seq}"}


async def test_registry_outage_delays_but_never_drops_events(
        cluster: Cluster, registry: ContractRegistry, writer: EventWriter, unique: str, tmp_path: Path,
        topic_prefix: str, session_tag: str) -> None:
    assert cluster.registry_url
    reg = urlparse(cluster.registry_url)
    proxy = await TcpProxy(reg.hostname or "127.0.0.1", reg.port or 80).start()
    proxied_url = cluster.registry_url.replace(f"{reg.hostname}:{reg.port}", f"127.0.0.1:{proxy.port}")
    env = worker_env(cluster.bootstrap, proxied_url, f"test-procreg-{session_tag}", tmp_path / "data",
                     topic_prefix=topic_prefix, registry_backoff_max_s="1")
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        await worker.wait_ready(timeout=120)
        framer = variant_book_framer(registry, unique)
        venue, market, note = f"rg{unique}", "ETH-USD", f"note_{unique}"
        malformed_before = await metric_sum(worker.url, MALFORMED, stream="book")

        await proxy.cut()
        # the truth: a snapshot then deltas (absolute sizes, "0" deletes), all written with the unseen id
        bids = {f"{100 + i}": "1" for i in range(5)}
        asks = {f"{110 + i}": "2" for i in range(5)}
        events = [book_event(venue, market, "SNAPSHOT", 1, sorted(bids.items()), sorted(asks.items()), note)]
        for seq in range(2, 31):
            size = "0" if seq % 5 == 0 else f"{seq}.5"
            price, side = (f"{100 + seq % 7}", bids) if seq % 2 else (f"{110 + seq % 7}", asks)
            if size == "0":
                side.pop(price, None)
            else:
                side[price] = size
            change = [(price, size)]
            events.append(book_event(venue, market, "DELTA", seq, change if seq % 2 else [],
                                     [] if seq % 2 else change, note))
        for event in events:
            await writer.send(BOOK, market_key(venue, market), framer.encode(event))
        await writer.flush()

        # the worker meets the outage, retries, and keeps answering queries meanwhile
        await poll_json_metric(worker, RETRIES, at_least=3, stream="book")  # a few backoff rounds
        status, _ = await get_json(f"{worker.url}/books/{venue}/{market}")
        assert status == 404  # not applied yet: its partition waits
        status, ready = await get_json(f"{worker.url}/processor/ready")
        assert status == 200 and ready["ready"] is True
        # another partition, known schema: applied while the registry is still unreachable
        other = next(m for m in (f"O{i}-USD" for i in range(100))
                     if partition_of(market_key(venue, m)) != partition_of(market_key(venue, market)))
        await writer.book(venue, other, "SNAPSHOT", seq=1, bids=[("5", "1")], asks=[("6", "1")])
        await writer.flush()
        await poll_json(f"{worker.url}/books/{venue}/{other}", lambda st, b: st == 200, timeout=60)
        assert (await get_json(f"{worker.url}/books/{venue}/{market}"))[0] == 404

        await proxy.start()
        book = await poll_json(f"{worker.url}/books/{venue}/{market}",
                               lambda st, b: st == 200 and b["sequence"] == 30, timeout=60)
        assert book["in_sync"] is True
        assert book["bids"] == [{"price": p, "size": s} for p, s in sorted(bids.items(), key=lambda x: -float(x[0]))]
        assert book["asks"] == [{"price": p, "size": s} for p, s in sorted(asks.items(), key=lambda x: float(x[0]))]
        assert await metric_sum(worker.url, MALFORMED, stream="book") == malformed_before
        assert await metric_sum(worker.url, RETRIES, stream="book") >= 1
    finally:
        worker.stop()
        await proxy.cut()


async def test_unknown_schema_id_is_malformed_and_skipped(ready_worker: Worker, writer: EventWriter,
                                                          unique: str) -> None:
    venue, market = f"ru{unique}", "SOL-USD"
    before = await metric_sum(ready_worker.url, MALFORMED, stream="book")
    retries_before = await metric_sum(ready_worker.url, RETRIES, stream="book")
    valid = writer.registry.framer("book").encode({
        "event_id": "x", "venue": venue, "market": market, "venue_symbol": "x", "exchange_ts": 1,
        "receive_ts": now_us(), "kind": "SNAPSHOT", "sequence": 3, "bids": [{"price": "1", "size": "1"}],
        "asks": []})
    unknown_id = 2_000_000_000 + int(unique[:6], 16) % 100_000_000
    await writer.send(BOOK, market_key(venue, market), b"\x00" + struct.pack(">I", unknown_id) + valid[5:])
    await writer.send(BOOK, market_key(venue, market), valid)
    await writer.flush()
    body = await poll_json(f"{ready_worker.url}/books/{venue}/{market}", lambda st, b: st == 200)
    assert body["sequence"] == 3
    assert await metric_sum(ready_worker.url, MALFORMED, stream="book") == before + 1
    assert await metric_sum(ready_worker.url, RETRIES, stream="book") == retries_before


async def poll_json_metric(worker: Worker, name: str, at_least: float, timeout: float = 60.0,
                           **labels: str) -> float:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await metric_sum(worker.url, name, **labels)
        if value >= at_least:
            return value
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{name} {labels} below {at_least} after {timeout}s")


async def test_rebalance_while_events_wait_for_the_registry_loses_nothing(
        cluster: Cluster, registry: ContractRegistry, writer: EventWriter, unique: str, tmp_path: Path,
        topic_prefix: str, session_tag: str) -> None:
    """Worker A holds events back (registry cut); worker B joins the group meanwhile: A lets the held events go
    uncommitted at the rebalance, and whoever owns the partition afterwards applies all of them."""
    assert cluster.registry_url
    reg = urlparse(cluster.registry_url)
    proxy = await TcpProxy(reg.hostname or "127.0.0.1", reg.port or 80).start()
    proxied_url = cluster.registry_url.replace(f"{reg.hostname}:{reg.port}", f"127.0.0.1:{proxy.port}")
    app_id = f"test-procreb-{session_tag}-{unique}"
    a = Worker(worker_env(cluster.bootstrap, proxied_url, app_id, tmp_path / "a", topic_prefix=topic_prefix,
                          registry_backoff_max_s="1"), tmp_path / "a.log").start()
    b = Worker(worker_env(cluster.bootstrap, cluster.registry_url, app_id, tmp_path / "b",
                          topic_prefix=topic_prefix), tmp_path / "b.log")
    try:
        await a.wait_ready(timeout=120)
        framer = variant_book_framer(registry, unique)
        venue, market, note = f"rb{unique}", "BTC-USD", f"note_{unique}"
        # a first event with a known schema, applied and committed: the held-back events are read again from
        # there (with offset reset "latest", as in these tests, a partition without a commit would restart at
        # its end: the same for any event in flight at a rebalance, held back or not)
        await writer.book(venue, market, "SNAPSHOT", seq=1, bids=[("101", "1")], asks=[("201", "1")])
        await writer.flush()
        await poll_json(f"{a.url}/books/{venue}/{market}", lambda st, bd: st == 200, timeout=60)
        await wait_committed(cluster.bootstrap, app_id, topic_prefix + BOOK.name,
                             partition_of(market_key(venue, market)))
        await proxy.cut()
        for seq in range(2, 21):
            event = book_event(venue, market, "DELTA", seq, [(f"{100 + seq}", "1")], [(f"{200 + seq}", "1")], note)
            await writer.send(BOOK, market_key(venue, market), framer.encode(event))
        await writer.flush()
        await poll_json_metric(a, RETRIES, at_least=2, stream="book")
        b.start()
        await b.wait_ready(timeout=120)
        await proxy.start()
        for w in (a, b):
            book = await poll_json(f"{w.url}/books/{venue}/{market}",
                                   lambda st, bd: st == 200 and bd["sequence"] == 20, timeout=90)
            assert len(book["bids"]) == 20 and book["bids"][0] == {"price": "120", "size": "1"}
            assert await metric_sum(w.url, MALFORMED, stream="book") == 0
    finally:
        a.stop()
        b.stop()
        await proxy.cut()


async def wait_committed(bootstrap: str, group: str, topic: str, partition: int, timeout: float = 60.0) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, partition)])]
        result = admin.list_consumer_group_offsets(request)[group].result()
        if any(tp.offset > 0 for tp in result.topic_partitions):
            return
        await asyncio.sleep(0.3)
    raise TimeoutError(f"{group} committed nothing on {topic}:{partition}")

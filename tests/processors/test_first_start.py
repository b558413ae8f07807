"""A first start that cannot race: three workers with a fresh app id (and fresh topics) started at the same
moment all come up, stay up, split the partitions and answer queries.

Before topics.py, the changelogs were declared by faust while the workers joined the group, and a worker
crashed 2-8 s after it said ready (PartitionsMismatch, "changelog topic ... has 0 partitions"): two workers
started together crashed 4 times out of 4.

Each repetition uses a fresh app id and fresh private contract topics. Even repetitions let the workers
create everything (create_topics on, all three racing to create the same topics); odd ones turn create_topics
off and create the contract topics from the test a moment after the workers started, as the chart's schemas
Job would (the workers wait for them). MARKETPIPE_TEST_FIRST_START_REPS sets the repetitions (default 2 for
CI; the issue's 10 were run once, see processors/README.md).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest

from marketpipe.infra.stack import Cluster
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, BOOK_TOP, OHLCV, TRADES
from tests.processors.harness import (
    EventWriter,
    Worker,
    create_prefixed_topics,
    delete_topics,
    get_json,
    poll_json,
    worker_env,
)

REPS = int(os.environ.get("MARKETPIPE_TEST_FIRST_START_REPS", "2"))
CONTRACT = (TRADES, BOOK, ACCOUNT, OHLCV, BOOK_TOP)


def book_partitions(ready: dict) -> set[int]:
    return {int(a.rsplit(":", 1)[1]) for a in ready["actives"] if a.split(":")[0].endswith(BOOK.name)}


async def wait_for_topics(bootstrap: str, names: list[str], timeout: float = 120.0) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=10).topics
        if all(n in topics and topics[n].partitions and topics[n].error is None for n in names):
            return
        assert time.monotonic() < deadline, f"topics never appeared: {names}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300 + 240 * REPS)
@pytest.mark.parametrize("rep", range(REPS))
async def test_three_workers_with_a_fresh_app_id_start_together(
        cluster: Cluster, registry: ContractRegistry, tmp_path: Path, rep: int) -> None:
    assert cluster.registry_url
    tag = uuid.uuid4().hex[:8]
    prefix, app_id = f"testfs{tag}.", f"test-first-{tag}"
    workers_create = rep % 2 == 0
    # earliest: the workers fold the events produced while they start, so table writes (the changelogs) happen
    # during the first assignments, where the race was
    env = worker_env(cluster.bootstrap, cluster.registry_url, app_id, tmp_path / "data", topic_prefix=prefix,
                     standby_replicas="1", offset_reset="earliest")
    env["MARKETPIPE_CREATE_TOPICS"] = "true" if workers_create else "false"
    workers = [Worker(env, tmp_path / f"w{i}.log") for i in range(3)]
    try:
        for w in workers:  # the same moment: three Popen calls back to back
            w.start()
        if not workers_create:
            await asyncio.sleep(2)  # the "schemas Job" comes a little later; the workers wait for it
            create_prefixed_topics(cluster.bootstrap, prefix, CONTRACT)
        venue = f"fs{tag}"
        markets = [f"M{i}-USD" for i in range(12)]
        # events arrive while the workers start (as soon as the topics exist)
        await wait_for_topics(cluster.bootstrap, [prefix + spec.name for spec in CONTRACT])
        async with EventWriter(cluster.bootstrap, registry, topic_prefix=prefix) as writer:
            for i, m in enumerate(markets):
                await writer.book(venue, m, "SNAPSHOT", seq=i + 1, bids=[(f"{i + 10}.5", "1")],
                                  asks=[(f"{i + 11}", "2")])
                await writer.account(venue, f"acct{i}", "*", "BALANCE", {"asset": "USD", "total": f"{i}.00"})
            await writer.flush()
        await asyncio.gather(*(w.wait_ready(timeout=180) for w in workers))
        ready_at = time.monotonic()

        # the group settles: each worker owns some book partitions, together all of them, none twice
        deadline = time.monotonic() + 120
        while True:
            answers = [(await get_json(f"{w.url}/processor/ready"))[1] for w in workers]
            parts = [book_partitions(a) for a in answers]
            if (all(a["ready"] for a in answers) and all(parts) and sum(map(len, parts)) == BOOK.partitions
                    and set().union(*parts) == set(range(BOOK.partitions))):
                break
            assert time.monotonic() < deadline, f"partitions never split across the workers: {answers}"
            for w in workers:
                assert w.proc is not None and w.proc.poll() is None, f"worker died: {w.log_path}"
            await asyncio.sleep(0.3)

        # every worker answers every query (its own keys, and the others' through routing)
        for i, m in enumerate(markets):
            for w in workers:
                book = await poll_json(f"{w.url}/books/{venue}/{m}", lambda st, b: st == 200, timeout=60)
                assert book["sequence"] == i + 1 and book["bids"] == [{"price": f"{i + 10}.5", "size": "1"}]
                bal = await poll_json(f"{w.url}/accounts/{venue}/acct{i}/balances", lambda st, b: st == 200,
                                      timeout=60)
                assert bal["balances"]["USD"]["total"] == f"{i}.00"

        # the crash used to come 2-8 s after ready: every worker is still up and ready well past that
        while time.monotonic() - ready_at < 10:
            await asyncio.sleep(0.5)
        for w in workers:
            assert w.proc is not None and w.proc.poll() is None, f"worker died: {w.log_path}"
            status, ready = await get_json(f"{w.url}/processor/ready")
            assert status == 200 and ready["ready"] is True, ready
            log = w.log_path.read_text(errors="replace")
            assert "PartitionsMismatch" not in log and "Traceback" not in log, w.log_path
    finally:
        for w in workers:
            w.stop()
        delete_topics(cluster.bootstrap, (prefix, app_id))

"""Fixtures for the processor tests: one shared worker for the session, plus per-test workers where a
test needs its own consumer group (restart, second worker).

The session works on private copies of the contract topics (prefix `test<tag>.`, same partitions and
schemas): the broker is shared, and any other processor running on it (another engineer's, a benchmark's)
would otherwise publish its own BookTop / candle events for our keys into the shared derived topics.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from marketpipe.infra.stack import Cluster
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, BOOK_TOP, OHLCV, TRADES
from tests.processors.harness import EventWriter, Worker, create_prefixed_topics, delete_topics, worker_env


@pytest.fixture(scope="session")
def session_tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def topic_prefix(cluster: Cluster, session_tag: str) -> Iterator[str]:
    prefix = f"test{session_tag}."
    create_prefixed_topics(cluster.bootstrap, prefix, (TRADES, BOOK, ACCOUNT, OHLCV, BOOK_TOP))
    yield prefix
    delete_topics(cluster.bootstrap, (prefix, f"test-proc-{session_tag}", f"test-proc2-{session_tag}"))


@pytest.fixture(scope="session")
def shared_worker(cluster: Cluster, registry: ContractRegistry, session_tag: str, topic_prefix: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("proc-shared")
    assert registry is not None and cluster.registry_url is not None
    worker = Worker(worker_env(cluster.bootstrap, cluster.registry_url, f"test-proc-{session_tag}", tmp / "data",
                               topic_prefix=topic_prefix), tmp / "worker.log").start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
async def ready_worker(shared_worker: Worker) -> Worker:
    await shared_worker.wait_ready()
    return shared_worker


@pytest.fixture
async def writer(cluster: Cluster, registry: ContractRegistry, topic_prefix: str) -> AsyncIterator[EventWriter]:
    async with EventWriter(cluster.bootstrap, registry, topic_prefix=topic_prefix) as w:
        yield w

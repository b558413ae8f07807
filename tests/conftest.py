"""Shared fixtures: one real Kafka broker + schema registry for the whole test session.

Provider order (marketpipe.infra.stack.provide_cluster): MARKETPIPE_KAFKA_BOOTSTRAP +
MARKETPIPE_REGISTRY_URL; testcontainers (Redpanda) when a Docker engine answers; local Kafka +
Apicurio processes; Tansu when Java is missing (then registry/transaction tests skip, with reason).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketpipe.infra.stack import Cluster, provide_cluster
from marketpipe.settings import PublisherSettings
from marketpipe.topics_admin import ensure_topics
from schemas.registry import ContractRegistry
from schemas.topics import ALL_TOPICS


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = Path(tmp_path_factory.mktemp("cluster"))
    c = provide_cluster(workdir, progress=lambda m: print(f"[cluster] {m}", flush=True))
    try:
        ensure_topics(c.bootstrap, ALL_TOPICS)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def registry_url(cluster: Cluster) -> str:
    if cluster.registry_url is None:
        pytest.skip(f"no schema registry with the {cluster.kind} provider (Java missing)")
    return cluster.registry_url


@pytest.fixture(scope="session")
def registry(registry_url: str) -> ContractRegistry:
    reg = ContractRegistry(registry_url)
    reg.register_all()
    return reg


@pytest.fixture(scope="session")
def transactional(cluster: Cluster) -> Cluster:
    if not cluster.transactions:
        pytest.skip(f"{cluster.kind} broker has no Kafka transactions")
    return cluster


@pytest.fixture
def publisher_settings(cluster: Cluster, registry_url: str) -> PublisherSettings:
    return PublisherSettings(kafka_bootstrap=cluster.bootstrap, registry_url=registry_url)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


def pytest_report_header(config: pytest.Config) -> str:
    return "marketpipe: cluster from " + (
        "environment" if os.environ.get("MARKETPIPE_KAFKA_BOOTSTRAP") else "testcontainers/local processes"
    )

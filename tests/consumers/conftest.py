from __future__ import annotations

import os

import pytest
import pytest_asyncio

from marketpipe.infra.stack import Cluster
from marketpipe.settings import PublisherSettings
from schemas.registry import ContractRegistry
from tests.consumers.published import Batch, publish_every_contract


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def every_contract(cluster: Cluster, registry_url: str, registry: ContractRegistry) -> Batch:
    """One batch of records of every topic, written by marketpipe's serde through its publisher."""
    settings = PublisherSettings(kafka_bootstrap=cluster.bootstrap, registry_url=registry_url)
    return await publish_every_contract(settings, registry)


@pytest.fixture
def consumer_env(cluster: Cluster, registry_url: str) -> dict[str, str]:
    """What a downstream consumer is given: the bootstrap servers and the registry's Confluent API."""
    return {**os.environ, "MARKETPIPE_KAFKA_BOOTSTRAP": cluster.bootstrap, "MARKETPIPE_REGISTRY_URL": registry_url}

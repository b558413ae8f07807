"""A three-node KRaft cluster + a persistent Apicurio registry, started for the `multibroker` tests
(pytest -m multibroker; deselected by default, run as their own CI step). Tests here may kill -9 and
restart nodes: the fixture is per module so a test leaves no damage to the next module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from marketpipe.infra.stack import Cluster, start_local


@pytest.fixture(scope="module")
def three_brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = Path(tmp_path_factory.mktemp("three-brokers"))
    c = start_local(workdir, lambda m: print(f"[three-brokers] {m}", flush=True), brokers=3)
    try:
        assert c.kafka_cluster is not None and len(c.kafka_cluster.nodes) == 3
        yield c
    finally:
        c.stop()

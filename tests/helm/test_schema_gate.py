"""The schema Job fails on an incompatible schema, so Helm aborts the release.

Needs a registry of its own: the shared dev registry's subjects are the real contracts other engineers'
tests use, so the incompatible "released" version is planted in a private Apicurio started for this
module (about 8 s), and the Job's command runs with the chart's environment pointing at it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema

from marketpipe.infra.ports import free_port
from marketpipe.infra.processes import LocalRegistry, StartError
from marketpipe.infra.stack import Cluster
from schemas import contracts
from schemas.registry import ContractRegistry
from schemas.topics import TRADES
from tests.helm.chart import fullname, render
from tests.helm.conftest import values_file
from tests.helm.podenv import ContainerEnvironment, container_of
from tests.helm.service_process import ServiceProcess, command_line, process_env


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reg = LocalRegistry(Path(tmp_path_factory.mktemp("private-registry")), free_port())
    try:
        reg.start(timeout=120, progress=lambda m: print(f"[registry] {m}"))
    except StartError as exc:
        pytest.fail(f"could not start a private schema registry: {exc}")
    try:
        yield reg.url
    finally:
        reg.stop()


@pytest.mark.timeout(240)
async def test_schema_job_fails_on_an_incompatible_schema(private_registry: str, cluster: Cluster,
                                                          tmp_path: Path) -> None:
    # A version already in the registry that the working tree's trade schema cannot be compatible with:
    # readers of it require a field the current schema does not write (FORWARD, hence FULL, broken).
    planted = copy.deepcopy(contracts.schema_json("trade"))
    planted["fields"].append({"name": "venue_fee", "type": "string"})
    reg = ContractRegistry(private_registry)
    reg.client.set_compatibility(subject_name=TRADES.subject, level="FULL_TRANSITIVE")
    reg.client.register_schema(TRADES.subject, Schema(json.dumps(planted), "AVRO"))

    m = render([values_file("minimal-values")], {"kafka.bootstrap": cluster.bootstrap,
                                                 "registry.url": private_registry})
    job = m.get("Job", f"{fullname()}-schemas")
    container = container_of(job)
    home = tmp_path / "home"
    home.mkdir()
    proc = ServiceProcess(command_line(container), process_env(ContainerEnvironment(m).resolve(container), home),
                          tmp_path / "schemas.log")
    rc = await proc.run_to_end(timeout=90)
    out = proc.log()
    assert rc == 1, f"the Job must fail (and with it the release) on an incompatible schema; rc={rc}\n{out}"
    assert "ERROR" in out and TRADES.subject in out, out
    assert len(reg.client.get_versions(TRADES.subject)) == 1, "the incompatible schema was registered anyway"
    # backoffLimit retries cannot turn this into a success: the same command fails the same way again
    assert await ServiceProcess(proc.argv, proc.env, tmp_path / "retry.log").run_to_end(timeout=90) == 1

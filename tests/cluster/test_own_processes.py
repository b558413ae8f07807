"""`infra up` knows its own processes: a port taken between the pick and the bind (or answered by someone
else's registry) is noticed and retried on another port; two `infra up` at once with different state
directories give two working, separate stacks."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from marketpipe.infra.ports import owns_listener
from marketpipe.infra.processes import pid_alive
from marketpipe.infra.stack import start_local

pytestmark = [pytest.mark.multibroker, pytest.mark.timeout(900)]


class _ImpostorRegistry(http.server.BaseHTTPRequestHandler):
    """Someone else's registry: answers the readiness probe with 200 and an empty subject list."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor_registry() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImpostorRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def squatted_port() -> Iterator[int]:
    """A port another process listens on (a plain TCP listener, as when a port is taken after our pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_ports_lost_to_a_race_are_retried_on_other_ports(tmp_path: Path, impostor_registry: int,
                                                         squatted_port: int) -> None:
    from marketpipe.infra.ports import free_port

    said: list[str] = []
    cluster = start_local(tmp_path / "stack", said.append, kafka_port=squatted_port, controller_port=free_port(),
                          registry_port=impostor_registry)
    try:
        assert cluster.kafka is not None and cluster.registry is not None
        assert cluster.kafka.port != squatted_port and cluster.registry.port != impostor_registry
        assert cluster.kafka.pid is not None and owns_listener(cluster.kafka.pid, cluster.kafka.port)
        assert cluster.registry.pid is not None and owns_listener(cluster.registry.pid, cluster.registry.port)
        assert any("could not bind port" in m and "other ports" in m for m in said), said  # kafka's retry
        # the registry's: the impostor answered the probe (or ours exited on the bind): never taken for ours
        assert any("registry" in m and "retrying on another port" in m for m in said), said
        with urllib.request.urlopen(f"{cluster.registry_url}/subjects", timeout=10) as resp:
            assert resp.status == 200
        assert AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(timeout=15).brokers
    finally:
        cluster.stop()


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "marketpipe.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_infra_up_at_once_give_two_separate_working_stacks(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    envs = [{**base, "MARKETPIPE_STATE_DIR": str(tmp_path / name)} for name in ("a", "b")]
    procs = [_cli(["infra", "up"], env) for env in envs]
    states: list[dict] = []
    try:
        outs = [p.communicate(timeout=400)[0] for p in procs]
        for p, out in zip(procs, outs, strict=True):
            assert p.returncode == 0, out
        for env in envs:
            status = subprocess.run([sys.executable, "-m", "marketpipe.cli", "infra", "status"], env=env,
                                    capture_output=True, text=True, timeout=60)
            assert status.returncode == 0, status.stdout + status.stderr
            states.append(json.loads(status.stdout))
        a, b = states
        assert a["workdir"] != b["workdir"]
        assert {a["kafka_port"], a["controller_port"], a["registry_port"]}.isdisjoint(
            {b["kafka_port"], b["controller_port"], b["registry_port"]})
        for s in states:  # each answered by the processes its own `infra up` started
            assert owns_listener(s["kafka_pid"], s["kafka_port"]) and owns_listener(s["registry_pid"],
                                                                                   s["registry_port"])

        # separate: a topic and a subject made in one stack are not in the other
        admin_a = AdminClient({"bootstrap.servers": a["bootstrap"]})
        admin_a.create_topics([NewTopic("only-in-a", num_partitions=1, replication_factor=1)])["only-in-a"].result(30)
        assert "only-in-a" in admin_a.list_topics(timeout=15).topics
        assert "only-in-a" not in AdminClient({"bootstrap.servers": b["bootstrap"]}).list_topics(timeout=15).topics
        schema = json.dumps({"schema": json.dumps({"type": "record", "name": "OnlyInA", "fields": []})}).encode()
        req = urllib.request.Request(f"{a['registry_url']}/subjects/only-in-a-value/versions", data=schema,
                                     headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
        for s, expected in ((a, True), (b, False)):
            with urllib.request.urlopen(f"{s['registry_url']}/subjects", timeout=30) as resp:
                assert ("only-in-a-value" in json.loads(resp.read())) is expected
    finally:
        for env in envs:
            subprocess.run([sys.executable, "-m", "marketpipe.cli", "infra", "down"], env=env, capture_output=True,
                           text=True, timeout=120)
        for p in procs:
            if p.poll() is None:
                p.kill()
    for s in states:
        assert not pid_alive(s["kafka_pid"]) and not pid_alive(s["registry_pid"])


def test_infra_up_three_brokers_status_lists_each_node_and_down_stops_them_all(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")},
           "MARKETPIPE_STATE_DIR": str(tmp_path / "state")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "marketpipe.cli", *args], env=env, capture_output=True,
                              text=True, timeout=400)

    up = cli("infra", "up", "--brokers", "3")
    state: dict = {}
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = cli("infra", "status")
        assert status.returncode == 0, status.stdout
        state = json.loads(status.stdout)
        nodes = state["kafka_nodes"]
        assert [n["node_id"] for n in nodes] == [1, 2, 3] and all(n["alive"] for n in nodes)
        assert len({n["pid"] for n in nodes}) == 3 and len({n["port"] for n in nodes}) == 3
        assert all(owns_listener(n["pid"], n["port"]) for n in nodes)
        assert state["bootstrap"] == ",".join(f"127.0.0.1:{n['port']}" for n in nodes)
        assert f"export MARKETPIPE_KAFKA_BOOTSTRAP={state['bootstrap']}" in up.stdout
        assert sorted(AdminClient({"bootstrap.servers": state["bootstrap"]}).list_topics(timeout=15).brokers) == [
            1, 2, 3]
    finally:
        down = cli("infra", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert state, "infra up did not leave a state to check"
    for pid in [n["pid"] for n in state["kafka_nodes"]] + [state["registry_pid"]]:
        assert not pid_alive(pid), f"pid {pid} survived infra down"
    assert cli("infra", "status").returncode == 1

"""`marketpipe infra up|status|down` driven as a user would, on a clean cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from marketpipe.infra.ports import port_open
from marketpipe.infra.processes import pid_alive


def run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "marketpipe.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_up_on_clean_cache_then_reuse_then_down(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    env["MARKETPIPE_CACHE"] = str(tmp_path / "cache")
    env["MARKETPIPE_STATE_DIR"] = str(tmp_path / "state")
    first = run(["infra", "up"], env)
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        assert "fetching Apache Kafka" in first.stdout and "fetching Apicurio" in first.stdout
        status = run(["infra", "status"], env)
        assert status.returncode == 0, status.stdout
        state = json.loads(status.stdout)
        assert state["kafka_alive"] and state["registry_alive"]
        assert port_open(state["kafka_port"]) and port_open(state["registry_port"])
        again = run(["infra", "up"], env)  # already running: answers at once
        assert again.returncode == 0 and "already running" in again.stdout
    finally:
        down = run(["infra", "down"], env)
    assert down.returncode == 0, down.stdout + down.stderr
    for pid in (state["kafka_pid"], state["registry_pid"]):
        assert not pid_alive(pid), f"pid {pid} survived infra down"
    assert not port_open(state["kafka_port"]) and not port_open(state["registry_port"])
    assert run(["infra", "status"], env).returncode == 1

    second = run(["infra", "up"], env)  # a second start reuses the cached downloads
    try:
        assert second.returncode == 0, second.stdout + second.stderr
        assert "fetching" not in second.stdout
        state2 = json.loads(run(["infra", "status"], env).stdout)
    finally:
        run(["infra", "down"], env)
    assert not pid_alive(state2["kafka_pid"]) and not pid_alive(state2["registry_pid"])


def test_every_simulator_is_reachable_through_the_cli() -> None:
    """`marketpipe simulate <venue> --help` reaches each simulator's own argument parser."""
    for venue in ("rabbitx", "drift", "econia", "binance", "okx", "coinbase"):
        res = subprocess.run([sys.executable, "-m", "marketpipe.cli", "simulate", venue, "--help"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"{venue}: {res.stderr}"
        assert "--port" in res.stdout, f"{venue}: {res.stdout}"


def test_a_listener_is_told_apart_from_another_process_on_the_same_port() -> None:
    """The start-up check behind PortTaken: a port picked free can be taken by someone else before our child
    binds it; then the answering process is not ours and start-up must not call it ready."""
    import socket
    import time

    from marketpipe.infra.ports import owns_listener

    child = subprocess.Popen([sys.executable, "-c", (
        "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); "
        "print(s.getsockname()[1], flush=True); time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        deadline = time.monotonic() + 10
        while not owns_listener(child.pid, port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert owns_listener(child.pid, port)
        assert not owns_listener(os.getpid(), port)  # we do not hold it
        with socket.socket() as mine:
            mine.bind(("127.0.0.1", 0))
            mine.listen()
            assert owns_listener(os.getpid(), mine.getsockname()[1])
            assert not owns_listener(child.pid, mine.getsockname()[1])
    finally:
        child.kill()
        child.wait()

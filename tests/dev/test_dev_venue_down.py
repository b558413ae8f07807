"""A producer that dies while `marketpipe dev` runs is shown DOWN (its /metrics stops answering, its exit
and log path listed as an error) while the other venues go on; Ctrl-C still stops everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.dev.test_dev_command import wait_for


def test_a_dead_producer_shows_down_and_the_others_go_on(cluster, registry_url: str, tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    log = tmp_path / "dev.log"
    env = {**os.environ, "MARKETPIPE_KAFKA_BOOTSTRAP": cluster.bootstrap, "MARKETPIPE_REGISTRY_URL": registry_url,
           "MARKETPIPE_STATE_DIR": str(tmp_path / "state")}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "marketpipe.cli", "dev", "--venues", "drift,econia",
                                 "--no-view", "--duration", "300", "--status-file", str(status_file)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def status() -> dict[str, Any] | None:
        try:
            return json.loads(status_file.read_text())
        except (OSError, ValueError):
            return None

    try:
        state = wait_for(lambda: (s := status()) and s["feeds"].get("econia", {}).get("up") == 1.0 and s,
                         200, "both producers up", proc, log)
        victim = next(c for c in state["components"] if c["name"] == "producer-econia")
        os.killpg(victim["pid"], signal.SIGKILL)

        def econia_down() -> dict[str, Any] | None:
            s = status()
            if s and s["feeds"]["econia"]["up"] == 0.0 and any("producer-econia exited" in e for e in s["errors"]):
                return s
            return None

        state = wait_for(econia_down, 60, "producer-econia shown down", proc, log)
        assert state["feeds"]["drift"]["up"] == 1.0
        drift_total = state["totals"].get("marketpipe.book.v1", 0)
        wait_for(lambda: (s := status()) and s["totals"].get("marketpipe.book.v1", 0) > drift_total, 60,
                 "drift's book events still flowing", proc, log)
        assert proc.poll() is None, log.read_text()[-3000:]
        assert "producer-econia is DOWN: producer-econia exited with code" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert rc == 0, log.read_text()[-3000:]
    assert "stopped everything" in log.read_text()

"""`marketpipe smoke` against the session's broker and registry: publish one event per contract and read it back."""

from __future__ import annotations

import os
import subprocess
import sys


def test_smoke_command_round_trips_through_kafka(cluster, registry_url: str) -> None:
    env = {**os.environ, "MARKETPIPE_KAFKA_BOOTSTRAP": cluster.bootstrap, "MARKETPIPE_REGISTRY_URL": registry_url}
    res = subprocess.run([sys.executable, "-m", "marketpipe.cli", "smoke"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "smoke OK: every event came back identical" in res.stdout
    assert "read back trade" in res.stdout and "read back book" in res.stdout

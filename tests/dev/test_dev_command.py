"""`marketpipe dev` driven as a user would: it comes up in bounded time, every venue's markets show a
materialized book whose top matches the simulator's truth, candles appear, and Ctrl-C leaves no process
or port behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from marketpipe.infra.ports import port_open
from marketpipe.infra.processes import pid_alive

UP_WITHIN_S = 150  # warm cache, 2 cores, eight venues
VENUES = "rabbitx,drift,econia,binance,okx,kraken,bybit,coinbase"


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def dec(text: Any) -> Decimal | None:
    return None if text is None else Decimal(str(text))


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen[bytes], log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"dev exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{log.read_text()[-3000:]}")


def tops_agree(truth_url: str, top_url: str) -> bool:
    code, truth = get_json(truth_url)
    assert code == 200, f"no simulator truth at {truth_url} ({code})"
    code, top = get_json(top_url)
    if code != 200 or not top.get("in_sync"):
        return False
    return (dec(top.get("best_bid")), dec(top.get("best_ask"))) == (dec(truth["best_bid"]), dec(truth["best_ask"]))


def test_dev_command_end_to_end(cluster, registry_url: str, tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    log = tmp_path / "dev.log"
    env = {**os.environ, "MARKETPIPE_KAFKA_BOOTSTRAP": cluster.bootstrap, "MARKETPIPE_REGISTRY_URL": registry_url,
           "MARKETPIPE_STATE_DIR": str(tmp_path / "state")}
    t0 = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "marketpipe.cli", "dev", "--venues", VENUES, "--no-view",
                                 "--duration", "400", "--status-file", str(status_file)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "pipeline up in" in log.read_text(), UP_WITHIN_S, "the pipeline to come up", proc, log)
        up_after = time.monotonic() - t0

        def status() -> dict[str, Any] | None:
            try:
                return json.loads(status_file.read_text())
            except (OSError, ValueError):
                return None

        state = wait_for(status, 30, "the first status", proc, log)
        sims = [c for c in state["components"] if c["name"].startswith("simulator-")]
        assert {c["venue"] for c in sims} == set(VENUES.split(","))
        expected = {f"{c['venue']}:{m}" for c in sims for m in c["truth_markets"]}

        def all_books_in_sync() -> dict[str, Any] | None:
            s = status()
            if s and all(k in s["tops"] and s["tops"][k]["in_sync"] for k in expected):
                return s
            return None

        state = wait_for(all_books_in_sync, 90, f"materialized books for {sorted(expected)}", proc, log)
        query = next(c for c in state["components"] if c["name"] == "processor")["port"]

        # every market's top of book, read from the processors, equals the simulator's truth at some instant
        for sim in sims:
            for market, sim_market in sim["truth_markets"].items():
                truth_url = f"http://127.0.0.1:{sim['port']}/_sim/top?market={sim_market}"
                top_url = f"http://127.0.0.1:{query}/books/{sim['venue']}/{market}/top"
                wait_for(lambda t=truth_url, q=top_url: tops_agree(t, q), 30,
                         f"{sim['venue']}:{market} top == simulator truth", proc, log)

        def candles_everywhere() -> dict[str, Any] | None:
            s = status()
            venues_with_candles = {k.split(":", 1)[0] for k in (s or {}).get("candles", {})}
            return s if venues_with_candles >= {"rabbitx", "drift", "binance", "okx", "kraken", "bybit"} else None

        # a 1m candle finishes at the next minute boundary plus the grace period: up to ~70 s after the first trade
        state = wait_for(candles_everywhere, 150, "finished candles for every trading venue", proc, log)
        pids = [c["pid"] for c in state["components"]]
        ports = [c["port"] for c in state["components"]]
        assert all(pid_alive(p) for p in pids)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            rc = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert rc == 0, log.read_text()[-3000:]
    assert "stopped everything" in log.read_text()
    assert "internal topics of marketpipe-dev-" in log.read_text() and "could not delete" not in log.read_text()
    left = [p for p in pids if pid_alive(p)]
    assert not left, f"processes left behind: {left}"
    open_ports = [p for p in ports if port_open(p)]
    assert not open_ports, f"ports still open: {open_ports}"
    print(f"dev came up in {up_after:.1f}s")


def test_dev_names_a_failing_part_with_its_log(cluster, registry_url: str, tmp_path: Path) -> None:
    """A part that cannot start (here: the processor, given an invalid setting) is named with its log path,
    and the command exits 1 promptly instead of hanging."""
    env = {**os.environ, "MARKETPIPE_KAFKA_BOOTSTRAP": cluster.bootstrap, "MARKETPIPE_REGISTRY_URL": registry_url,
           "MARKETPIPE_STATE_DIR": str(tmp_path / "state"), "MARKETPIPE_PROCESSOR_BOOK_DEPTH": "7parsecs"}
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "marketpipe.cli", "dev", "--venues", "drift", "--no-view",
                          "--duration", "120"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert time.monotonic() - t0 < 60
    out = res.stdout
    assert "FAILED: processor exited with code" in out
    log_path = Path(out.split("log: ", 1)[1].split()[0])
    assert log_path.exists() and "7parsecs" in log_path.read_text()
    assert "stopped everything" in out

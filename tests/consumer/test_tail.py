"""`marketpipe tail`: a real subprocess against the real broker and registry."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from marketpipe.infra.stack import Cluster
from marketpipe.tail import parse_time, resolve_topic
from schemas.registry import ContractRegistry
from schemas.topics import BOOK_TOP, OHLCV, TRADES
from tests.processors.harness import EventWriter, now_us

REPO = Path(__file__).resolve().parents[2]


def tail_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "marketpipe.cli", "tail", *args]


def env(cluster: Cluster) -> dict[str, str]:
    assert cluster.registry_url is not None
    return {**os.environ, "MARKETPIPE_KAFKA_BOOTSTRAP": cluster.bootstrap,
            "MARKETPIPE_REGISTRY_URL": cluster.registry_url, "MARKETPIPE_LOG_LEVEL": "WARNING"}


def test_topic_names_and_times() -> None:
    assert resolve_topic("trades") is TRADES and resolve_topic("trade") is TRADES
    assert resolve_topic("marketpipe.derived.ohlcv.v1") is OHLCV and resolve_topic("derived.book-top") is BOOK_TOP
    assert parse_time("2026-12-06T10:00:00Z") == datetime(2026, 12, 6, 10, tzinfo=UTC)
    assert parse_time("2026-12-06T11:00:00+01:00") == datetime(2026, 12, 6, 10, tzinfo=UTC)
    res = subprocess.run(tail_cmd("nosuch"), capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2 and "unknown topic 'nosuch'" in res.stderr


async def test_from_a_time_reads_only_later_events_of_the_wanted_venue_as_json(
        cluster: Cluster, registry: ContractRegistry, unique: str) -> None:
    venue, other = f"tail{unique}", f"tailo{unique}"
    async with EventWriter(cluster.bootstrap, registry) as w:
        await w.trade(venue, "BTC-USD", now_us(), "100.0", "1", "BUY", event_id=f"{unique}-early")
        await w.flush()
        await asyncio.sleep(0.05)  # record timestamps are milliseconds: keep the early one strictly before
        since = datetime.now(UTC)
        await asyncio.sleep(0.05)
        for i in range(3):
            await w.trade(venue, "BTC-USD", now_us(), f"10{i}.5", "0.25", "SELL", event_id=f"{unique}-{i}")
            await w.trade(other, "BTC-USD", now_us(), "1", "1", "BUY", event_id=f"{unique}-other-{i}")
        await w.trade_gap(venue, "BTC-USD", now_us() - 1000, now_us(), reason="reconnect", missing_count=4)
        await w.flush()
    res = await asyncio.to_thread(
        subprocess.run, tail_cmd("trades", "--venue", venue, "--from", since.isoformat().replace("+00:00", "Z"),
                                 "--json", "--max-events", "4", "--timeout", "120"),
        capture_output=True, text=True, cwd=REPO, env=env(cluster), timeout=180)
    assert res.returncode == 0, res.stderr
    events = [json.loads(x) for x in res.stdout.splitlines()]
    assert [e["value"]["event_id"] for e in events[:3]] == [f"{unique}-{i}" for i in range(3)]
    assert events[3]["value"]["gap"]["missing_count"] == 4
    assert {e["key"] for e in events} == {f"{venue}:BTC-USD"}

    # the same as readable lines: a trade summary and the gap marker said as such
    res = await asyncio.to_thread(
        subprocess.run, tail_cmd("trades", "--venue", venue, "--market", "BTC-USD", "--from",
                                 since.isoformat(), "--max-events", "4", "--timeout", "120"),
        capture_output=True, text=True, cwd=REPO, env=env(cluster), timeout=180)
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and len(lines) == 4, res.stdout + res.stderr
    assert f"{venue}:BTC-USD" in lines[0] and "SELL 0.25 @ 100.5" in lines[0]
    assert "GAP reason=reconnect" in lines[3] and "missing=4" in lines[3]


async def test_from_the_end_sees_only_new_events_and_stops_at_the_timeout(
        cluster: Cluster, registry: ContractRegistry, unique: str) -> None:
    venue = f"tailend{unique}"
    async with EventWriter(cluster.bootstrap, registry) as w:
        await w.trade(venue, "ETH-USD", now_us(), "1", "1", "BUY", event_id=f"{unique}-old")
        await w.flush()
        proc = subprocess.Popen(tail_cmd("trades", "--venue", venue, "--json", "--timeout", "8"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env(cluster))
        try:
            assert proc.stderr is not None
            ready = await asyncio.to_thread(proc.stderr.readline)  # "# tailing ... from the end": positions fixed
            assert "from the end" in ready, ready
            await w.trade(venue, "ETH-USD", now_us(), "2", "1", "BUY", event_id=f"{unique}-new")
            await w.flush()
            out, err = await asyncio.to_thread(proc.communicate, timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err  # ended by its --timeout (a kill would be -9)
    assert [json.loads(x)["value"]["event_id"] for x in out.splitlines()] == [f"{unique}-new"]

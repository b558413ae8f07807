"""faust's own "stream stopped processing" check stays quiet while the batched agents work through a backlog.

The agents take events in bulk (processors/batches.py) and skip faust's per-event sensor hooks; the one
Monitor field faust's consumer reads for this check (when a stream last took an event of each partition)
must still advance. The check looks at partitions whose fetch position is behind the high watermark, so the
test gives the worker a backlog bigger than one fetch per partition; without that field kept up to date the
worker logs "Stream has not started processing" errors within seconds (checked by hand).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from marketpipe.infra.stack import Cluster
from schemas.registry import ContractRegistry
from schemas.topics import TRADES, market_key
from tests.processors.harness import EventWriter, Worker, now_us, poll_json, worker_env

STUCK = ("Stream has not started processing", "Stream stopped processing")
BACKLOG = 100_000


async def test_no_stuck_stream_errors_while_working_through_a_backlog(
        cluster: Cluster, registry: ContractRegistry, writer: EventWriter, unique: str, tmp_path: Path,
        topic_prefix: str, session_tag: str) -> None:
    assert cluster.registry_url
    # the check runs every 2.5 commit intervals (1 s here) and fires after 1 s without an event
    # the backlog is in Kafka before the worker (a new group reading from the earliest offsets) starts
    venue = f"lv{unique}"
    framer = registry.framer(TRADES.schema)
    ts = now_us()
    for i in range(BACKLOG):
        market = f"M{i % 24}-USD"
        await writer.send(TRADES, market_key(venue, market), framer.encode({
            "event_id": f"{venue}:{i}", "venue": venue, "market": market, "venue_symbol": market,
            "exchange_ts": ts + i, "receive_ts": now_us(), "trade_id": str(i), "price": "100.5",
            "size": "0.1", "side": "BUY", "liquidation": None}))
    await writer.flush()
    env = worker_env(cluster.bootstrap, cluster.registry_url, f"test-proc2-{session_tag}-live", tmp_path / "data",
                     topic_prefix=topic_prefix, commit_interval_s="0.4", stream_processing_timeout_s="1.0",
                     candle_intervals="1m", offset_reset="earliest")
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        started = time.monotonic()
        await worker.wait_ready(timeout=90)
        stats = await poll_json(f"{worker.url}/processor/stats?latency=false",
                                lambda st, body: st == 200 and body["events"]["trades"] >= BACKLOG, timeout=120)
        took = time.monotonic() - started
        await asyncio.sleep(2.5)  # one more round of the check after the backlog
    finally:
        worker.stop()
    assert stats["events"]["trades"] >= BACKLOG
    # only the backlog's partitions: a 1 s timeout is short enough to flag the internal tick topic too, whose
    # few events wait in the agent's queue behind the trades (faust's per-event path would do the same)
    trades_topic = topic_prefix + TRADES.name
    stuck = [line for line in worker.log_path.read_text(errors="replace").splitlines()
             if any(s in line for s in STUCK) and f"topic='{trades_topic}'" in line]
    assert not stuck, (took, stuck[:5])

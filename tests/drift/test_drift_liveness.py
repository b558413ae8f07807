"""Drift liveness: a missing heartbeat triggers a reconnect; a reader that keeps up is never cut off;
and the simulator's own back-pressure rule (skip sends, then close 1008 "Buffer overflow") is real."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from producers.core.errors import TerminalFeedError
from simulators.drift import DriftSimulator
from tests.drift.conftest import make_markets, wait_until


async def test_missing_heartbeat_triggers_reconnect(drift_sim: DriftSimulator, make_feed) -> None:
    sim = drift_sim
    feed = make_feed(sim, drift_heartbeat_timeout=1.2, watchdog_seconds=10.0)
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "subscribed")
        await asyncio.sleep(1.5)  # heartbeats every 0.5 s: no reconnect while they flow
        assert feed.connections == 1 and feed.heartbeat_timeouts == 0
        sim.heartbeat_enabled = False  # books keep flowing, heartbeats stop
        await wait_until(lambda: feed.heartbeat_timeouts >= 1 and feed.connections >= 2, 10, "heartbeat reconnect")
        assert feed.metrics.reconnect_reasons["heartbeat-timeout"] >= 1
        sim.heartbeat_enabled = True
        await wait_until(lambda: feed.ready, 10, "resubscribed")
        connections = feed.connections
        await asyncio.sleep(1.5)
        assert feed.connections == connections, "healthy heartbeats must not cause reconnects"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_feed_keeps_up_with_a_burst_so_the_server_never_cuts_it_off(unique: str, make_feed) -> None:
    sim = DriftSimulator(make_markets(unique), book_interval=3600, trade_interval=3600, heartbeat_interval=0.5,
                         overflow_check_interval=0.5)
    await sim.start()
    feed = make_feed(sim)
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "subscribed")
        sent = await sim.firehose(3000, 2.0)
        await wait_until(lambda: feed.metrics.count("events_out") >= sent, 20, "every burst frame published")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    assert sim.stats["dropped_backpressure"] == 0
    assert sim.stats["overflow_closes"] == 0
    assert feed.connections == 1


async def test_simulator_skips_sends_then_closes_a_slow_reader_with_1008(unique: str) -> None:
    sim = DriftSimulator(make_markets(unique), book_interval=3600, trade_interval=3600, max_buffered=50_000,
                         overflow_check_interval=0.5, compress=False)
    await sim.start()
    try:
        async with websockets.connect(sim.ws_url, max_queue=1, compression=None) as ws:
            m = sim.markets[0]
            await ws.send(json.dumps({"type": "subscribe", "marketType": m.market_type, "channel": "orderbook",
                                      "market": m.name}))
            assert "Subscribe received" in await ws.recv()
            ws.transport.pause_reading()  # a reader that stopped reading
            await sim.firehose(20_000, 1.0)  # far more than the paused reader takes
            await wait_until(lambda: sim.stats["overflow_closes"] == 1, 5, "overflow close")
            ws.transport.resume_reading()
            try:
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
            except websockets.ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 1008 and exc.rcvd.reason == "Buffer overflow"
    finally:
        await sim.stop()
    assert sim.stats["dropped_backpressure"] > 0


async def test_unknown_market_stops_with_a_clear_error(drift_sim: DriftSimulator, make_feed) -> None:
    feed = make_feed(drift_sim, markets=["perp:0:" + drift_sim.markets[0].name, "perp:77:NOPE-PERP"])
    with pytest.raises(TerminalFeedError, match="NOPE-PERP"):
        await asyncio.wait_for(feed.run(), 10)
    assert feed.connections == 1 and drift_sim.stats["subscribe_errors"] >= 1

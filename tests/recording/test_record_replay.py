"""A Drift session recorded through `marketpipe record`'s proxy and replayed by `simulators.replay` gives
the same Kafka events (receive times aside) as the live run it was recorded from."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from marketpipe.recording import start_recorder
from producers.drift import DriftFeed, DriftSettings
from schemas.registry import ContractRegistry
from schemas.topics import BOOK, TRADES, market_key
from simulators.drift import DriftSimulator
from simulators.replay import load, start_replayer
from tests.drift.conftest import drift_sim, make_markets, spec_text, wait_until  # noqa: F401 - fixture
from tests.feedcore.kafka_reader import end_offsets, read_events


def feed_for(base: str, sim: DriftSimulator, cluster, registry: ContractRegistry) -> DriftFeed:
    settings = DriftSettings(
        ws_url=f"ws://{base}/ws", rest_url=f"http://{base}", markets=[spec_text(m) for m in sim.markets],
        kafka_bootstrap=cluster.bootstrap, registry_url=registry.url, create_topics=False, register_schemas=False,
        reconnect_initial_delay=0.05, reconnect_max_delay=0.3, drift_heartbeat_timeout=30.0, watchdog_seconds=30.0,
        ws_ping_interval=None)
    return DriftFeed(settings, registry=registry, serve_health=False)


async def run_feed(feed: DriftFeed, until) -> None:  # type: ignore[no-untyped-def]
    task = asyncio.create_task(feed.run())
    try:
        await until()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def without_receive_time(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in ("receive_ts", "_offset", "_partition")} for e in events]


async def test_replay_reproduces_the_live_kafka_events(drift_sim: DriftSimulator, cluster, registry,  # noqa: F811
                                                        tmp_path: Path) -> None:
    sim = drift_sim
    recording = tmp_path / "drift-session.jsonl"
    upstream = sim.rest_url.rstrip("/")
    recorder, rec_runner, rec_port = await start_recorder(upstream, recording)
    keys = {market_key("drift", DriftSettings(markets=[spec_text(m)]).market_specs()[0].market) for m in sim.markets}
    start = await end_offsets(cluster.bootstrap, [BOOK, TRADES])

    live = feed_for(f"127.0.0.1:{rec_port}", sim, cluster, registry)

    async def live_session() -> None:
        await wait_until(lambda: live.ready, 15, "live feed subscribed")
        await wait_until(lambda: len(sim.delivered) >= 15, 15, "fills delivered")
        sim.publishing = False  # the venue goes quiet; the producer then hangs up
        await asyncio.sleep(0.5)

    await run_feed(live, live_session)
    await rec_runner.cleanup()
    await recorder.close()
    middle = await end_offsets(cluster.bootstrap, [BOOK, TRADES])

    entries = load(recording)
    venue_frames = sum(1 for e in entries if e["kind"] == "ws" and e["dir"] == "in")
    assert venue_frames >= 20, f"only {venue_frames} frames recorded"
    replayer, rep_runner, rep_port = await start_replayer(recording, speed=4.0)
    replayed = feed_for(f"127.0.0.1:{rep_port}", sim, cluster, registry)

    async def replay_session() -> None:
        await wait_until(lambda: replayer.sent >= venue_frames, 60, "every recorded frame replayed")
        await asyncio.sleep(0.5)

    try:
        await run_feed(replayed, replay_session)
    finally:
        await rep_runner.cleanup()

    for topic in (BOOK, TRADES):
        events = await read_events(cluster.bootstrap, registry, topic, start[topic.name], keys=keys)
        split = middle[topic.name]
        live_events = without_receive_time([e for e in events if e["_offset"] < split[e["_partition"]]])
        replay_events = without_receive_time([e for e in events if e["_offset"] >= split[e["_partition"]]])
        assert len(live_events) >= 10, f"the live run published only {len(live_events)} {topic.name} events"
        print(f"{topic.name}: {len(live_events)} live events, {len(replay_events)} replayed")
        assert replay_events == live_events, f"{topic.name}: replay differs from the live run"

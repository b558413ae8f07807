"""Drift producer throughput, latency and memory under a Kafka outage, against the Drift simulator.

    /tmp/venv/bin/python benchmarks/bench_drift.py [--seconds 10] [--latency-rate 5000] [--latency-seconds 10]
                                                   [--generic] [--outage-seconds 60]

The simulator runs in a **separate process** (``python -m simulators.drift --firehose``: its CPU is not
counted) and, once the producer subscribes, sends pre-rendered grouped top-20 book snapshots (the real
message shape, ~3.6 kB each) whose ``slot`` is the send time in microseconds. The measured process runs
one ``DriftFeed`` (websockets client, double JSON parse, integer-precision conversion, Avro, the
``KafkaPublisher`` with acks=all + idempotence) into the Kafka at MARKETPIPE_KAFKA_BOOTSTRAP.

Printed per phase:
- ``throughput``: the simulator sends as fast as it can for ``--seconds``; frames the producer received,
  frames/s (wall, first frame -> last ack) and frames per CPU-second of the producer process
  (``time.process_time``, Kafka client included), plus what the simulator dropped (its bufferedAmount rule);
- ``latency``: a steady ``--latency-rate`` frames/s; frame sent (slot) -> Kafka ack p50/p99/max over a
  sample of events (decoded in the ack callback);
- ``outage`` (with ``--outage-seconds``): a private Kafka broker (local JVM), a steady 5k frames/s, the broker
  stopped for that long, then restarted: peak RSS, publisher buffer depth, what the simulator dropped or
  closed, and whether everything buffered reached Kafka after the restart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marketpipe.infra.ports import free_port  # noqa: E402
from marketpipe.infra.processes import rss_mb  # noqa: E402
from producers.drift import DriftFeed, DriftSettings  # noqa: E402
from producers.publisher import KafkaPublisher  # noqa: E402
from schemas.registry import ContractRegistry  # noqa: E402

TARGET = 30_000  # frames per CPU-second into Kafka (issue 3)


class Simulator:
    """The simulator subprocess in firehose mode."""

    def __init__(self, rate: float, seconds: float) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "simulators.drift", "--port", str(self.port), "--firehose", str(rate),
               "--seconds", str(seconds), "--no-compress", "--max-seconds", str(seconds + 180)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
        assert self.proc.stdout is not None
        self.urls = json.loads(self.proc.stdout.readline())

    async def result(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
        self.proc.wait(timeout=10)
        return json.loads(line) if line else {}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def settings_for(sim: Simulator, bootstrap: str, registry_url: str, **extra: Any) -> DriftSettings:
    return DriftSettings(ws_url=sim.urls["ws"], rest_url=sim.urls["rest"], kafka_bootstrap=bootstrap,
                         registry_url=registry_url, drift_trades=False, ws_ping_interval=None,
                         drift_heartbeat_timeout=60, watchdog_seconds=60, reconnect_initial_delay=0.2, **extra)


class SlotLatency:
    """Ack callback: every ``every``-th BOOK event decoded; latency = ack time - slot (send time, µs)."""

    def __init__(self, registry: ContractRegistry, every: int) -> None:
        self.registry = registry
        self.every = every
        self.n = 0
        self.samples: list[float] = []
        self.wire: list[float] = []  # slot (sent) -> receive_ts: simulator + socket + our read loop
        self.acked = 0
        self.last_ack = 0.0

    def __call__(self, items: list[tuple[str, bytes, bytes, float | None]]) -> None:
        now_us = time.time_ns() // 1000
        self.acked += len(items)
        self.last_ack = time.monotonic()
        for _, _, value, _ in items:
            self.n += 1
            if self.n % self.every == 0:
                e = self.registry.decode(value)
                if e["kind"] == "SNAPSHOT" and e["sequence"] and e["sequence"] > 10**15:
                    self.samples.append((now_us - e["sequence"]) / 1000)
                    self.wire.append((e["receive_ts"] - e["sequence"]) / 1000)


class NullPublisher:
    """Benchmark-only sink: takes events and acknowledges them at once (normalization cost alone)."""

    def __init__(self, on_ack: SlotLatency) -> None:
        self.on_ack = on_ack

    async def start(self) -> None:
        return None

    async def stop(self, timeout: float | None = None) -> None:
        return None

    async def publish(self, topic: Any, key: bytes, value: bytes, *, stamp: float | None = None) -> None:
        self.on_ack([("", key, value, stamp)])

    def buffered(self) -> int:
        return 0


async def run_phase(rate: float, seconds: float, bootstrap: str, registry: ContractRegistry, *, fast: bool = True,
                    sample_every: int = 0, null_sink: bool = False) -> dict[str, Any]:
    sim = Simulator(rate, seconds)
    probe = SlotLatency(registry, sample_every or 10**9)
    settings = settings_for(sim, bootstrap, registry.url, drift_fast_book_encoder=fast, create_topics=False,
                            register_schemas=False)
    publisher: Any = NullPublisher(probe) if null_sink else KafkaPublisher(settings, client_id="bench-drift",
                                                                             on_ack=probe)
    await publisher.start()
    feed = DriftFeed(settings, registry=registry, publisher=publisher, serve_health=False)
    task = asyncio.create_task(feed.run())
    try:
        while feed.metrics.frames == 0:
            await asyncio.sleep(0.001)
        cpu0, t0 = time.process_time(), time.monotonic()
        sim_result = await sim.result(seconds + 60)
        frames = feed.metrics.frames
        events = feed.metrics.count("events_out")
        deadline = time.monotonic() + 60
        while probe.acked < events and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        cpu, wall = time.process_time() - cpu0, probe.last_ack - t0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.stop(timeout=30)
        sim.kill()
    out = {"frames": frames, "events": events, "acked": probe.acked, "wall_s": round(wall, 2),
           "cpu_s": round(cpu, 2), "frames_per_s": round(frames / wall), "frames_per_cpu_s": round(frames / cpu),
           "sim_sent": sim_result.get("firehose_frames"), "sim_dropped": sim_result.get("dropped_backpressure", 0),
           "sim_overflow_closes": sim_result.get("overflow_closes", 0), "reconnects": feed.metrics.count("reconnects"),
           "fast_encoder": feed.fast_encoder}
    if probe.samples:
        s = sorted(probe.samples)
        out.update(latency_samples=len(s), p50_ms=round(statistics.median(s), 2),
                   p99_ms=round(s[int(len(s) * 0.99) - 1], 2), max_ms=round(s[-1], 2))
        w = sorted(probe.wire)
        out.update(sent_to_received_p50_ms=round(statistics.median(w), 2),
                   sent_to_received_p99_ms=round(w[int(len(w) * 0.99) - 1], 2))
    return out


async def outage_phase(seconds: float, rate: float, registry: ContractRegistry) -> dict[str, Any]:
    import logging

    from marketpipe.infra.processes import LocalKafka
    from marketpipe.topics_admin import ensure_topics
    from producers.core.emitter import FEED_TOPICS

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # one line per reconnect attempt otherwise
    workdir = Path(tempfile.mkdtemp(prefix="bench-drift-kafka-"))
    kafka = LocalKafka(workdir, free_port(), free_port())
    await asyncio.to_thread(kafka.start)
    await asyncio.to_thread(ensure_topics, kafka.bootstrap, FEED_TOPICS)
    warm, tail = 10.0, 40.0
    sim = Simulator(rate, warm + seconds + tail)
    probe = SlotLatency(registry, 10**9)
    settings = settings_for(sim, kafka.bootstrap, registry.url, create_topics=False, register_schemas=False)
    publisher = KafkaPublisher(settings, client_id="bench-drift-outage", on_ack=probe)
    await publisher.start()
    feed = DriftFeed(settings, registry=registry, publisher=publisher, serve_health=False)
    task = asyncio.create_task(feed.run())
    rss: list[float] = []
    depth: list[int] = []
    out: dict[str, Any] = {"outage_s": seconds, "rate": rate}
    try:
        await asyncio.sleep(warm)
        out["rss_before_mb"] = round(rss_mb(), 1)
        out["acked_before_outage"] = probe.acked
        await asyncio.to_thread(kafka.stop)
        t_down = time.monotonic()
        while time.monotonic() - t_down < seconds:
            await asyncio.sleep(1)
            rss.append(rss_mb())
            depth.append(publisher.buffered())
            if len(rss) % 10 == 0:
                print(f"  outage +{len(rss)}s: rss {rss[-1]:.1f} MB, publisher buffer {depth[-1]:,} events, "
                      f"frames read {feed.metrics.frames:,}, reconnects {feed.metrics.count('reconnects')}", flush=True)
        out.update(rss_peak_during_outage_mb=round(max(rss), 1), rss_at_end_of_outage_mb=round(rss[-1], 1),
                   publisher_buffer_peak=max(depth), publisher_buffer_limit=settings.publisher_buffer,
                   reconnects_during_outage=feed.metrics.count("reconnects"))
        await asyncio.to_thread(kafka.start)
        t_up = time.monotonic()
        acked_at_restart = probe.acked
        await sim.result(tail + 120)
        events = feed.metrics.count("events_out")
        while probe.acked < events and time.monotonic() - t_up < 60:
            await asyncio.sleep(0.5)
        out.update(events_published=events, events_acked=probe.acked, acked_after_restart=probe.acked - acked_at_restart,
                   recovered=probe.acked >= events, publisher_last_error=publisher.last_error,
                   ru_maxrss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await publisher.stop(timeout=10)
        except Exception as exc:  # a publisher that cannot drain is a finding, not a reason to leak the broker
            out["publisher_stop_error"] = f"{type(exc).__name__}: {exc}"
        sim.kill()
        await asyncio.to_thread(kafka.stop)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--latency-rate", type=float, default=5000.0)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--generic", action="store_true", help="also measure with fastavro instead of the fast writer")
    ap.add_argument("--outage-seconds", type=float, default=0.0, help="Kafka outage phase (own broker), e.g. 60")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--only-outage", action="store_true")
    args = ap.parse_args()
    bootstrap = os.environ.get("MARKETPIPE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    registry = ContractRegistry(os.environ.get("MARKETPIPE_REGISTRY_URL", "http://127.0.0.1:18081/apis/ccompat/v7"))
    registry.register_all()
    from marketpipe.topics_admin import ensure_topics
    from producers.core.emitter import FEED_TOPICS

    ensure_topics(bootstrap, FEED_TOPICS)  # the feed runs with create_topics=False, as in the chart
    print(f"drift producer -> kafka {bootstrap} (acks=all, idempotent); simulator in a separate process", flush=True)
    if args.only_outage:
        args.generic, args.skip_latency, args.seconds = False, True, 0
    r = await run_phase(0, args.seconds, bootstrap, registry, null_sink=True) if args.seconds else None
    if r:
            print(f"normalization only (no Kafka, null sink): {r['frames_per_cpu_s']:,} frames/CPU-s, "
              f"{r['frames_per_s']:,} frames/s wall; {json.dumps(r)}", flush=True)
    modes = ([True, False] if args.generic else [True]) if args.seconds else []
    for fast in modes:
        r = await run_phase(0, args.seconds, bootstrap, registry, fast=fast)
        label = "fast writer" if fast else "fastavro"
        verdict = "meets" if r["frames_per_cpu_s"] >= TARGET else "below"
        print(f"throughput ({label}): {r['frames_per_cpu_s']:,} frames/CPU-s ({verdict} the {TARGET:,} target), "
              f"{r['frames_per_s']:,} frames/s wall; {json.dumps(r)}", flush=True)
    if not args.skip_latency:
        r = await run_phase(args.latency_rate, args.latency_seconds, bootstrap, registry, sample_every=7)
        print(f"latency at {args.latency_rate:,.0f} frames/s: frame sent -> Kafka ack p50 {r.get('p50_ms')} ms, "
              f"p99 {r.get('p99_ms')} ms (target < 20 ms); {json.dumps(r)}", flush=True)
    if args.outage_seconds:
        r = await outage_phase(args.outage_seconds, args.latency_rate, registry)
        print(f"kafka outage {args.outage_seconds:.0f}s at {args.latency_rate:,.0f} frames/s: peak RSS "
              f"{r.get('rss_peak_during_outage_mb')} MB (before {r.get('rss_before_mb')} MB), recovered after restart: "
              f"{r.get('recovered')}; {json.dumps(r)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())

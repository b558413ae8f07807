"""RabbitX producer benchmark (a script that prints figures; not a test).

One producer process (this one) fed by the RabbitX simulator's high-rate mode running in another
process (``python -m simulators.rabbitx --firehose``), publishing into real Kafka with acks=all and
idempotence (``KafkaPublisher``):

1. throughput: the simulator pushes book deltas as fast as the producer reads them (one message per
   frame); prints sustained frames/s and frames per CPU-second of this process (``time.process_time``,
   all threads), plus Kafka-acknowledged events/s over the same window;
2. latency: a steady 5k frames/s; each message carries the simulator's wall-clock µs at generation as
   its ``timestamp``; the publisher's ``on_ack`` hook gives frame-sent -> Kafka-ack latency p50/p99;
3. outage: against a broker this script starts itself (``LocalKafka`` on free ports, NOT the shared
   one), 5k frames/s while the broker is stopped for ``--outage-seconds``; prints this process's RSS
   over time, then restarts the broker and checks the producer recovers.

Usage: ``python benchmarks/bench_rabbitx.py [--phases throughput,latency,outage] [--seconds 15]``
(env ``MARKETPIPE_KAFKA_BOOTSTRAP``/``MARKETPIPE_REGISTRY_URL`` name the shared Kafka and registry).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from marketpipe.infra.ports import free_port  # noqa: E402
from marketpipe.infra.processes import rss_mb  # noqa: E402
from marketpipe.topics_admin import ensure_topics  # noqa: E402
from producers.core.emitter import FEED_TOPICS  # noqa: E402
from producers.core.runtime import prepare_process  # noqa: E402
from producers.publisher import KafkaPublisher  # noqa: E402
from producers.rabbitx import RabbitXFeed, RabbitXSettings  # noqa: E402
from schemas.registry import ContractRegistry  # noqa: E402

log = logging.getLogger("bench_rabbitx")


def start_sim(rate: float, seconds: float, market: str, batch: int = 1) -> tuple[subprocess.Popen[str], dict]:
    cmd = [sys.executable, "-m", "simulators.rabbitx", "--firehose", str(rate), "--seconds", str(seconds),
           "--markets", market, "--batch", str(batch), "--max-seconds", str(seconds + 120), "--settle", "1.5"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, info


def finish_sim(proc: subprocess.Popen[str]) -> dict:
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else {}


def feed_settings(info: dict, bootstrap: str, registry_url: str, **kw: Any) -> RabbitXSettings:
    return RabbitXSettings(ws_url=info["ws"], rest_url=info["rest"], markets=info["markets"], account_id=None,
                           api_token=info["token"], refresh_token=info["refresh_token"], kafka_bootstrap=bootstrap,
                           registry_url=registry_url, health_port=free_port(), health_host="127.0.0.1",
                           create_topics=False, register_schemas=False, ws_ping_interval=None,
                           watchdog_seconds=60, **kw)


class AckLatency:
    """on_ack hook: latency of each acknowledged event from its venue timestamp (the sim's send time).

    One event in 50 is decoded to split the latency into wire (sim send -> producer receive_ts) and
    producer (receive_ts -> Kafka ack).
    """

    def __init__(self, registry: ContractRegistry) -> None:
        self.registry = registry
        self.samples: list[float] = []
        self.wire: list[float] = []
        self.recording = False
        self._n = 0

    def __call__(self, items: list[tuple[str, bytes, bytes, float | None]]) -> None:
        if not self.recording:
            return
        now = time.time()
        self.samples.extend(now - stamp for _, _, _, stamp in items if stamp is not None)
        for _, _, value, stamp in items:
            self._n += 1
            if self._n % 50 == 0 and stamp is not None:
                rec = self.registry.decode(value)
                self.wire.append(rec["receive_ts"] / 1e6 - stamp)


async def run_phase(name: str, rate: float, seconds: float, bootstrap: str, registry: ContractRegistry,
                    registry_url: str, market: str, batch: int = 1) -> dict[str, Any]:
    proc, info = start_sim(rate, seconds, market, batch)
    lat = AckLatency(registry)
    settings = feed_settings(info, bootstrap, registry_url)
    publisher = KafkaPublisher(settings, client_id="bench-rabbitx", on_ack=lat)
    await publisher.start()
    feed = RabbitXFeed(settings, registry=registry, publisher=publisher, serve_health=False)
    task = asyncio.create_task(feed.run())
    try:
        while feed.metrics.frames == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(4.0 if rate == 0 else 2.0)  # warm-up (at max rate: until the buffer is steady)
        lat.recording = True
        f0, m0, a0 = feed.metrics.frames, feed.metrics.count("messages_in"), publisher.acked
        c0, t0 = time.process_time(), time.monotonic()
        await asyncio.sleep(max(1.0, seconds - 6.0))
        f1, m1, a1 = feed.metrics.frames, feed.metrics.count("messages_in"), publisher.acked
        c1, t1 = time.process_time(), time.monotonic()
        lat.recording = False
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.stop(timeout=30)
    sim = finish_sim(proc)
    wall, cpu = t1 - t0, c1 - c0
    frames = f1 - f0
    out: dict[str, Any] = {
        "phase": name, "target_rate": rate or "max", "messages_per_frame": batch, "window_s": round(wall, 2),
        "frames": frames, "frames_per_s": round(frames / wall), "producer_cpu_s": round(cpu, 2),
        "frames_per_cpu_s": round(frames / cpu) if cpu else None, "messages_per_s": round((m1 - m0) / wall),
        "kafka_acked_per_s": round((a1 - a0) / wall), "parse_errors": feed.metrics.count("parse_errors"),
        "gaps": feed.metrics.count("gaps"), "reconnects": feed.metrics.count("reconnects"),
        "sim_cpu_s": sim.get("sim_cpu_s"), "rss_mb": round(rss_mb(), 1),
    }
    if lat.samples:
        s = sorted(lat.samples)
        q = statistics.quantiles(s, n=100)
        out.update(latency_ms_p50=round(q[49] * 1000, 2), latency_ms_p99=round(q[98] * 1000, 2),
                   latency_ms_max=round(s[-1] * 1000, 2), latency_samples=len(s))
    if len(lat.wire) > 10:
        w = statistics.quantiles(sorted(lat.wire), n=100)
        out.update(wire_ms_p50=round(w[49] * 1000, 2), wire_ms_p99=round(w[98] * 1000, 2))
    return out


async def run_outage(outage_s: float, registry: ContractRegistry, registry_url: str, market: str) -> dict[str, Any]:
    from marketpipe.infra.processes import LocalKafka
    from marketpipe.topics_admin import ensure_topics

    work = Path(tempfile.mkdtemp(prefix="bench-rabbitx-kafka-"))
    kafka = LocalKafka(work, free_port(), free_port())
    t_start = time.monotonic()
    await asyncio.to_thread(kafka.start)
    startup_s = time.monotonic() - t_start
    await asyncio.to_thread(ensure_topics, kafka.bootstrap, FEED_TOPICS)
    total = 10 + outage_s + 30
    proc, info = start_sim(5000, total, market)
    settings = feed_settings(info, kafka.bootstrap, registry_url)
    publisher = KafkaPublisher(settings, client_id="bench-rabbitx-outage")
    await publisher.start()
    feed = RabbitXFeed(settings, registry=registry, publisher=publisher, serve_health=False)
    task = asyncio.create_task(feed.run())
    samples: list[tuple[float, float, int, int]] = []
    try:
        while feed.metrics.frames == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(5)
        rss_before = rss_mb()
        acked_before = publisher.acked
        await asyncio.to_thread(kafka.stop)
        t0 = time.monotonic()
        while (el := time.monotonic() - t0) < outage_s:
            samples.append((round(el, 1), round(rss_mb(), 1), publisher.buffered(), feed.metrics.frames))
            await asyncio.sleep(1.0)
        rss_end_outage = rss_mb()
        t_restart = time.monotonic()
        await asyncio.to_thread(kafka.start)
        restart_s = time.monotonic() - t_restart
        acked_at_restart = publisher.acked
        t1 = time.monotonic()
        while publisher.acked == acked_at_restart and time.monotonic() - t1 < 30:
            await asyncio.sleep(0.2)
        recovered_after_s = time.monotonic() - t1
        await asyncio.sleep(5)
        acked_after = publisher.acked
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await publisher.stop(timeout=30)
        except Exception as exc:  # report, don't hide: the flush may time out if the broker is gone
            log.warning("publisher stop: %r", exc)
        proc.kill()
        finish_sim(proc)
        await asyncio.to_thread(kafka.stop)
    rss = [s[1] for s in samples]
    return {
        "phase": "outage", "broker_startup_s": round(startup_s, 1), "outage_s": outage_s, "rate": 5000,
        "rss_mb_before": round(rss_before, 1), "rss_mb_max_during": max(rss), "rss_mb_end_of_outage":
            round(rss_end_outage, 1), "publisher_buffer_limit": settings.publisher_buffer,
        "buffered_max": max(s[2] for s in samples), "acked_before_outage": acked_before,
        "broker_restart_s": round(restart_s, 1), "first_ack_after_restart_s": round(recovered_after_s, 1),
        "acked_after_recovery": acked_after - acked_at_restart, "reconnects": feed.metrics.count("reconnects"),
        "publisher_last_error": publisher.last_error, "publisher_retries": publisher.retries,
        "rss_timeline_mb": rss[:: max(1, len(rss) // 12)],
    }


async def main_async(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("MARKETPIPE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    registry_url = os.environ.get("MARKETPIPE_REGISTRY_URL", "http://127.0.0.1:18081/apis/ccompat/v7")
    registry = ContractRegistry(registry_url)
    await asyncio.to_thread(registry.register_all, FEED_TOPICS)
    # the feed runs with create_topics=False (as in the chart): on a fresh cluster the bench creates them, else
    # the publisher waits for partitions until stop() gives up (a run on a fresh `infra up` used to end so)
    created = await asyncio.to_thread(ensure_topics, bootstrap, FEED_TOPICS)
    if created:
        print(f"created topics {', '.join(created)}", flush=True)
    tag = f"BENCH{os.getpid() % 100000}-USD"
    phases = args.phases.split(",")
    results = []
    if "throughput" in phases:
        results.append(await run_phase("throughput", 0, args.seconds, bootstrap, registry, registry_url, tag))
        print(json.dumps(results[-1]), flush=True)
    if "batched" in phases:
        results.append(await run_phase("throughput-batched", 0, args.seconds, bootstrap, registry, registry_url,
                                       tag, batch=8))
        print(json.dumps(results[-1]), flush=True)
    if "latency" in phases:
        results.append(await run_phase("latency", 5000, args.seconds, bootstrap, registry, registry_url, tag))
        print(json.dumps(results[-1]), flush=True)
    if "outage" in phases:
        results.append(await run_outage(args.outage_seconds, registry, registry_url, tag))
        print(json.dumps(results[-1]), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phases", default="throughput,latency,outage")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--outage-seconds", type=float, default=60.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiokafka logs one ERROR per failed metadata refresh while the broker is down: thousands per second
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    prepare_process()  # as producers.rabbitx.main() does
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

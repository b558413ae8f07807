"""What open web-view streams cost the processor worker: CPU of the worker process with 0, then N, then M
event streams (/ui/stream/...) open on the live pipeline of `marketpipe dev` (RabbitX simulator -> producer ->
Kafka -> one worker), and what each stream carries.

    MARKETPIPE_KAFKA_BOOTSTRAP=... MARKETPIPE_REGISTRY_URL=... \\
        .venv/bin/python benchmarks/bench_webui_streams.py [--seconds 20] [--streams 10 50] [--rate 300]

Printed per step: worker CPU (% of one core, from /proc/<pid>/stat over the window), events folded per second
(the worker's /processor/stats), per stream the pushes and bytes per second; with the load average (uptime).
The 0-stream step is the peer measured in the same run: the difference is what the streams cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp

from marketpipe.dev.plan import PLANS, processor_component
from marketpipe.dev.supervisor import Component, Supervisor, python_module
from marketpipe.infra.ports import free_port

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def events(url: str) -> int:
    with urllib.request.urlopen(f"{url}/processor/stats?latency=false", timeout=5) as r:
        return sum(json.loads(r.read())["events"].values())


async def step(url: str, pid: int, n: int, seconds: float) -> None:
    stats = [{"pushes": 0, "bytes": 0} for _ in range(n)]
    markets = ["BTC-USD-PERP", "ETH-USD-PERP"]

    async def reader(http: aiohttp.ClientSession, i: int) -> None:
        async with http.get(f"{url}/ui/stream/rabbitx/{markets[i % 2]}?interval=1s") as r:
            async for chunk in r.content.iter_any():
                stats[i]["bytes"] += len(chunk)
                stats[i]["pushes"] += chunk.count(b"event: ")

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
        tasks = [asyncio.create_task(reader(http, i)) for i in range(n)]
        await asyncio.sleep(3.0)  # streams opened, first full pushes sent
        for s in stats:
            s["pushes"] = s["bytes"] = 0
        cpu0, ev0, t0 = cpu_seconds(pid), events(url), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, ev1, t1 = cpu_seconds(pid), events(url), time.monotonic()
        pushes = sum(s["pushes"] for s in stats)
        nbytes = sum(s["bytes"] for s in stats)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    wall = t1 - t0
    per = f"; per stream {pushes / n / wall:.1f} pushes/s, {nbytes / n / wall / 1024:.1f} KiB/s" if n else ""
    print(f"{n:3d} streams: worker CPU {100 * (cpu1 - cpu0) / wall:5.1f}% of a core, "
          f"{(ev1 - ev0) / wall:6.0f} events/s folded{per}; load {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--streams", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--rate", type=int, default=300, help="RabbitX simulator messages/s")
    args = ap.parse_args()
    bootstrap, registry = os.environ["MARKETPIPE_KAFKA_BOOTSTRAP"], os.environ["MARKETPIPE_REGISTRY_URL"]
    base = {"MARKETPIPE_KAFKA_BOOTSTRAP": bootstrap, "MARKETPIPE_REGISTRY_URL": registry,
            "MARKETPIPE_REGISTER_SCHEMAS": "false", "MARKETPIPE_CREATE_TOPICS": "false"}
    run = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-webui-{uuid.uuid4().hex[:6]}"
    sup = Supervisor(run / "logs", progress=lambda m: None)
    port = free_port()
    try:
        proc = sup.start(processor_component(base, port, f"bench-webui-{uuid.uuid4().hex[:6]}", run / "data",
                                             offset_reset="latest"))
        sim_port = free_port()
        plan = PLANS["rabbitx"]
        plan._sim = sup.start(Component("simulator-rabbitx", python_module(
            "simulators.rabbitx", "--port", str(sim_port), "--markets", "BTC-USD", "ETH-USD", "--rate",
            str(args.rate), "--max-seconds", "900"), ready_port=sim_port, announces=True))
        sup.start(plan.producer(base, free_port()))
        url = f"http://127.0.0.1:{port}"
        time.sleep(5)  # books snapshotted, candles started
        assert proc.pid is not None
        for n in [0, *args.streams]:
            asyncio.run(step(url, proc.pid, n, args.seconds))
    finally:
        sup.stop_all()


if __name__ == "__main__":
    main()

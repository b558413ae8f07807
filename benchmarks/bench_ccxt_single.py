"""Price of the generic path: the ccxt producer vs a minimal native Binance handler, same simulated stream.

    .venv/bin/python benchmarks/bench_ccxt_single.py [--frames 20000] [--changes 5] [--sink null|kafka]

A Binance simulator runs in a **separate process** (its CPU is not counted) and, once a client subscribes
to ``btcusdt@depth@100ms``, pushes ``--frames`` pre-rendered diff-depth frames as fast as the socket takes
them, each stamped ``E`` = wall time at send. The measured process runs one of:

- ``native``: aiohttp WS + orjson + the shared ``BookSynchronizer`` + ``EventEmitter`` (Avro), one
  BookUpdate per frame: what a hand-written venue module costs;
- ``ccxt-raw``: ccxt.pro ``watch_order_book`` alone, no events (the floor set by ccxt itself);
- ``ccxt``: the full ``CcxtFeed`` (journaled books, ``BookSynchronizer``, ``EventEmitter``).

Printed per mode: frames per CPU-second of the measuring process (``time.process_time``), wall time,
events published, and the latency from the frame's send time to the event reaching the sink (``null``:
handed to the publisher; ``kafka``: acknowledged by the broker at MARKETPIPE_KAFKA_BOOTSTRAP).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMBOL, MARKET = "BTCUSDT", "BTC-USDT"
NATIVE_TARGET = 30_000  # frames per CPU-second, the project's target for native feeds
_FIRST_FRAME_CPU: list[float] = []  # process CPU time when the first diff-depth frame arrived


def first_frame_seen() -> None:
    """CPU is counted from the first data frame: imports, exchange set-up and load_markets are excluded."""
    if not _FIRST_FRAME_CPU:
        _FIRST_FRAME_CPU.append(time.process_time())


def watch_first_frame(exchange: Any) -> None:
    original = exchange.handle_message

    def handle_message(client: Any, message: Any) -> Any:
        if not _FIRST_FRAME_CPU and isinstance(message, dict) and message.get("e") == "depthUpdate":
            first_frame_seen()
        return original(client, message)

    exchange.handle_message = handle_message


# ---------------------------------------------------------------------------------------------------------
# the simulator process
# ---------------------------------------------------------------------------------------------------------
def serve(frames: int, changes: int, rate: float) -> None:
    from aiohttp import web

    from simulators.binance import BinanceSimulator, MarketModel

    async def main() -> None:
        truth = MarketModel(SYMBOL, "BTC", "USDT", seed=7, levels=200)
        sim = BinanceSimulator([truth])
        script = MarketModel(SYMBOL, "BTC", "USDT", seed=7, levels=200)  # same seed: evolves from the same book
        rendered: list[tuple[list, list, int, int]] = []
        u = sim.update_ids[SYMBOL]
        for _ in range(frames):
            r = script.step(changes, trade_probability=0.0)
            bids = [[c.price, c.size] for c in r.changes if c.side == "bid"]
            asks = [[c.price, c.size] for c in r.changes if c.side == "ask"]
            rendered.append((bids, asks, u + 1, u + len(r.changes)))
            u += len(r.changes)
        final_u = u

        original = sim._command

        async def command(conn: Any, text: str) -> None:
            await original(conn, text)
            if f"{SYMBOL.lower()}@depth@100ms" in conn.streams and not getattr(conn, "blasting", False):
                conn.blasting = True
                asyncio.get_running_loop().create_task(blast(conn.ws))

        async def blast(ws: web.WebSocketResponse) -> None:
            await asyncio.sleep(0.2)  # let the client fetch its REST snapshot first (both paths alike)
            start = time.perf_counter()
            for i, (bids, asks, first, last) in enumerate(rendered):
                frame = orjson.dumps({"e": "depthUpdate", "E": time.time_ns() // 1_000_000, "s": SYMBOL,
                                      "U": first, "u": last, "b": bids, "a": asks}).decode()
                await ws.send_str(frame)
                if rate > 0:  # paced: one frame every 1/rate s (for latency)
                    ahead = start + (i + 1) / rate - time.perf_counter()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                elif i % 64 == 0:
                    await asyncio.sleep(0)

        sim._command = command  # type: ignore[method-assign]
        await sim.start()
        print(f"READY {sim.port} {final_u}", flush=True)
        await asyncio.sleep(600)  # the benchmark kills us long before

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------------------
# sinks
# ---------------------------------------------------------------------------------------------------------
class NullPublisher:
    """Counts what it is handed; latency = now - stamp (the frame's send time)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.count = 0

    async def publish(self, topic: Any, key: bytes, value: bytes, *, stamp: float | None = None) -> None:
        self.count += 1
        if stamp is not None:
            self.latencies.append(time.time() - stamp)

    async def flush(self) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self, timeout: float | None = None) -> None:
        return None


async def kafka_publisher(latencies: list[float]) -> Any:
    from marketpipe.settings import PublisherSettings
    from producers.publisher import KafkaPublisher

    def on_ack(items: list[tuple[str, bytes, bytes, float | None]]) -> None:
        now = time.time()
        latencies.extend(now - stamp for _, _, _, stamp in items if stamp is not None)

    publisher = KafkaPublisher(PublisherSettings(), client_id="bench-ccxt", on_ack=on_ack)
    await publisher.start()
    return publisher


# ---------------------------------------------------------------------------------------------------------
# the measured clients
# ---------------------------------------------------------------------------------------------------------
async def run_native(port: int, final_u: int, emitter: Any, metrics: Any) -> int:
    """Minimal native Binance spot handler: buffer, REST snapshot, U/u bridge, one DELTA per frame."""
    import aiohttp

    from producers.core.book import BookSynchronizer
    from producers.core.numbers import now_micros

    sync = BookSynchronizer("binance-native", MARKET, SYMBOL, publish=emitter.book, metrics=metrics,
                            on_crossed="count")
    frames = 0
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}/ws/0") as ws:
        await ws.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": [f"{SYMBOL.lower()}@depth@100ms"],
                                        "id": 1}).decode())
        buffered: list[dict[str, Any]] = []
        last_u: int | None = None
        async for msg in ws:
            data = orjson.loads(msg.data)
            if "result" in data:  # the SUBSCRIBE ack: fetch the snapshot now
                async with http.get(f"http://127.0.0.1:{port}/api/v3/depth",
                                    params={"symbol": SYMBOL, "limit": "1000"}) as r:
                    snap = orjson.loads(await r.read())
                last_u = snap["lastUpdateId"]
                await sync.snapshot(snap["bids"], snap["asks"], sequence=last_u, exchange_ts=now_micros(),
                                    receive_ts=now_micros())
                continue
            frames += 1
            first_frame_seen()
            buffered.append(data)
            if last_u is None:
                continue
            for d in buffered:
                if d["u"] <= last_u:
                    continue
                receive_ts = now_micros()
                await sync.delta(d["b"], d["a"], sequence=d["u"], prev_sequence=d["U"] - 1,
                                 exchange_ts=d["E"] * 1000, receive_ts=receive_ts)
                last_u = d["u"]
            buffered.clear()
            if last_u >= final_u:
                break
    return frames


async def run_ccxt_raw(port: int, final_u: int) -> int:
    from producers.ccxt.exchange import build_exchange

    ex = build_exchange(_ccxt_settings(port, "raw"))
    watch_first_frame(ex)
    try:
        while True:
            ob = await ex.watch_order_book("BTC/USDT", 1000)
            if (ob.get("nonce") or 0) >= final_u:
                return 0
    finally:
        await ex.close()


def _ccxt_settings(port: int, venue: str) -> Any:
    from producers.ccxt import CcxtSettings

    return CcxtSettings(exchange="binance", venue=venue, markets=["BTC/USDT"], channels=["book"], book_depth=1000,
                        rest_base_override=f"http://127.0.0.1:{port}",
                        url_overrides={"api.ws.spot": f"ws://127.0.0.1:{port}/ws"},
                        ccxt_options={"fetchMarkets": {"types": ["spot"]}}, create_topics=False,
                        register_schemas=False)


async def run_ccxt(port: int, final_u: int, registry: Any, publisher: Any) -> int:
    from producers.ccxt import CcxtFeed

    feed = CcxtFeed(_ccxt_settings(port, f"binance-bench-{uuid.uuid4().hex[:6]}"), registry=registry,
                    publisher=publisher, serve_health=False)
    watch_first_frame(feed.exchange)
    task = asyncio.create_task(feed.run())
    try:
        while True:
            await asyncio.sleep(0.005)
            sync = feed.books.get(MARKET)
            if sync is not None and (sync.last_sequence or 0) >= final_u:
                return 0
            if task.done():
                task.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def measure(mode: str, frames: int, changes: int, sink: str, rate: float) -> dict[str, Any]:
    from producers.core.emitter import EventEmitter
    from producers.core.metrics import FeedMetrics
    from schemas.registry import ContractRegistry

    server = subprocess.Popen([sys.executable, __file__, "--serve", "--frames", str(frames), "--changes",
                               str(changes), "--rate", str(rate)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline().split()
        port, final_u = int(line[1]), int(line[2])
        registry = ContractRegistry(os.environ.get("MARKETPIPE_REGISTRY_URL",
                                                   "http://127.0.0.1:18081/apis/ccompat/v7"))
        await asyncio.to_thread(registry.register_all)
        if sink == "kafka":  # the feed runs with create_topics=False, as in the chart
            from marketpipe.topics_admin import ensure_topics
            from producers.core.emitter import FEED_TOPICS

            await asyncio.to_thread(ensure_topics, os.environ.get("MARKETPIPE_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
                                    FEED_TOPICS)
        latencies: list[float] = []
        publisher: Any
        if sink == "kafka":
            publisher = await kafka_publisher(latencies)
        else:
            publisher = NullPublisher()
            latencies = publisher.latencies
        metrics = FeedMetrics(f"bench-{mode}")
        emitter = EventEmitter(f"binance-bench-{mode}", registry, publisher, metrics)
        await emitter.prepare()
        import ccxt.pro  # noqa: F401 - imported outside the measurement

        _FIRST_FRAME_CPU.clear()
        wall0 = time.perf_counter()
        if mode == "native":
            await run_native(port, final_u, emitter, metrics)
        elif mode == "ccxt-raw":
            await run_ccxt_raw(port, final_u)
        else:
            await run_ccxt(port, final_u, registry, publisher)
        await publisher.flush()
        cpu, wall = time.process_time() - _FIRST_FRAME_CPU[0], time.perf_counter() - wall0
        events = metrics.count("events_out") if mode == "native" else len(latencies)
        if sink == "kafka":
            await publisher.stop()
        lat = sorted(latencies)
        return {"mode": mode, "frames": frames, "cpu_s": cpu, "wall_s": wall, "fps_cpu": frames / cpu,
                "fps_wall": frames / wall, "events": events,
                "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
                "p99_ms": 1000 * lat[int(len(lat) * 0.99) - 1] if len(lat) > 1 else float("nan")}
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=5, help="level changes per diff-depth frame")
    parser.add_argument("--sink", choices=["null", "kafka"], default="null")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="frames per second sent (0: as fast as the socket takes them); pace it for latency")
    parser.add_argument("--modes", default="native,ccxt-raw,ccxt")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.frames, args.changes, args.rate)
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    pace = f"{args.rate:,.0f} frames/s" if args.rate else "unpaced (saturation)"
    print(f"{args.frames} Binance diff-depth frames, {args.changes} level changes each, {pace}, sink={args.sink}, "
          f"200-level book; simulator in its own process")
    print(f"{'mode':10} {'frames/CPU-s':>13} {'frames/wall-s':>14} {'CPU s':>7} {'events':>7} "
          f"{'p50 ms':>8} {'p99 ms':>8}")
    results = {}
    for mode in args.modes.split(","):
        r = asyncio.run(measure(mode, args.frames, args.changes, args.sink, args.rate))
        results[mode] = r
        print(f"{mode:10} {r['fps_cpu']:13,.0f} {r['fps_wall']:14,.0f} {r['cpu_s']:7.2f} {r['events']:7d} "
              f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f}", flush=True)
    if "native" in results and "ccxt" in results:
        ratio = results["native"]["fps_cpu"] / results["ccxt"]["fps_cpu"]
        print(f"ccxt path costs {ratio:.2f}x the native handler's CPU per frame "
              f"(target: ccxt >= {NATIVE_TARGET / 3:,.0f} frames/CPU-s, i.e. within 3x of {NATIVE_TARGET:,})")


if __name__ == "__main__":
    main()

"""Every trade once at full speed: ``marketpipe produce binance`` (the ccxt producer) against a seeded Binance burst, counted in Kafka.

    MARKETPIPE_KAFKA_BOOTSTRAP=... MARKETPIPE_REGISTRY_URL=... \\
        .venv/bin/python benchmarks/bench_ccxt_trades.py [--frames 200000] [--trades-limit 1000]

The Binance simulator (4 markets, seeded) runs in this process; the producer is the real CLI in a
subprocess (book + trades, ``tradesLimit`` as given, ccxt's default 1000). Once every stream is subscribed
the simulator sends ``--frames`` depth + aggTrade frames as fast as the sockets take them. Then Kafka is
read back: per market, the trades (count, distinct ids, ids equal to the simulator's aggTrades in order)
and the book replayed from BookUpdates against the simulator's book. Printed: the figures, and
``RESULT OK`` / ``RESULT FAIL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.registry import ContractRegistry  # noqa: E402
from schemas.topics import BOOK, TRADES, market_key  # noqa: E402
from simulators.binance import BinanceSimulator, MarketModel  # noqa: E402
from tests.feedcore.book_replay import replay_book  # noqa: E402
from tests.feedcore.kafka_reader import end_offsets, read_events  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


async def main(args: argparse.Namespace) -> int:
    bootstrap = os.environ["MARKETPIPE_KAFKA_BOOTSTRAP"]
    registry = ContractRegistry(os.environ["MARKETPIPE_REGISTRY_URL"])
    registry.register_all()
    sim = BinanceSimulator([MarketModel(s, s[:-4], "USDT", seed=100 + i) for i, s in enumerate(SYMBOLS)])
    await sim.start()
    venue = f"binbench-{uuid.uuid4().hex[:8]}"
    start = await end_offsets(bootstrap, (BOOK, TRADES))
    env = {**os.environ, "MARKETPIPE_EXCHANGE": "binance", "MARKETPIPE_VENUE": venue,
           "MARKETPIPE_MARKETS": ",".join(f"{s[:-4]}/USDT" for s in SYMBOLS), "MARKETPIPE_CHANNELS": "book,trades",
           "MARKETPIPE_BOOK_DEPTH": "100", "MARKETPIPE_REST_BASE_OVERRIDE": sim.rest_url,
           "MARKETPIPE_URL_OVERRIDES": json.dumps({"api.ws.spot": sim.ws_url}),
           "MARKETPIPE_CCXT_OPTIONS": json.dumps({"fetchMarkets": {"types": ["spot"]},
                                                  "tradesLimit": args.trades_limit}),
           "MARKETPIPE_HEALTH_PORT": str(args.health_port), "MARKETPIPE_LOG_LEVEL": "WARNING"}
    cli = Path(sys.executable).with_name("marketpipe")  # the console script next to this interpreter
    proc = subprocess.Popen([str(cli), "produce", "binance"], env=env)
    ok = True
    try:
        streams = [f"{s.lower()}@{k}" for s in SYMBOLS for k in ("aggTrade", "depth@100ms")]
        deadline = time.monotonic() + 60
        while not (all(sim.subscribers(s) for s in streams) and sim.requests["/api/v3/depth"] >= len(SYMBOLS)):
            if time.monotonic() > deadline or proc.poll() is not None:
                print("producer did not subscribe", flush=True)
                return 1
            await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        frames = await sim.burst(args.frames)
        sent_s = time.perf_counter() - t0
        trades_sent = sum(len(v) for v in sim.agg_trades.values())
        print(f"sent {frames} frames ({trades_sent} aggTrades, {frames - trades_sent} depth) in {sent_s:.1f} s "
              f"({frames / sent_s:.0f} frames/s)", flush=True)
        deadline = time.monotonic() + args.timeout
        for symbol in SYMBOLS:
            market = f"{symbol[:-4]}-USDT"
            truth = [str(a.agg_id) for a in sim.agg_trades[symbol]]
            key = market_key(venue, market)
            while True:
                trades = await read_events(bootstrap, registry, TRADES, start[TRADES.name], keys={key})
                if len(trades) >= len(truth) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
            ids = [t["trade_id"] for t in trades]
            gaps = sum(1 for t in trades if t.get("gap"))
            exact = ids == truth
            while True:
                book = replay_book(await read_events(bootstrap, registry, BOOK, start[BOOK.name], keys={key}))
                m = sim.markets[symbol]
                book_ok = book.in_sync and book.bids == dict(m.bids) and book.asks == dict(m.asks)
                if book_ok or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
            print(f"{market}: aggTrades sent {len(truth)}, in Kafka {len(ids)} ({len(set(ids))} distinct, "
                  f"{gaps} gap markers), ids equal in order: {exact}; book equals truth: {book_ok} "
                  f"(resets {book.resets})", flush=True)
            ok = ok and exact and book_ok
        print(f"total seconds from first frame to verified: {time.perf_counter() - t0:.1f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        await sim.stop()
    print("RESULT", "OK" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--trades-limit", type=int, default=1000)
    p.add_argument("--health-port", type=int, default=0)
    p.add_argument("--timeout", type=float, default=900.0)
    sys.exit(asyncio.run(main(p.parse_args())))

"""``python -m simulators.rabbitx``: serve the simulator, or a bounded high-rate run for benchmarks.

Prints one JSON line ``{"ws", "rest", "token", "refresh_token", "markets"}`` when listening. With
``--firehose RATE`` it waits for an ``orderbook`` subscriber, pushes book deltas at RATE messages/s
(0 = as fast as the client reads) for ``--seconds``, prints one JSON line of figures and exits. Every run is
bounded by ``--max-seconds``.
Without ``--firehose`` it serves a normal mixed flow (book, trades, market, account changes) at
``--rate`` messages/s (0 = only what clients subscribe to: snapshots and pings) until ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from simulators.rabbitx.server import DEFAULT_MARKETS, RabbitXSimulator, SimConfig


async def _run(args: argparse.Namespace) -> int:
    config = SimConfig(markets={m: DEFAULT_MARKETS.get(m, ("100", "0.01")) for m in args.markets}, batch_max=args.batch,
                       ping_interval=args.ping_interval, max_queue=args.max_queue, seed=args.seed,
                       profile_id=args.profile_id, token_ttl=args.token_ttl)
    sim = RabbitXSimulator(config, port=args.port)
    await sim.start()
    print(json.dumps({"ws": sim.ws_url, "rest": sim.rest_url, "token": sim.issue_token(),
                      "refresh_token": config.refresh_token, "markets": args.markets,
                      "profile_id": config.profile_id}), flush=True)
    deadline = time.monotonic() + args.max_seconds
    try:
        if args.firehose is None:
            t0, sent = time.monotonic(), 0
            while (now := time.monotonic()) < deadline:
                due = int((now - t0) * args.rate) - sent
                if due > 0:
                    sim.generate(due)
                    sent += due
                await asyncio.sleep(0.05)
            return 0
        channel = f"orderbook:{args.markets[0]}"
        while not sim.subscribers(channel) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(args.settle)
        cpu0, t0 = time.process_time(), time.monotonic()
        frames0 = sim.stats["frames_sent"]
        sent = await sim.firehose(args.firehose, min(args.seconds, max(0.0, deadline - time.monotonic())),
                                  args.markets[0])
        wall = time.monotonic() - t0
        print(json.dumps({"generated": sent, "frames_sent": sim.stats["frames_sent"] - frames0,
                          "wall_s": round(wall, 3), "sim_cpu_s": round(time.process_time() - cpu0, 3),
                          "stats": dict(sim.stats)}), flush=True)
        await asyncio.sleep(args.settle)
        return 0
    finally:
        await sim.stop()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port, announced on stdout)")
    p.add_argument("--markets", nargs="+", default=["BTC-USD"], help="RabbitX market ids to serve")
    p.add_argument("--firehose", type=float, default=None, metavar="RATE",
                   help="benchmark mode: book messages/s to the first subscriber, 0 = unthrottled")
    p.add_argument("--seconds", type=float, default=10.0, help="firehose: how long to send")
    p.add_argument("--rate", type=float, default=50.0, help="normal-flow messages/s when not in firehose mode")
    p.add_argument("--profile-id", default="13579", help="the simulated account's profile id")
    p.add_argument("--token-ttl", type=float, default=48 * 3600.0, help="seconds a JWT it issues stays valid")
    p.add_argument("--batch", type=int, default=8, help="messages per frame at most")
    p.add_argument("--ping-interval", type=float, default=25.0, help="seconds between Centrifugo pings")
    p.add_argument("--max-queue", type=int, default=100_000,
                   help="messages queued per slow client before it is cut off")
    p.add_argument("--settle", type=float, default=1.0, help="firehose: seconds to wait before and after sending")
    p.add_argument("--seed", type=int, default=1, help="random seed of the market activity")
    p.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this many seconds")


def serve(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.rabbitx", description=__doc__)
    add_arguments(p)
    return serve(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

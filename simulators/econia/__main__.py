"""``python -m simulators.econia``: a DSS look-alike with random market activity, bounded by ``--max-seconds``.

Prints the WebSocket base, the REST URL and a ready-made token (dev secret) as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from simulators.econia.server import DEV_SECRET, EconiaSimulator, mint_token


async def _run(args: argparse.Namespace) -> int:
    sim = EconiaSimulator(port=args.port, activity_interval=args.interval, ping_interval=args.ping_interval)
    sim.reorder_probability, sim.drop_probability = args.reorder_probability, args.drop_probability
    sim.exchange.crossing_orders = args.crossing_orders
    await sim.start()
    token = mint_token(DEV_SECRET, ["fill_event", "place_limit_order_event", "change_order_size_event",
                                    "cancel_order_event", "market_registration_event"], ttl=args.max_seconds)
    print(json.dumps({"ws": sim.ws_base, "rest": sim.rest_url, "token": token}), flush=True)
    deadline = time.monotonic() + args.max_seconds
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    finally:
        await sim.stop()
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0,
                   help="PostgREST port on 127.0.0.1 (0: any free port; the WebSocket port is announced too)")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between random transactions")
    p.add_argument("--ping-interval", type=float, default=30.0, help="seconds between WebSocket pings")
    p.add_argument("--max-seconds", type=float, default=600.0, help="stop by itself after this many seconds")
    p.add_argument("--reorder-probability", type=float, default=0.0,
                   help="share of transactions notified after the next one (out of order)")
    p.add_argument("--drop-probability", type=float, default=0.0,
                   help="share of notifications silently never sent (rows stay in PostgREST)")
    p.add_argument("--crossing-orders", action="store_true", help="also place limit orders that cross the spread")


def serve(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.econia", description=__doc__)
    add_arguments(p)
    return serve(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

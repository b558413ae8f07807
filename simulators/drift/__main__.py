"""``python -m simulators.drift``: run the simulator, or a bounded high-rate (firehose) run for benchmarks.

Firehose: waits for a client to subscribe to a book channel, sends frames at ``--rate`` (0 = as fast as
possible) for ``--seconds``, prints one JSON line of figures, then exits. Every run is bounded by
``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from simulators.drift.markets import DEFAULT_MARKETS
from simulators.drift.server import DriftSimulator


async def _run(args: argparse.Namespace) -> int:
    sim = DriftSimulator(DEFAULT_MARKETS, port=args.port, compress=not args.no_compress,
                         book_interval=args.book_interval, heartbeat_interval=args.heartbeat_interval)
    await sim.start(publish=args.firehose is None)
    print(json.dumps({"ws": sim.ws_url, "rest": sim.rest_url}), flush=True)
    deadline = time.monotonic() + args.max_seconds
    try:
        if args.firehose is None:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            return 0
        while sim.subscribers() == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(args.settle)
        cpu0, t0 = time.process_time(), time.monotonic()
        sent = await sim.firehose(args.firehose, min(args.seconds, max(deadline - time.monotonic(), 0)))
        wall = time.monotonic() - t0
        await asyncio.sleep(args.settle)
        print(json.dumps({"frames": sent, "wall_s": round(wall, 3), "sim_cpu_s": round(time.process_time() - cpu0, 3),
                          **{k: v for k, v in sim.stats.items()}}), flush=True)
        return 0
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.drift")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--firehose", type=float, default=None, metavar="RATE", help="frames/s, 0 = unthrottled")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--settle", type=float, default=0.5)
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--book-interval", type=float, default=0.4)
    p.add_argument("--heartbeat-interval", type=float, default=5.0)
    p.add_argument("--no-compress", action="store_true")
    return asyncio.run(_run(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

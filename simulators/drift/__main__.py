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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port, announced on stdout)")
    p.add_argument("--firehose", type=float, default=None, metavar="RATE",
                   help="benchmark mode: book frames/s to the first subscriber, 0 = unthrottled")
    p.add_argument("--seconds", type=float, default=10.0, help="firehose: how long to send")
    p.add_argument("--settle", type=float, default=0.5, help="firehose: seconds to wait before and after sending")
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop by itself after this many seconds")
    p.add_argument("--book-interval", type=float, default=0.4, help="seconds between grouped book snapshots")
    p.add_argument("--heartbeat-interval", type=float, default=5.0, help="seconds between heartbeat messages")
    p.add_argument("--no-compress", action="store_true", help="refuse permessage-deflate")


def serve(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.drift", description=__doc__)
    add_arguments(p)
    return serve(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

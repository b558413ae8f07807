"""Run the OKX simulator by hand: ``python -m simulators.okx --port 18766 --rate 10 --duration 600``.

Steps the market ``--rate`` times a second for at most ``--duration`` seconds (then stops by itself).
``--gap-every`` / ``--corrupt-every`` / ``--drop-every`` inject a prevSeqId gap, a checksum-only corruption
and a disconnect every N steps (0: never). Credentials for the private channels: ``--api-key``,
``--secret``, ``--passphrase``. Point ccxt at it with ``MARKETPIPE_REST_BASE_OVERRIDE=http://127.0.0.1:PORT``
and ``MARKETPIPE_URL_OVERRIDES='{"api.ws": "ws://127.0.0.1:PORT/ws/v5"}'``.
"""

from __future__ import annotations

import argparse
import asyncio

from simulators.binance import MarketModel
from simulators.okx import OkxSimulator


async def run(args: argparse.Namespace) -> None:
    models = [MarketModel(s.replace("/", "-"), *s.split("/"), seed=i + 1, price_decimals=1)
              for i, s in enumerate(args.markets)]
    sim = OkxSimulator(models, api_key=args.api_key, secret=args.secret, passphrase=args.passphrase, port=args.port)
    await sim.start()
    print(f"okx simulator on {sim.rest_url} (ws {sim.ws_url}) for {args.duration:.0f}s", flush=True)
    loop = asyncio.get_running_loop()
    end = loop.time() + args.duration
    n = 0
    try:
        while loop.time() < end:
            n += 1
            for m in models:
                if args.gap_every and n % args.gap_every == 0:
                    sim.gap_next(m.symbol)
                if args.corrupt_every and n % args.corrupt_every == 0:
                    sim.corrupt_next(m.symbol)
            if args.drop_every and n % args.drop_every == 0:
                await sim.disconnect_all()
            await sim.step()
            await asyncio.sleep(1 / args.rate)
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=18766)
    p.add_argument("--markets", nargs="+", default=["BTC/USDT"])
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--gap-every", type=int, default=0)
    p.add_argument("--corrupt-every", type=int, default=0)
    p.add_argument("--drop-every", type=int, default=0)
    p.add_argument("--api-key", default="sim-key")
    p.add_argument("--secret", default="sim-secret")
    p.add_argument("--passphrase", default="sim-pass")
    asyncio.run(run(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    main()

"""Run the Binance simulator by hand: ``python -m simulators.binance --port 18765 --rate 10 --duration 600``.

Steps the market ``--rate`` times a second for at most ``--duration`` seconds (then stops by itself).
Every ``--gap-every`` steps one diff-depth event is withheld (0: never); every ``--drop-every`` steps all
sockets are closed (0: never). Point ccxt at it with ``MARKETPIPE_REST_BASE_OVERRIDE=http://127.0.0.1:PORT``
and ``MARKETPIPE_URL_OVERRIDES='{"api.ws.spot": "ws://127.0.0.1:PORT/ws"}'``.
"""

from __future__ import annotations

import argparse
import asyncio

from simulators.binance import BinanceSimulator, MarketModel


async def run(args: argparse.Namespace) -> None:
    models = [MarketModel(s.replace("/", ""), *s.split("/"), seed=i + 1) for i, s in enumerate(args.markets)]
    sim = BinanceSimulator(models, port=args.port)
    await sim.start()
    print(f"binance simulator on {sim.rest_url} (ws {sim.ws_url}) for {args.duration:.0f}s", flush=True)
    loop = asyncio.get_running_loop()
    end = loop.time() + args.duration
    n = 0
    try:
        while loop.time() < end:
            n += 1
            if args.gap_every and n % args.gap_every == 0:
                for m in models:
                    sim.gap_next(m.symbol)
            if args.drop_every and n % args.drop_every == 0:
                await sim.disconnect_all()
            await sim.step()
            await asyncio.sleep(1 / args.rate)
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=18765)
    p.add_argument("--markets", nargs="+", default=["BTC/USDT"])
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--gap-every", type=int, default=0)
    p.add_argument("--drop-every", type=int, default=0)
    asyncio.run(run(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    main()

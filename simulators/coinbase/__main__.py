"""Run the Coinbase Advanced Trade simulator by hand: ``python -m simulators.coinbase --port 18767 --rate 10``.

Steps the markets ``--rate`` times a second for at most ``--duration`` seconds (then stops by itself).
``--gap-every`` withholds one ``l2_data`` update (a ``sequence_num`` gap) and ``--drop-every`` closes every
socket, each every N steps (0: never); ``--idle-close`` is how long a subscription may stay silent without
heartbeats before the simulator closes it (Coinbase: 60-90 s). Point ccxt at it with
``MARKETPIPE_REST_BASE_OVERRIDE=http://127.0.0.1:PORT`` and ``MARKETPIPE_URL_OVERRIDES='{"api.ws": "ws://127.0.0.1:PORT/ws"}'``.
"""

from __future__ import annotations

import argparse
import asyncio

from simulators.binance import MarketModel
from simulators.cex_cli import add_common_arguments, drive
from simulators.coinbase import CoinbaseSimulator


async def run(args: argparse.Namespace) -> None:
    models = [MarketModel(s.replace("/", "-"), base, quote, seed=i + 1, price_decimals=2)
              for i, s in enumerate(args.markets) for base, quote in [s.split("/", 1)]]
    sim = CoinbaseSimulator(models, port=args.port, idle_close_s=args.idle_close)
    await drive(sim, "coinbase", [m.symbol for m in models], args, [(args.gap_every, sim.gap_next)])


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, 18767)
    p.set_defaults(markets=["BTC/USD"])
    p.add_argument("--idle-close", type=float, default=75.0,
                   help="seconds a subscription may stay silent without heartbeats before it is closed")


def serve(args: argparse.Namespace) -> int:
    asyncio.run(run(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.coinbase", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return serve(p.parse_args(argv))


if __name__ == "__main__":
    main()

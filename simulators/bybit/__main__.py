"""Run the Bybit simulator by hand: ``python -m simulators.bybit --port 18768 --rate 10 --duration 600``.

Steps the markets (linear perpetuals, Bybit ids like ``BTCUSDT``) ``--rate`` times a second for at most
``--duration`` seconds. ``--gap-every`` / ``--restart-every`` / ``--drop-every`` skip a book delta (a gap in
``u``), restart the book service (a snapshot with ``u`` = 1) and disconnect every N steps (0: never). Point
ccxt at it with ``MARKETPIPE_REST_BASE_OVERRIDE=http://127.0.0.1:PORT``,
``MARKETPIPE_URL_OVERRIDES='{"api.ws.public.linear": "ws://127.0.0.1:PORT/v5/public/linear"}'`` and
``MARKETPIPE_CCXT_OPTIONS='{"fetchMarkets": {"types": ["linear"]}}'``.
"""

from __future__ import annotations

import argparse
import asyncio

from simulators.binance import MarketModel
from simulators.bybit import BybitSimulator
from simulators.cex_cli import add_common_arguments, drive


async def run(args: argparse.Namespace) -> None:
    models = [MarketModel(s.replace("/", ""), base, quote, seed=i + 1, price_decimals=1, size_decimals=3)
              for i, s in enumerate(args.markets) for base, quote in [s.split("/", 1)]]
    sim = BybitSimulator(models, port=args.port)
    await drive(sim, "bybit", [m.symbol for m in models], args,
                [(args.gap_every, sim.skip_delta_next), (args.restart_every, sim.restart_service_next)])


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, 18768)
    p.set_defaults(markets=["BTC/USDT"])
    p.add_argument("--restart-every", type=int, default=0,
                   help="restart the book service (a snapshot with u = 1) every N steps (0: never)")


def serve(args: argparse.Namespace) -> int:
    asyncio.run(run(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.bybit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return serve(p.parse_args(argv))


if __name__ == "__main__":
    main()

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
from simulators.cex_cli import add_common_arguments, drive, parser


async def run(args: argparse.Namespace) -> None:
    models = [MarketModel(s.replace("/", ""), base, quote, seed=i + 1)
              for i, s in enumerate(args.markets) for base, quote in [s.split("/", 1)]]
    sim = BinanceSimulator(models, port=args.port)
    await drive(sim, "binance", [m.symbol for m in models], args, [(args.gap_every, sim.gap_next)])


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, 18765)


def serve(args: argparse.Namespace) -> int:
    asyncio.run(run(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    return serve(parser(__doc__, 18765, prog="python -m simulators.binance").parse_args(argv))


if __name__ == "__main__":
    main()

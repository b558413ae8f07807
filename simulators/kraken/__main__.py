"""Run the Kraken simulator by hand: ``python -m simulators.kraken --port 18767 --rate 10 --duration 600``.

Steps the markets ``--rate`` times a second for at most ``--duration`` seconds (then stops by itself).
``--gap-every`` / ``--wrong-checksum-every`` / ``--drop-every`` inject a lost book update (only the checksum
shows it), a wrong checksum and a disconnect every N steps (0: never). Point ccxt at it with
``MARKETPIPE_REST_BASE_OVERRIDE=http://127.0.0.1:PORT`` and
``MARKETPIPE_URL_OVERRIDES='{"api.ws.publicV2": "ws://127.0.0.1:PORT/v2"}'``; markets are v2 symbols
(``BTC/USD``).
"""

from __future__ import annotations

import argparse
import asyncio

from simulators.binance import MarketModel
from simulators.cex_cli import add_common_arguments, drive
from simulators.kraken import KrakenSimulator


async def run(args: argparse.Namespace) -> None:
    models = [MarketModel(s, base, quote, seed=i + 1, price_decimals=1)
              for i, s in enumerate(args.markets) for base, quote in [s.split("/", 1)]]
    sim = KrakenSimulator(models, port=args.port)
    await drive(sim, "kraken", [m.symbol for m in models], args,
                [(args.gap_every, sim.lose_update_next), (args.wrong_checksum_every, sim.wrong_checksum_next)])


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, 18767)
    p.set_defaults(markets=["BTC/USD"])
    p.add_argument("--wrong-checksum-every", type=int, default=0,
                   help="send one book update with a wrong checksum every N steps (0: never)")


def serve(args: argparse.Namespace) -> int:
    asyncio.run(run(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.kraken", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return serve(p.parse_args(argv))


if __name__ == "__main__":
    main()

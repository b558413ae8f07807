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
from simulators.cex_cli import add_common_arguments, drive
from simulators.okx import OkxSimulator


async def run(args: argparse.Namespace) -> None:
    models = [MarketModel(s.replace("/", "-"), base, quote, seed=i + 1, price_decimals=1)
              for i, s in enumerate(args.markets) for base, quote in [s.split("/", 1)]]
    sim = OkxSimulator(models, api_key=args.api_key, secret=args.secret, passphrase=args.passphrase, port=args.port)
    await drive(sim, "okx", [m.symbol for m in models], args,
                [(args.gap_every, sim.gap_next), (args.corrupt_every, sim.corrupt_next)])


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p, 18766)
    p.add_argument("--corrupt-every", type=int, default=0,
                   help="corrupt one book update's checksum every N steps (0: never)")
    p.add_argument("--api-key", default="sim-key", help="API key the private channels accept")
    p.add_argument("--secret", default="sim-secret", help="API secret the private channels accept")
    p.add_argument("--passphrase", default="sim-pass", help="API passphrase the private channels accept")


def serve(args: argparse.Namespace) -> int:
    asyncio.run(run(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.okx", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return serve(p.parse_args(argv))


if __name__ == "__main__":
    main()

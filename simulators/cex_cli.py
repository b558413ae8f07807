"""The hand-run loop shared by the CEX simulators (Binance, OKX): common options, then step the markets
``--rate`` times a second for at most ``--duration`` seconds, injecting faults every N steps."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from typing import Any


def add_common_arguments(p: argparse.ArgumentParser, port: int) -> None:
    p.add_argument("--port", type=int, default=port, help="port on 127.0.0.1 (REST and WebSocket)")
    p.add_argument("--markets", nargs="+", default=["BTC/USDT"], help="ccxt symbols to serve")
    p.add_argument("--rate", type=float, default=10.0, help="market steps per second")
    p.add_argument("--duration", type=float, default=600.0, help="stop by itself after this many seconds")
    p.add_argument("--gap-every", type=int, default=0, help="withhold one book update every N steps (0: never)")
    p.add_argument("--drop-every", type=int, default=0, help="close every socket every N steps (0: never)")


def parser(doc: str | None, port: int, prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, port)
    return p


async def drive(sim: Any, name: str, symbols: Sequence[str], args: argparse.Namespace,
                faults: Sequence[tuple[int, Callable[[str], None]]]) -> None:
    """Start ``sim``, step it until --duration, stop it. ``faults``: (every N steps, per-market injection);
    every --drop-every steps all sockets are closed (0: never)."""
    await sim.start()
    print(f"{name} simulator on {sim.rest_url} (ws {sim.ws_url}) for {args.duration:.0f}s", flush=True)
    loop = asyncio.get_running_loop()
    end = loop.time() + args.duration
    n = 0
    try:
        while loop.time() < end:
            n += 1
            for every, inject in faults:
                if every and n % every == 0:
                    for symbol in symbols:
                        inject(symbol)
            if args.drop_every and n % args.drop_every == 0:
                await sim.disconnect_all()
            await sim.step()
            await asyncio.sleep(1 / args.rate)
    finally:
        await sim.stop()

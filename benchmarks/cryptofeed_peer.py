"""The peer side of ``bench_ccxt.py``: cryptofeed's Binance feed, no-op callbacks, pointed at the simulator.

Run with the peer virtual environment's python (cryptofeed 2.4.1; ``bench_ccxt.py`` creates it), never
with marketpipe's: it imports nothing from this repository.

    <peer-venv>/bin/python benchmarks/cryptofeed_peer.py --base 127.0.0.1:PORT --symbols BTC-USDT,ETH-USDT \\
        --trades 75034 --final BTC-USDT=1000123,ETH-USDT=1000456

Cryptofeed as a new user runs it: ``FeedHandler`` with its default config (uvloop on; a current event loop
set first, which ``run()`` needs with today's uvloop), one ``Binance`` feed
for ``L2_BOOK`` + ``TRADES`` (its book kept in its C ``order_book``, a full-book callback per delta). The
callbacks only count (what a no-op callback costs plus one integer add): once every trade arrived and every
book reached its final update id, ``DONE <trades> <book callbacks>`` goes to stdout; the benchmark then
reads this process's CPU time from /proc and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from cryptofeed import FeedHandler
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint, WSAsyncConn
from cryptofeed.defines import L2_BOOK, TRADES
from cryptofeed.exchanges.binance import Binance


def simulated_binance(base: str) -> type[Binance]:
    """Binance with its endpoints at the simulator (the class attributes cryptofeed reads them from)."""

    class SimulatedBinance(Binance):
        # cryptofeed refuses a non-wss address when it builds a connection; the simulator speaks plain ws
        # (as it does to marketpipe): the address is switched back right after, before anything connects
        websocket_endpoints = [WebsocketEndpoint(f"wss://{base}")]
        rest_endpoints = [RestEndpoint(f"http://{base}", routes=Routes(
            "/api/v3/exchangeInfo", l2book="/api/v3/depth?symbol={}&limit={}", authentication="/api/v3/userDataStream"))]

        def connect(self) -> list[tuple[Any, ...]]:
            connections = super().connect()
            for conn, *_ in connections:
                if isinstance(conn, WSAsyncConn) and conn.address.startswith("wss://"):
                    conn.address = "ws://" + conn.address.removeprefix("wss://")
            return connections

    return SimulatedBinance


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True, help="host:port of the Binance simulator")
    p.add_argument("--symbols", required=True, help="cryptofeed symbols, comma separated (BTC-USDT,...)")
    p.add_argument("--trades", type=int, required=True, help="aggTrades the burst carries, all markets")
    p.add_argument("--final", required=True, help="SYMBOL=last update id of the burst, comma separated")
    p.add_argument("--log", default=os.devnull, help="cryptofeed's log file")
    args = p.parse_args()
    final = {k: int(v) for k, v in (item.split("=") for item in args.final.split(","))}
    state = {"trades": 0, "books": 0, "done": False}
    reached: set[str] = set()

    def check_done() -> None:
        if not state["done"] and state["trades"] >= args.trades and len(reached) == len(final):
            state["done"] = True
            print(f"DONE {state['trades']} {state['books']}", flush=True)

    async def on_trade(trade: Any, receipt_timestamp: float) -> None:
        state["trades"] += 1
        if state["trades"] >= args.trades:
            check_done()

    async def on_book(book: Any, receipt_timestamp: float) -> None:
        state["books"] += 1
        seq = book.sequence_number
        if seq is not None and seq >= final[book.symbol] and book.symbol not in reached:
            reached.add(book.symbol)
            check_done()

    fh = FeedHandler(config={"uvloop": True, "log": {"filename": args.log, "level": "WARNING"}})
    fh.add_feed(simulated_binance(args.base)(symbols=args.symbols.split(","), channels=[L2_BOOK, TRADES],
                                             callbacks={L2_BOOK: on_book, TRADES: on_trade}))
    # FeedHandler.run() calls asyncio.get_event_loop(), which uvloop >= 0.21 (what pip resolves today) refuses
    # without a current loop: give it one, from the policy FeedHandler set (a uvloop loop)
    asyncio.set_event_loop(asyncio.new_event_loop())
    fh.run()


if __name__ == "__main__":
    main()

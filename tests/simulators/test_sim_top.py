"""Every venue simulator answers ``GET /_sim/top?market=`` with its true top of book in human decimal text
(404 for an unknown market). Each simulator runs in-process on a free port; no broker needed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp

from marketpipe.infra.ports import free_port
from simulators.binance import BinanceSimulator, MarketModel
from simulators.bybit import BybitSimulator
from simulators.drift import DriftSimulator
from simulators.econia import EconiaSimulator
from simulators.econia.exchange import ASK, BID
from simulators.kraken import KrakenSimulator
from simulators.okx import OkxSimulator
from simulators.rabbitx import RabbitXSimulator, SimConfig


async def get_top(base: str, market: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/_sim/top", params={"market": market}) as r:
        return r.status, await r.json()


def check(body: dict[str, Any], market: str, bid: tuple[Decimal, Decimal], ask: tuple[Decimal, Decimal]) -> None:
    assert body["market"] == market
    got_bid = (Decimal(body["best_bid"]), Decimal(body["bid_size"]))
    got_ask = (Decimal(body["best_ask"]), Decimal(body["ask_size"]))
    assert (got_bid, got_ask) == (bid, ask), body
    assert got_bid[0] < got_ask[0]
    assert all(isinstance(body[k], str) for k in ("best_bid", "best_ask", "bid_size", "ask_size"))


async def check_unknown(base: str, market: str) -> None:
    status, body = await get_top(base, market)
    assert status == 404 and "error" in body, (status, body)


async def test_binance_and_okx_top() -> None:
    bn = BinanceSimulator([MarketModel("BTCUSDT", "BTC", "USDT", seed=3)], port=free_port())
    okx = OkxSimulator([MarketModel("BTC-USDT", "BTC", "USDT", seed=4, price_decimals=1)], port=free_port())
    kraken = KrakenSimulator([MarketModel("BTC/USD", "BTC", "USD", seed=5, price_decimals=1)], port=free_port())
    bybit = BybitSimulator([MarketModel("BTCUSDT", "BTC", "USDT", seed=6, price_decimals=1, size_decimals=3)],
                           port=free_port())
    sims: list[tuple[Any, str]] = [(bn, "BTCUSDT"), (okx, "BTC-USDT"), (kraken, "BTC/USD"), (bybit, "BTCUSDT")]
    for sim, market in sims:
        await sim.start()
        try:
            for _ in range(30):
                await sim.step()
            m = sim.markets[market]
            status, body = await get_top(sim.rest_url, market)
            assert status == 200, body
            check(body, market, (m.best_bid(), m.bids[m.best_bid()]), (m.best_ask(), m.asks[m.best_ask()]))
            await check_unknown(sim.rest_url, "NOPE")
        finally:
            await sim.stop()


async def test_drift_top() -> None:
    sim = DriftSimulator(port=free_port(), book_interval=0.05, trade_interval=0.03)
    await sim.start()
    try:
        await asyncio.sleep(0.3)
        sim.publishing = False  # the truth stands still while we compare
        for name in ("SOL-PERP", "BTC-PERP", "SOL"):
            book = sim.books[name]
            exp = book.market.base_precision_exp
            status, body = await get_top(sim.rest_url, name)
            assert status == 200, body
            (bp, bs), (ap, as_) = book.bids[0], book.asks[0]
            check(body, name, (Decimal(bp).scaleb(-6), Decimal(bs).scaleb(-exp)),
                  (Decimal(ap).scaleb(-6), Decimal(as_).scaleb(-exp)))
        await check_unknown(sim.rest_url, "NOPE-PERP")
    finally:
        await sim.stop()


async def test_econia_top() -> None:
    sim = EconiaSimulator(port=free_port(), seed=5)
    await sim.start()
    try:
        ex = sim.exchange
        for _ in range(60):
            ex.random_activity()
        for m in ex.markets:
            ex.place_limit_order(m, side=BID, price=990)
            ex.place_limit_order(m, side=ASK, price=1010)
        for m in ex.markets:
            sides: dict[bool, dict[int, int]] = {ASK: {}, BID: {}}
            for o in ex.resting[m.market_id]:
                if o.size > 0:
                    sides[o.side][o.price] = sides[o.side].get(o.price, 0) + o.size

            def human(ticks: int, lots: int, m=m) -> tuple[Decimal, Decimal]:  # type: ignore[no-untyped-def]
                price = Decimal(ticks * m.tick_size) / 10**m.quote_decimals / (Decimal(m.lot_size) / 10**m.base_decimals)
                return price, Decimal(lots * m.lot_size) / 10**m.base_decimals

            bid, ask = max(sides[BID]), min(sides[ASK])
            status, body = await get_top(sim.rest_url, str(m.market_id))
            assert status == 200, body
            check(body, str(m.market_id), human(bid, sides[BID][bid]), human(ask, sides[ASK][ask]))
        await check_unknown(sim.rest_url, "999")
        await check_unknown(sim.rest_url, "APT-USDC")
    finally:
        await sim.stop()


async def test_rabbitx_top() -> None:
    sim = RabbitXSimulator(SimConfig(seed=9), port=free_port())
    await sim.start()
    try:
        sim.generate(300)
        for market in ("BTC-USD", "ETH-USD"):
            m = sim.markets[market]
            bid, ask = max(m.bids), min(m.asks)
            status, body = await get_top(sim.rest_url, market)
            assert status == 200, body
            check(body, market, (bid, m.bids[bid]), (ask, m.asks[ask]))
        await check_unknown(sim.rest_url, "NOPE-USD")
    finally:
        await sim.stop()

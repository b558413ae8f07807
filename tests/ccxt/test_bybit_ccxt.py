"""ccxt producer against the Bybit v5 simulator (linear perpetuals), into the real Kafka + registry.

Two markets; the faults hit BTCUSDT only: a delta that never arrives (a gap in ``u``, which ccxt does not
check: our check must resync), a service-side snapshot reset mid-stream (``u`` = 1: not a gap, a new book),
and an outage (sockets refused while the market trades on). Kafka must hold, per market, exactly the
simulator's book, every trade the venue sent once (and one gap marker where the outage's trades are missing:
Bybit has no replay for them) and the ticker state (snapshot + merged partial deltas) the venue sent last. The control run switches our check
off: the lost delta then leaves Kafka's book wrong.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from producers.ccxt import CcxtSettings
from schemas.topics import BOOK, TICKER, TRADES
from simulators.binance import MarketModel
from simulators.bybit import BybitSimulator, trade_uuid
from tests.ccxt.harness import FeedRun, wait_for
from tests.feedcore.book_replay import replay_book

pytestmark = pytest.mark.timeout(120)

DEPTH = 50
MARKETS = {"BTCUSDT": ("BTC/USDT:USDT", "BTC-USDT-PERP"), "ETHUSDT": ("ETH/USDT:USDT", "ETH-USDT-PERP")}


def bybit_settings(cluster, registry_url: str, sim: BybitSimulator, venue: str, **kw) -> CcxtSettings:  # noqa: ANN001
    options = {"reconnect_initial_delay": 0.05, "reconnect_max_delay": 1.0, "book_depth": DEPTH, **kw}
    return CcxtSettings(
        kafka_bootstrap=cluster.bootstrap, registry_url=registry_url, create_topics=False, register_schemas=False,
        exchange="bybit", venue=venue, rest_base_override=sim.rest_url,
        url_overrides={"api.ws.public.linear": sim.ws_url}, ccxt_options={"fetchMarkets": {"types": ["linear"]}},
        **options)


def models(seed: int) -> list[MarketModel]:
    return [MarketModel("BTCUSDT", "BTC", "USDT", seed=seed, price_decimals=1, size_decimals=3),
            MarketModel("ETHUSDT", "ETH", "USDT", mid=Decimal("2000.00"), seed=seed + 100, price_decimals=2,
                        size_decimals=2)]


async def steps(sim: BybitSimulator, n: int) -> None:
    for _ in range(n):
        await sim.step()
        await asyncio.sleep(0.01)


def subscribed(sim: BybitSimulator, symbols: tuple[str, ...] = tuple(MARKETS)) -> bool:
    return all(sim.subscribers(t) for s in symbols for t in (f"orderbook.{DEPTH}.{s}", f"publicTrade.{s}",
                                                            f"tickers.{s}"))


async def test_bybit_books_trades_tickers_survive_u_gap_service_reset_and_disconnect(cluster, registry, registry_url,
                                                                                    unique):
    btc, eth = models(41)
    sim = BybitSimulator([btc, eth])
    await sim.start()
    settings = bybit_settings(cluster, registry_url, sim, f"bybit-{unique}", markets=[s for s, _ in MARKETS.values()],
                              channels=["book", "trades", "ticker"])
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: subscribed(sim), 20, "ccxt subscribed to orderbook, publicTrade and tickers")
            first_trade = {s: m.next_trade_id for s, m in sim.markets.items()}
            await steps(sim, 20)
            sim.skip_delta_next("BTCUSDT")  # u jumps by two
            await steps(sim, 5)
            await wait_for(lambda: sim.book_snapshots["BTCUSDT"] >= 2, 10, "resubscribe after the gap in u")
            await steps(sim, 20)
            sim.restart_service_next("BTCUSDT")  # a snapshot with u = 1 mid-stream
            await steps(sim, 20)
            sim.accepting = False  # an outage: the market trades on while the producer cannot connect
            await sim.disconnect_all()
            outage_from = btc.next_trade_id, eth.next_trade_id
            await steps(sim, 8)
            sim.accepting = True
            await wait_for(lambda: subscribed(sim), 20, "resubscribed after the outage")
            await steps(sim, 15)

            assert sim.refused == [], sim.refused  # never a second subscribe to a live topic
            assert sim.book_snapshots["ETHUSDT"] == 2  # the first subscription and the reconnect only
            for symbol, (_, market) in MARKETS.items():
                book, events = await run.book_until(market, lambda s=symbol: sim.true_book(s, DEPTH))
                expected = ["gap", "sequence-reset", "reconnect"] if symbol == "BTCUSDT" else ["reconnect"]
                assert book.resets == expected, (symbol, book.resets)
                assert book.problems == [] and book.duplicates == 0
                deltas = [e for e in events if e["kind"] == "DELTA"]
                assert len(deltas) > 30 and all(e["sequence"] is not None for e in deltas)

                # every trade the venue sent, once and in order; the outage's trades are gone (no replay, UUID
                # ids) and the stream says so: one open-ended gap marker where they are missing
                events = await run.events(TRADES, market)
                sent = [t for t in sim.markets[symbol].trades if t.trade_id in set(sim.trades_sent[symbol])
                        and t.trade_id >= first_trade[symbol]]
                missed = [t for t in sim.markets[symbol].trades if t.trade_id >= first_trade[symbol]
                          and t.trade_id not in set(sim.trades_sent[symbol])]
                assert len(sent) > 20 and missed and all(t.trade_id >= outage_from[symbol == "ETHUSDT"]
                                                         for t in missed)
                trades = [e for e in events if e["gap"] is None]
                assert [(t["trade_id"], t["price"], t["size"], t["side"]) for t in trades] == \
                    [(trade_uuid(t.trade_id), t.price, t.size, t.taker_side.upper()) for t in sent]
                gaps = [i for i, e in enumerate(events) if e["gap"] is not None]
                assert len(gaps) == 1, [events[i]["gap"] for i in gaps]
                marker = events[gaps[0]]
                before_outage = [t for t in sent if t.trade_id < outage_from[symbol == "ETHUSDT"]]
                assert marker["gap"]["reason"] == "reconnect"
                assert marker["gap"]["after_id"] == trade_uuid(before_outage[-1].trade_id)
                assert gaps[0] == len(before_outage)  # right after the last trade before the outage

                tickers = await run.events(TICKER, market)
                last = sim.last_ticker[symbol]  # the snapshot with every delta merged, as the venue holds it
                got = tickers[-1]
                assert (got["best_bid"], got["best_bid_size"], got["best_ask"], got["best_ask_size"],
                        got["last_price"], got["mark_price"], got["index_price"], got["volume_24h"]) == \
                    (last["bid1Price"], last["bid1Size"], last["ask1Price"], last["ask1Size"], last["lastPrice"],
                     last["markPrice"], last["indexPrice"], last["volume24h"])
            assert run.feed.resets.get("gap") == 1
    finally:
        await sim.stop()


async def test_bybit_without_the_u_check_keeps_a_wrong_book(cluster, registry, registry_url, unique):
    """The control: with our check off, ccxt applies the delta after the lost one as if nothing happened."""
    btc, _ = models(42)
    sim = BybitSimulator([btc])
    await sim.start()
    settings = bybit_settings(cluster, registry_url, sim, f"bybitraw-{unique}", markets=["BTC/USDT:USDT"],
                              channels=["book"], verify_checksums=False)
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.subscribers(f"orderbook.{DEPTH}.BTCUSDT"), 20, "subscribed")
            await steps(sim, 10)
            sim.skip_delta_next("BTCUSDT")
            await steps(sim, 2)
            book = replay_book(await run.events_reaching(BOOK, "BTC-USDT-PERP", btc.now_ms * 1000))
            assert book.in_sync and book.resets == []
            bids, asks = sim.true_book("BTCUSDT", DEPTH)
            assert (book.bids, book.asks) != (bids, asks)  # the lost delta's levels are wrong in Kafka
            assert sim.book_snapshots["BTCUSDT"] == 1
    finally:
        await sim.stop()

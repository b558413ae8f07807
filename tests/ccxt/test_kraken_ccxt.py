"""ccxt producer against the Kraken WebSocket v2 simulator, into the real Kafka + registry.

Two markets; the checksum faults hit BTC/USD only: a wrong checksum, a lost book update that only the next
update's checksum reveals (ccxt does not verify Kraken checksums: our verifier must, or the book stays wrong);
then an outage for both (disconnect, sockets refused while the market trades on: the missed trades come back
over REST). Kafka must hold, per market, exactly the simulator's top-10 book, every trade once and the
ticker the venue sent last; the resyncs are RESET ``checksum`` + a new snapshot of BTC/USD only.
The control run switches our verifier off: the lost update then leaves a wrong level in Kafka.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from producers.ccxt import CcxtSettings
from schemas.topics import BOOK, TICKER, TRADES
from simulators.binance import MarketModel
from simulators.kraken import KrakenSimulator
from tests.ccxt.harness import FeedRun, wait_for
from tests.feedcore.book_replay import replay_book

pytestmark = pytest.mark.timeout(120)

DEPTH = 10  # Kraken default; the simulated book holds more levels, so truncation is exercised
MARKETS = {"BTC/USD": "BTC-USD", "ETH/USD": "ETH-USD"}  # v2 symbol -> normalized market id


def kraken_settings(cluster, registry_url: str, sim: KrakenSimulator, venue: str, **kw) -> CcxtSettings:  # noqa: ANN001
    # ccxt throttles each socket's sends to Kraken's rateLimit (1 s): faster here, so resubscribes are quick
    options = {"reconnect_initial_delay": 0.05, "reconnect_max_delay": 1.0, "book_depth": DEPTH,
               "ccxt_config": {"rateLimit": 100}, **kw}
    return CcxtSettings(
        kafka_bootstrap=cluster.bootstrap, registry_url=registry_url, create_topics=False, register_schemas=False,
        exchange="kraken", venue=venue, rest_base_override=sim.rest_url, url_overrides={"api.ws.publicV2": sim.ws_url},
        **options)


def models(seed: int) -> list[MarketModel]:
    return [MarketModel("BTC/USD", "BTC", "USD", seed=seed, price_decimals=1, size_decimals=8),
            MarketModel("ETH/USD", "ETH", "USD", mid=Decimal("2000.00"), seed=seed + 100, price_decimals=2,
                        size_decimals=8)]


async def steps(sim: KrakenSimulator, n: int) -> None:
    for _ in range(n):
        await sim.step()
        await asyncio.sleep(0.01)


def subscribed(sim: KrakenSimulator, channels: tuple[str, ...] = ("book", "trade", "ticker")) -> bool:
    return all(sim.subscribers(c, s) for c in channels for s in MARKETS)


async def test_kraken_books_trades_tickers_survive_checksum_faults_and_disconnect(cluster, registry, registry_url,
                                                                                 unique):
    btc, eth = models(33)
    sim = KrakenSimulator([btc, eth])
    await sim.start()
    settings = kraken_settings(cluster, registry_url, sim, f"kraken-{unique}", markets=list(MARKETS),
                               channels=["book", "trades", "ticker"])
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: subscribed(sim), 20, "ccxt subscribed to book, trade and ticker")
            first_trade = {s: m.next_trade_id for s, m in sim.markets.items()}
            await steps(sim, 20)
            sim.wrong_checksum_next("BTC/USD")
            await steps(sim, 5)
            await wait_for(lambda: sim.book_subscribes["BTC/USD"] >= 2, 10, "resubscribe after the wrong checksum")
            await steps(sim, 20)
            sim.lose_update_next("BTC/USD")  # the 5th best bid changes, its update never arrives
            await steps(sim, 5)
            await wait_for(lambda: sim.book_subscribes["BTC/USD"] >= 3, 10, "resubscribe after the lost update")
            await steps(sim, 20)
            sim.accepting = False  # an outage: the market trades on while the producer cannot connect
            await sim.disconnect_all()
            await steps(sim, 8)
            sim.accepting = True
            await wait_for(lambda: subscribed(sim), 20, "resubscribed after the outage")
            await steps(sim, 15)

            assert sim.refused == [], sim.refused  # never a second subscribe to a live book
            assert sim.book_subscribes["ETH/USD"] == 2  # the first subscription and the reconnect only
            for symbol, market in MARKETS.items():
                book, events = await run.book_until(market, lambda s=symbol: sim.true_book(s, DEPTH))
                expected_resets = ["checksum", "checksum", "reconnect"] if symbol == "BTC/USD" else ["reconnect"]
                assert book.resets == expected_resets, (symbol, book.resets)
                assert book.problems == [] and book.duplicates == 0
                assert all(e["checksum"] is not None for e in events if e["kind"] != "RESET")
                model = sim.markets[symbol]  # the venue holds more levels than the subscribed depth: truncated
                assert max(len(model.bids), len(model.asks)) > DEPTH
                assert (len(book.bids), len(book.asks)) == (min(DEPTH, len(model.bids)), min(DEPTH, len(model.asks)))

                # every trade once, in order, including those of the outage (recovered over REST by time)
                trades = await run.events(TRADES, market)
                sim_trades = [t for t in sim.markets[symbol].trades if t.trade_id >= first_trade[symbol]]
                missed = [t.trade_id for t in sim_trades if t.trade_id not in sim.trades_sent[symbol]]
                assert len(sim_trades) > 20 and missed, "the outage must cost wire trades"
                assert [(t["trade_id"], t["side"]) for t in trades] == \
                    [(str(t.trade_id), t.taker_side.upper()) for t in sim_trades]
                assert [(Decimal(t["price"]), Decimal(t["size"])) for t in trades] == \
                    [(Decimal(t.price), Decimal(t.size)) for t in sim_trades]
                assert [(t["price"], t["size"]) for t in trades if int(t["trade_id"]) not in missed] == \
                    [(t.price, t.size) for t in sim_trades if t.trade_id not in missed]  # wire text, exactly
                assert not any(t["gap"] for t in trades)

                tickers = await run.events(TICKER, market)
                last = sim.last_ticker[symbol]
                got = tickers[-1]
                assert (got["best_bid"], got["best_bid_size"], got["best_ask"], got["best_ask_size"],
                        got["last_price"], got["volume_24h"]) == \
                    (last["bid"], last["bid_qty"], last["ask"], last["ask_qty"], last["last"], last["volume"])
            assert run.feed.resets.get("checksum") == 2
    finally:
        await sim.stop()


async def test_kraken_without_checksum_verification_keeps_a_wrong_level(cluster, registry, registry_url, unique):
    """The control: with our verifier off, ccxt alone applies the updates after the lost one and Kafka's book
    keeps the stale best bid (so the test above really exercises the checksum, not luck)."""
    btc, eth = models(32)
    sim = KrakenSimulator([btc])
    await sim.start()
    settings = kraken_settings(cluster, registry_url, sim, f"krakenraw-{unique}", markets=["BTC/USD"],
                               channels=["book"], verify_checksums=False)
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.subscribers("book", "BTC/USD"), 20, "subscribed")
            await steps(sim, 10)
            sim.lose_update_next("BTC/USD")
            await steps(sim, 1)
            lost = btc.sorted_bids(5)[-1][0]  # the level the lost update changed
            lost_size = btc.bids[lost]
            await steps(sim, 1)  # an update whose checksum would have shown the loss
            assert btc.bids.get(lost) == lost_size  # the next step did not touch that level (seeded walk)
            book = replay_book(await run.events_reaching(BOOK, "BTC-USD", btc.now_ms * 1000))
            assert book.in_sync and book.resets == []
            assert lost in book.bids and book.bids[lost] != lost_size  # a wrong level in Kafka
            assert sim.book_subscribes["BTC/USD"] == 1
    finally:
        await sim.stop()

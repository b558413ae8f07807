"""ccxt producer against the Binance simulator, through the wire, into the real Kafka + registry.

One run covers: normal flow, a diff-depth gap (ccxt raises ChecksumError and resyncs from REST), and a
disconnect of every socket (ccxt raises NetworkError; we back off and reconnect). Then the book rebuilt
from Kafka must equal the simulator's true book, every simulated trade must be in Kafka exactly once
with its exact text, and every closed candle must match the simulator's.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from producers.ccxt import CcxtSettings
from schemas.topics import TICKER, TRADES, VENUE_CANDLES
from simulators.binance import BinanceSimulator, MarketModel
from tests.ccxt.harness import FeedRun, dec, wait_for

pytestmark = pytest.mark.timeout(120)

SYMBOL, MARKET = "BTCUSDT", "BTC-USDT"


def binance_settings(cluster, registry_url: str, sim: BinanceSimulator, venue: str, **kw) -> CcxtSettings:  # noqa: ANN001
    ccxt_options = {"fetchMarkets": {"types": ["spot"]}, **kw.pop("ccxt_options", {})}
    options = {"markets": ["BTC/USDT"], "book_depth": 100, "reconnect_initial_delay": 0.05,
               "reconnect_max_delay": 1.0, **kw}
    return CcxtSettings(
        kafka_bootstrap=cluster.bootstrap, registry_url=registry_url, create_topics=False, register_schemas=False,
        exchange="binance", venue=venue, rest_base_override=sim.rest_url,
        url_overrides={"api.ws.spot": sim.ws_url, "api.ws.ws-api.spot": f"ws://127.0.0.1:{sim.port}/ws-api/v3"},
        ccxt_options=ccxt_options, **options)


async def steps(sim: BinanceSimulator, n: int) -> None:
    for _ in range(n):
        await sim.step()
        await asyncio.sleep(0.01)


def subscribed(sim: BinanceSimulator) -> bool:
    low = SYMBOL.lower()
    return all(sim.subscribers(s) for s in (f"{low}@depth@100ms", f"{low}@aggTrade", f"{low}@kline_1m",
                                            f"{low}@miniTicker"))


async def test_binance_book_trades_candles_survive_gap_and_disconnect(cluster, registry, registry_url, unique):
    model = MarketModel(SYMBOL, "BTC", "USDT", seed=11)
    sim = BinanceSimulator([model])
    await sim.start()
    settings = binance_settings(cluster, registry_url, sim, f"binance-{unique}")
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: subscribed(sim) and run.feed.ready, 20, "ccxt subscribed to every stream")
            first_trade = model.next_trade_id
            await steps(sim, 40)
            sim.gap_next(SYMBOL)  # one depthUpdate never delivered: U skips
            await steps(sim, 10)
            await wait_for(lambda: sim.requests["/api/v3/depth"] >= 2, 10, "ccxt's REST resync after the gap")
            await steps(sim, 30)
            await sim.disconnect_all()
            await wait_for(lambda: subscribed(sim), 20, "ccxt resubscribed after the disconnect")
            await steps(sim, 40)

            truth = lambda: (dict(model.bids), dict(model.asks))  # noqa: E731
            book, events = await run.book_until(MARKET, truth)
            assert sim.dropped_depth_events == 1
            assert "gap" in book.resets and "reconnect" in book.resets, book.resets
            assert book.snapshots >= 3  # first, after the gap, after the reconnect
            assert book.problems == [] and book.duplicates == 0
            assert sim.requests["/api/v3/depth"] >= 3  # ccxt re-fetched the REST snapshot each time
            kinds = [e["kind"] for e in events]
            assert kinds[0] == "SNAPSHOT" and kinds.count("DELTA") > 50
            deltas = [e for e in events if e["kind"] == "DELTA"]
            assert all(len(e["bids"]) + len(e["asks"]) <= 12 for e in deltas)  # changes only, not the book
            assert all(e["sequence"] > e["prev_sequence"] for e in deltas if e["sequence"] is not None)

            # trades (the aggTrade stream, ``a`` ids): all of them, once, exact text
            sim_aggs = [a for a in sim.agg_trades[SYMBOL] if a.trade.trade_id >= first_trade]
            trades = await run.events(TRADES, MARKET)
            ids = [t["trade_id"] for t in trades]
            assert len(ids) == len(set(ids)), "duplicate trades in Kafka"
            assert ids == [str(a.agg_id) for a in sim_aggs]
            by_id = {t["trade_id"]: t for t in trades}
            for a in sim_aggs:
                t = a.trade
                got = by_id[str(a.agg_id)]
                assert (got["price"], got["size"]) == (t.price, t.size)  # the venue's own text
                assert got["side"] == t.taker_side.upper()
                assert got["exchange_ts"] == t.ts_ms * 1000
                assert got["venue_symbol"] == SYMBOL and got["market"] == MARKET

            # candles: every closed simulator candle, with its final values
            candles = await run.events(VENUE_CANDLES, MARKET)
            closed = {c["start_ts"]: c for c in candles if c["closed"]}
            # the newest candle is final only once a later one exists (ccxt does not pass the venue's flag)
            expected = [c for c in model.candles[:-1] if c.first_trade_id >= first_trade]
            assert len(expected) >= 5
            for c in expected:
                got = closed.get(c.start_ms * 1000)
                assert got is not None, f"closed candle {c.start_ms} missing"
                assert [dec(got[k]) for k in ("open", "high", "low", "close", "volume")] == \
                    [c.open, c.high, c.low, c.close, c.volume]
                assert got["interval"] == "1m" and got["end_ts"] == (c.start_ms + 60_000) * 1000

            tickers = await run.events(TICKER, MARKET)
            assert tickers and tickers[-1]["last_price"] == model.trades[-1].price
            assert run.feed.metrics.count("reconnects") >= 1
            assert run.feed.readiness() == (True, "connected and subscribed")  # every channel recovered
    finally:
        await sim.stop()


async def test_binance_prices_keep_exact_text(cluster, registry, registry_url, unique):
    """Sizes with trailing zeros and 8 decimals arrive in Kafka as the venue wrote them, never via float."""
    model = MarketModel(SYMBOL, "BTC", "USDT", seed=5, mid=Decimal("0.10000000"), price_decimals=8,
                        size_decimals=8, levels=10)
    sim = BinanceSimulator([model])
    await sim.start()
    settings = binance_settings(cluster, registry_url, sim, f"binexact-{unique}", channels=["book", "trades"])
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.subscribers(f"{SYMBOL.lower()}@depth@100ms") and run.feed.ready, 20,
                           "subscribed")
            await steps(sim, 15)
            truth = lambda: (dict(model.bids), dict(model.asks))  # noqa: E731
            _, events = await run.book_until(MARKET, truth)
            texts = [lv["price"] for e in events for lv in e["bids"] + e["asks"]]
            assert texts and all(len(t.split(".")[1]) == 8 for t in texts)  # fixed 8 decimals kept
            trades = await run.events(TRADES, MARKET)
            assert trades and all(len(t["size"].split(".")[1]) == 8 for t in trades)
    finally:
        await sim.stop()


async def test_malformed_frames_are_counted_and_skipped(cluster, registry, registry_url, unique, caplog):
    model = MarketModel(SYMBOL, "BTC", "USDT", seed=13)
    sim = BinanceSimulator([model])
    await sim.start()
    settings = binance_settings(cluster, registry_url, sim, f"binbad-{unique}", channels=["trades"])
    stream = f"{SYMBOL.lower()}@aggTrade"
    try:
        with caplog.at_level("WARNING"):
            async with FeedRun(settings, registry) as run:
                await wait_for(lambda: sim.subscribers(stream), 20, "subscribed")
                await steps(sim, 5)
                await sim.inject_raw(stream, '{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1,"p":"abc","q":"1","f":1,"l":1,'
                                             '"T":1,"m":true}')
                await sim.inject_raw(stream, "this is not json")
                await sim.inject_raw(stream, '{"e":"aggTrade","E":1,"s":"BTCUSDT","a":2,"q":"1","f":2,"l":2,"T":1,'
                                             '"m":true}')
                await steps(sim, 20)
                await wait_for(lambda: sim.subscribers(stream), 20, "still (or again) subscribed")
                await asyncio.sleep(0.5)
                trades = await run.events(TRADES, MARKET)
                # every good trade, before and after the malformed frames, once; the malformed ones (1, 2) never
                assert [t["trade_id"] for t in trades] == [str(a.agg_id) for a in sim.agg_trades[SYMBOL]]
                assert not run.task.done()
        assert run.feed.metrics.count("parse_errors", "ws") >= 1
        skipped = [r.getMessage() for r in caplog.records if "skipped a malformed venue message" in r.getMessage()]
        assert skipped and "abc" in skipped[0]
    finally:
        await sim.stop()


async def test_binance_private_user_data_stream_end_to_end(cluster, registry, registry_url, unique):
    """WS-API ``userDataStream.subscribe.signature`` (HMAC checked by the simulator), then balances, orders and
    fills reach the account topic with the venue's exact text."""
    from schemas.topics import ACCOUNT

    model = MarketModel(SYMBOL, "BTC", "USDT", seed=17)
    sim = BinanceSimulator([model], api_key=f"k-{unique}", secret=f"s-{unique}")
    sim.account.deposit("USDT", Decimal("1000.00"))
    await sim.start()
    settings = binance_settings(cluster, registry_url, sim, f"binacct-{unique}", markets=[], channels=[],
                                api_key=f"k-{unique}", api_secret=f"s-{unique}", account_id=f"acct-{unique}")
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.user_streams() >= 1, 20, "the signed user data stream subscription")
            await asyncio.sleep(0.2)  # every private watch is parked on the stream
            assert sim.failed_signatures == 0
            order = await sim.place_order(SYMBOL, "buy", "29990.00", "0.01000000")
            await asyncio.sleep(0.05)
            await sim.fill_order(order.ord_id, "0.00400000")
            await asyncio.sleep(0.05)
            await sim.cancel_order(order.ord_id)
            truth = {b.ccy: (b.available, b.frozen) for b in sim.account.balances.values()}
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while True:
                events = await run.events(ACCOUNT)
                balances = {e["balance"]["asset"]: (dec(e["balance"]["available"]), dec(e["balance"]["locked"]))
                            for e in events if e["kind"] == "BALANCE"}
                statuses = [e["order"]["status"] for e in events if e["kind"] == "ORDER"]
                if (balances == truth and statuses[-1:] == ["CANCELLED"]) or loop.time() > deadline:
                    break
                await asyncio.sleep(0.3)
            assert balances == truth
            assert statuses == ["NEW", "PARTIALLY_FILLED", "CANCELLED"]
            orders = [e["order"] for e in events if e["kind"] == "ORDER"]
            assert orders[1]["filled_size"] == "0.00400000" and orders[1]["price"] == "29990.00"
            assert orders[-1]["venue_status"] == "CANCELED"
            fills = [e["fill"] for e in events if e["kind"] == "FILL"]
            (fill,) = sim.account.fills
            assert [(f["fill_id"], f["order_id"], f["price"], f["size"], f["side"]) for f in fills] == \
                [(fill.trade_id, fill.ord_id, "29990.00", "0.00400000", "BUY")]
            assert dec(fills[0]["fee"]) == -fill.fee and fills[0]["fee_asset"] == "BTC"
            assert all(e["market"] == MARKET and e["venue_symbol"] == SYMBOL
                       for e in events if e["kind"] in ("ORDER", "FILL"))
    finally:
        await sim.stop()

"""Every trade once, at full speed and across holes: the ccxt producer against the Binance and OKX simulators.

- A full-speed burst (4 markets, frames sent as fast as the sockets take them) with ccxt's ``tradesLimit``
  ring set to 50, so ccxt's own buffer wraps dozens of times per market: Kafka must still hold every
  aggTrade exactly once, in order, and the books must equal the simulator's. (The 200k-frame run with the
  default ``tradesLimit`` of 1000 is ``benchmarks/bench_ccxt_trades.py``.)
- Trades dropped on the wire (a fault in the simulator) and a disconnect are recovered over REST
  (Binance ``/api/v3/aggTrades?fromId``, OKX ``/api/v5/market/history-trades?after``).
- When REST refuses (HTTP 429), exactly the missing ids are covered by one gap marker.
"""

from __future__ import annotations

import asyncio

import pytest

from schemas.topics import TRADES
from simulators.binance import BinanceSimulator, MarketModel
from simulators.okx import OkxSimulator
from tests.ccxt.harness import FeedRun, wait_for
from tests.ccxt.test_binance_ccxt import binance_settings
from tests.ccxt.test_okx_ccxt import okx_settings

pytestmark = pytest.mark.timeout(300)

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


def market_of(symbol: str) -> str:
    return f"{symbol[:-4]}-USDT"


async def trades_in_kafka(run: FeedRun, market: str, want: int, timeout: float) -> list[dict]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        trades = await run.events(TRADES, market)
        if len(trades) >= want or loop.time() > deadline:
            return trades
        await asyncio.sleep(0.5)


async def test_full_speed_burst_every_trade_once_and_books_exact(cluster, registry, registry_url, unique):
    models = [MarketModel(s, s[:-4], "USDT", seed=100 + i) for i, s in enumerate(SYMBOLS)]
    sim = BinanceSimulator(models)
    await sim.start()
    settings = binance_settings(cluster, registry_url, sim, f"binburst-{unique}", channels=["book", "trades"],
                                markets=[f"{s[:-4]}/USDT" for s in SYMBOLS],
                                ccxt_options={"tradesLimit": 50})
    streams = [f"{s.lower()}@{k}" for s in SYMBOLS for k in ("aggTrade", "depth@100ms")]
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: all(sim.subscribers(s) for s in streams) and run.feed.ready, 30, "subscribed")
            await wait_for(lambda: sim.requests["/api/v3/depth"] >= len(SYMBOLS), 30, "book snapshots fetched")
            frames = await sim.burst(40_000)
            assert frames >= 40_000
            for symbol in SYMBOLS:
                truth = [str(a.agg_id) for a in sim.agg_trades[symbol]]
                assert len(truth) > 40 * 50  # ccxt's ring of 50 wrapped dozens of times in this market
                trades = await trades_in_kafka(run, market_of(symbol), len(truth), 180)
                ids = [t["trade_id"] for t in trades]
                assert len(ids) == len(set(ids)), f"{symbol}: duplicates in Kafka"
                assert ids == truth, f"{symbol}: {len(ids)} trades in Kafka, {len(truth)} sent"
                by_id = {a.agg_id: a.trade for a in sim.agg_trades[symbol]}
                assert all((t["price"], t["size"]) == (by_id[int(t["trade_id"])].price, by_id[int(t["trade_id"])].size)
                           for t in trades)
                assert len(run.feed.exchange.trades[f"{symbol[:-4]}/USDT"]) == 50  # ccxt's ring kept only 50
                model = sim.markets[symbol]
                await run.book_until(market_of(symbol), lambda m=model: (dict(m.bids), dict(m.asks)), timeout=120)
            assert run.feed.metrics.count("recovered") == 0 and run.feed.metrics.count("gap_markers") == 0
    finally:
        await sim.stop()


async def binance_steps(sim: BinanceSimulator, n: int) -> None:
    for _ in range(n):
        await sim.step()
        await asyncio.sleep(0.005)


async def test_binance_dropped_trades_and_disconnect_recovered_over_rest(cluster, registry, registry_url, unique):
    model = MarketModel("BTCUSDT", "BTC", "USDT", seed=21)
    sim = BinanceSimulator([model])
    await sim.start()
    settings = binance_settings(cluster, registry_url, sim, f"binrec-{unique}", channels=["trades"],
                                trade_recovery_retry_delay=0.05)
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.subscribers("btcusdt@aggTrade"), 20, "subscribed")
            await binance_steps(sim, 20)
            sim.drop_trades_next("BTCUSDT", 25)
            await binance_steps(sim, 80)
            assert len(sim.dropped_trades) == 25
            await sim.disconnect_all()
            await binance_steps(sim, 30)  # partly while nobody is subscribed
            await wait_for(lambda: sim.subscribers("btcusdt@aggTrade"), 20, "resubscribed")
            await binance_steps(sim, 20)
            truth = [str(a.agg_id) for a in sim.agg_trades["BTCUSDT"]]
            trades = await trades_in_kafka(run, "BTC-USDT", len(truth), 60)
            ids = [t["trade_id"] for t in trades]
            assert ids == truth  # every trade, once, in order: the dropped ones recovered in place
            assert not any(t["gap"] for t in trades)
            by_id = {str(a.agg_id): a.trade for a in sim.agg_trades["BTCUSDT"]}
            for t in trades:  # recovered over REST or not: the venue's exact text, side and time
                sim_trade = by_id[t["trade_id"]]
                assert (t["price"], t["size"], t["side"], t["exchange_ts"]) == \
                    (sim_trade.price, sim_trade.size, sim_trade.taker_side.upper(), sim_trade.ts_ms * 1000)
            assert run.feed.metrics.count("recovered", "trades") >= 25
            assert run.feed.metrics.count("gap_markers") == 0
            assert sim.requests["/api/v3/aggTrades"] >= 1
    finally:
        await sim.stop()


async def test_binance_restarted_producer_recovers_what_happened_while_it_was_down(cluster, registry, registry_url,
                                                                                   unique):
    """A second producer process (a deploy, a crash) reads the newest trade back from Kafka and catches up over
    REST from there: the trades made while no producer ran are in Kafka, once, in order."""
    model = MarketModel("BTCUSDT", "BTC", "USDT", seed=23)
    sim = BinanceSimulator([model])
    await sim.start()
    settings = binance_settings(cluster, registry_url, sim, f"binres-{unique}", channels=["trades"],
                                trade_recovery_retry_delay=0.05)
    try:
        async with FeedRun(settings, registry) as first:
            await wait_for(lambda: sim.subscribers("btcusdt@aggTrade"), 20, "subscribed")
            await binance_steps(sim, 30)
            sent = len(sim.agg_trades["BTCUSDT"])
            assert len(await trades_in_kafka(first, "BTC-USDT", sent, 60)) == sent
        await wait_for(lambda: not sim.subscribers("btcusdt@aggTrade"), 20, "the first producer gone")
        await binance_steps(sim, 40)  # nobody subscribed: only REST can return these
        down = len(sim.agg_trades["BTCUSDT"]) - sent
        assert down > 0
        async with FeedRun(settings, registry) as second:
            second.start = first.start  # read the topic from before the first run
            await wait_for(lambda: sim.subscribers("btcusdt@aggTrade"), 20, "subscribed again")
            await binance_steps(sim, 20)
            truth = [str(a.agg_id) for a in sim.agg_trades["BTCUSDT"]]
            trades = await trades_in_kafka(second, "BTC-USDT", len(truth), 60)
            assert [t["trade_id"] for t in trades] == truth  # once each, in order, none lost to the restart
            assert second.feed.metrics.count("recovered", "trades") >= down
            assert second.feed.metrics.count("gap_markers") == 0
            assert second.feed.metrics.count("resume_failed") == 0
    finally:
        await sim.stop()


@pytest.mark.parametrize("recovery", [True, False], ids=["rest", "markers"])
async def test_a_full_tap_queue_refuses_trades_then_recovers_or_marks_them(cluster, registry, registry_url, unique,
                                                                           recovery):
    """Publishing slower than ccxt parses (a one-event publisher buffer), a burst, and a tap queue of 30:
    the queue never holds more than 30 trades (+1 overflow record); the trades it refused are recovered over
    REST (consecutive ids) or, with recovery off, covered by gap markers that count exactly them."""
    model = MarketModel("BTCUSDT", "BTC", "USDT", seed=24)
    sim = BinanceSimulator([model])
    await sim.start()
    settings = binance_settings(cluster, registry_url, sim, f"bintap-{unique}", channels=["trades"],
                                tap_queue_max=30, publisher_buffer=1, publisher_max_in_flight=1,
                                trade_recovery=recovery, trade_recovery_retry_delay=0.05)
    try:
        async with FeedRun(settings, registry) as run:
            # with recovery ccxt watches aggTrade (consecutive ids, REST by id), without it the raw trade stream
            stream = "btcusdt@aggTrade" if recovery else "btcusdt@trade"
            await wait_for(lambda: sim.subscribers(stream), 20, "subscribed")
            await sim.burst(3_000, trade_probability=1.0)
            truth = [str(a.agg_id) if recovery else str(a.trade.trade_id) for a in sim.agg_trades["BTCUSDT"]]
            queue = run.feed.markets[0].trades
            await wait_for(lambda: queue.refused > 0, 60, "the tap queue to fill and refuse trades")
            await wait_for(lambda: run.feed.metrics.count("tap_overflows") == queue.refused, 120,
                           "every refused trade to be seen by the drain")
            refused = queue.refused
            if recovery:
                trades = await trades_in_kafka(run, "BTC-USDT", len(truth), 120)
                assert [t["trade_id"] for t in trades] == truth  # every trade once, in order
                assert run.feed.metrics.count("recovered", "trades") >= refused
                assert run.feed.metrics.count("gap_markers") == 0
            else:
                async def settled() -> list[dict]:
                    while True:
                        events = await run.events(TRADES, "BTC-USDT")
                        real = [e for e in events if e["gap"] is None]
                        missing = sum(e["gap"]["missing_count"] for e in events if e["gap"] is not None)
                        if len(real) + missing >= len(truth):
                            return events
                        await asyncio.sleep(0.5)
                events = await asyncio.wait_for(settled(), 120)
                real = [e["trade_id"] for e in events if e["gap"] is None]
                markers = [e["gap"] for e in events if e["gap"] is not None]
                assert markers and all(g["reason"] == "tap-overflow" for g in markers)
                assert sum(g["missing_count"] for g in markers) == refused
                assert len(real) + refused == len(truth) and len(set(real)) == len(real)
                it = iter(truth)
                assert all(tid in it for tid in real), "published trades keep the venue's order"
    finally:
        await sim.stop()


async def test_binance_unrecoverable_hole_gets_a_gap_marker_covering_exactly_it(cluster, registry, registry_url,
                                                                                 unique):
    model = MarketModel("BTCUSDT", "BTC", "USDT", seed=22)
    sim = BinanceSimulator([model])
    await sim.start()
    settings = binance_settings(cluster, registry_url, sim, f"bingap-{unique}", channels=["trades"],
                                trade_recovery_retry_delay=0.05)
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.subscribers("btcusdt@aggTrade"), 20, "subscribed")
            await binance_steps(sim, 20)
            sim.refuse_trade_history = True
            sim.drop_trades_next("BTCUSDT", 25)
            await binance_steps(sim, 80)
            dropped = [a.agg_id for a in sim.dropped_trades]
            assert len(dropped) == 25 and dropped == list(range(dropped[0], dropped[0] + 25))
            delivered = [str(a.agg_id) for a in sim.agg_trades["BTCUSDT"] if a not in sim.dropped_trades]
            events = await trades_in_kafka(run, "BTC-USDT", len(delivered) + 1, 60)
            gaps = [e for e in events if e["gap"]]
            assert [e["trade_id"] for e in events if not e["gap"]] == delivered
            (marker,) = gaps
            assert marker["gap"]["after_id"] == str(dropped[0] - 1)
            assert marker["gap"]["before_id"] == str(dropped[-1] + 1)
            assert marker["gap"]["missing_count"] == 25
            assert marker["trade_id"] == f"gap:{dropped[0] - 1}:{dropped[-1] + 1}"
            position = [e["trade_id"] for e in events].index(marker["trade_id"])  # in place, per-market order
            assert events[position - 1]["trade_id"] == str(dropped[0] - 1)
            assert events[position + 1]["trade_id"] == str(dropped[-1] + 1)
            assert sim.requests["/api/v3/aggTrades"] == settings.trade_recovery_attempts
            assert run.feed.metrics.count("gap_markers", "trades") == 1
            assert run.feed.metrics.count("missing_events", "trades") == 25
            assert run.feed.metrics.count("recovered") == 0
    finally:
        await sim.stop()


async def okx_steps(sim: OkxSimulator, n: int) -> None:
    for _ in range(n):
        await sim.step()
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("rest", ["serves", "refuses"])
async def test_okx_dropped_trades_recovered_or_marked(cluster, registry, registry_url, unique, rest):
    model = MarketModel("BTC-USDT", "BTC", "USDT", seed=23, price_decimals=1, size_decimals=8)
    sim = OkxSimulator([model])
    await sim.start()
    settings = okx_settings(cluster, registry_url, sim, f"okxrec-{rest}-{unique}", channels=["trades"],
                            markets=["BTC/USDT"], trade_recovery_retry_delay=0.05)
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.subscribers("trades", "BTC-USDT"), 20, "subscribed")
            await okx_steps(sim, 20)
            sim.refuse_trade_history = rest == "refuses"
            sim.drop_trades_next("BTC-USDT", 150)  # more than one history-trades page (100)
            await okx_steps(sim, 320)
            dropped = [t.trade_id for t in sim.dropped_trades]
            assert len(dropped) == 150
            if rest == "serves":  # and a reconnect, trades happening while nobody is subscribed
                await wait_for(lambda: run.feed.metrics.count("recovered", "trades") == 150, 30, "the hole recovered")
                await sim.disconnect_all()
                await okx_steps(sim, 30)
                await wait_for(lambda: sim.subscribers("trades", "BTC-USDT"), 20, "resubscribed")
                await okx_steps(sim, 20)
            truth = [str(t.trade_id) for t in model.trades]
            if rest == "serves":
                trades = await trades_in_kafka(run, "BTC-USDT", len(truth), 60)
                assert [t["trade_id"] for t in trades] == truth
                assert [(t["price"], t["size"], t["side"], t["exchange_ts"]) for t in trades] == \
                    [(t.price, t.size, t.taker_side.upper(), t.ts_ms * 1000) for t in model.trades]
                assert run.feed.metrics.count("recovered", "trades") >= 150
                assert run.feed.metrics.count("gap_markers") == 0
                assert run.feed.metrics.count("reconnects") >= 1
                assert sim.requests["/api/v5/market/history-trades"] >= 2  # paged back over 150 ids
            else:
                delivered = [i for i in truth if int(i) not in set(dropped)]
                events = await trades_in_kafka(run, "BTC-USDT", len(delivered) + 1, 60)
                assert [e["trade_id"] for e in events if not e["gap"]] == delivered
                (marker,) = [e for e in events if e["gap"]]
                assert (marker["gap"]["after_id"], marker["gap"]["before_id"], marker["gap"]["missing_count"]) == \
                    (str(dropped[0] - 1), str(dropped[-1] + 1), 150)
                assert run.feed.metrics.count("missing_events", "trades") == 150
    finally:
        await sim.stop()


async def test_binance_burst_of_fills_and_orders_beyond_ccxt_rings(cluster, registry, registry_url, unique):
    """400 user-data frames back to back with ccxt's order and my-trade rings of 5: every fill once and every
    order state change once reach the account topic (the taps, not the rings)."""
    from decimal import Decimal

    from schemas.topics import ACCOUNT

    sim = BinanceSimulator([MarketModel("BTCUSDT", "BTC", "USDT", seed=31)], api_key=f"k-{unique}",
                           secret=f"s-{unique}")
    sim.account.deposit("USDT", Decimal("100000.00"))
    await sim.start()
    settings = binance_settings(cluster, registry_url, sim, f"binfills-{unique}", markets=[], channels=[],
                                api_key=f"k-{unique}", api_secret=f"s-{unique}", account_id=f"acct-{unique}",
                                ccxt_options={"tradesLimit": 5, "ordersLimit": 5})
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.user_streams() >= 1, 20, "the signed user data stream subscription")
            await asyncio.sleep(0.3)  # every private watch is parked on the stream
            orders = []
            for i in range(50):  # no pause: the frames queue up in ccxt's reader
                order = await sim.place_order("BTCUSDT", "buy", f"{29000 + i}.00", "0.01000000")
                await sim.fill_order(order.ord_id, "0.00200000")
                await sim.fill_order(order.ord_id, "0.00300000")
                await sim.cancel_order(order.ord_id)
                orders.append(order.ord_id)
            want_fills = [f.trade_id for f in sim.account.fills]
            assert len(want_fills) == 100
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while True:
                events = await run.events(ACCOUNT)
                fills = [e["fill"]["fill_id"] for e in events if e["kind"] == "FILL"]
                states = [(e["order"]["order_id"], e["order"]["status"], e["order"]["filled_size"])
                          for e in events if e["kind"] == "ORDER"]
                if (len(fills) >= 100 and len(states) >= 200) or loop.time() > deadline:
                    break
                await asyncio.sleep(0.3)
            assert sorted(fills) == sorted(want_fills) and len(fills) == len(set(fills))
            assert states == [(o, s, f) for o in orders for s, f in (
                ("NEW", "0.00000000"), ("PARTIALLY_FILLED", "0.00200000"), ("PARTIALLY_FILLED", "0.00500000"),
                ("CANCELLED", "0.00500000"))]
            assert len(run.feed.exchange.orders) <= 5 and len(run.feed.exchange.myTrades) <= 5  # ccxt's rings
    finally:
        await sim.stop()

"""ccxt producer against the OKX v5 simulator, into the real Kafka + registry.

Public run: a ``prevSeqId`` gap (ccxt's InvalidNonce), a corrupted update whose only symptom is the
checksum (ccxt does not verify OKX checksums: our verifier must, or the book diverges), a disconnect, and
a ``seqId`` restart (OKX after maintenance).
Private run: login with a real HMAC signature, then balances, orders and fills end to end.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from producers.ccxt import CcxtSettings
from schemas.topics import ACCOUNT, BOOK, TRADES, VENUE_CANDLES
from simulators.binance import MarketModel
from simulators.okx import OkxSimulator
from tests.ccxt.harness import FeedRun, dec, wait_for
from tests.feedcore.book_replay import replay_book

pytestmark = pytest.mark.timeout(120)

INST, MARKET = "BTC-USDT", "BTC-USDT"


def okx_settings(cluster, registry_url: str, sim: OkxSimulator, venue: str, **kw) -> CcxtSettings:  # noqa: ANN001
    options = {"reconnect_initial_delay": 0.05, "reconnect_max_delay": 1.0, **kw}
    return CcxtSettings(
        kafka_bootstrap=cluster.bootstrap, registry_url=registry_url, create_topics=False, register_schemas=False,
        exchange="okx", venue=venue, rest_base_override=sim.rest_url, url_overrides={"api.ws": sim.ws_url},
        ccxt_options={"fetchMarkets": {"types": ["spot"]}}, **options)


async def steps(sim: OkxSimulator, n: int) -> None:
    for _ in range(n):
        await sim.step()
        await asyncio.sleep(0.01)


def subscribed(sim: OkxSimulator) -> bool:
    return all(sim.subscribers(c, INST) for c in ("books", "trades", "candle1m", "tickers"))


def okx_model(seed: int) -> MarketModel:
    return MarketModel(INST, "BTC", "USDT", seed=seed, price_decimals=1, size_decimals=8)


async def test_okx_book_survives_gap_checksum_and_disconnect(cluster, registry, registry_url, unique):
    model = okx_model(21)
    sim = OkxSimulator([model])
    await sim.start()
    settings = okx_settings(cluster, registry_url, sim, f"okx-{unique}", markets=["BTC/USDT"])
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: subscribed(sim), 20, "ccxt subscribed to every OKX channel")
            first_trade = model.next_trade_id
            await steps(sim, 30)
            sim.gap_next(INST)
            await steps(sim, 5)
            await wait_for(lambda: sim.book_subscribes >= 2, 10, "resubscribe after the prevSeqId gap")
            await steps(sim, 25)
            sim.corrupt_next(INST)  # the best bid changes, the update omits it, the checksum tells
            await steps(sim, 5)
            await wait_for(lambda: sim.book_subscribes >= 3, 10, "resubscribe after the checksum mismatch")
            await steps(sim, 25)
            await sim.disconnect_all()
            await wait_for(lambda: subscribed(sim), 20, "resubscribed after the disconnect")
            await steps(sim, 15)
            sim.restart_sequence_next(INST)  # seqId restarts lower, as after OKX maintenance
            await steps(sim, 15)

            truth = lambda: (dict(model.bids), dict(model.asks))  # noqa: E731
            book, events = await run.book_until(MARKET, truth)
            assert book.resets.count("gap") == 1 and book.resets.count("checksum") == 1, book.resets
            assert "reconnect" in book.resets and book.resets[-1] == "sequence-reset", book.resets
            assert book.problems == [] and book.duplicates == 0
            assert run.feed.resets.get("checksum") == 1
            # the venue checksum travels with every event and matches the book it describes
            assert all(e["checksum"] is not None for e in events if e["kind"] != "RESET")
            deltas = [e for e in events if e["kind"] == "DELTA"]
            assert len(deltas) > 50 and all(e["prev_sequence"] == e["sequence"] - 1 for e in deltas
                                            if e["sequence"] is not None and e["prev_sequence"] is not None)

            trades = await run.events(TRADES, MARKET)
            ids = [t["trade_id"] for t in trades]
            sim_trades = [t for t in model.trades if t.trade_id >= first_trade]
            assert len(ids) == len(set(ids))
            assert ids == [str(t.trade_id) for t in sim_trades]
            assert [(t["price"], t["size"]) for t in trades] == [(t.price, t.size) for t in sim_trades]

            candles = await run.events(VENUE_CANDLES, MARKET)
            closed = {c["start_ts"]: c for c in candles if c["closed"]}
            # the newest candle is final only once a later one exists (ccxt does not pass the venue's flag)
            expected = [c for c in model.candles[:-1] if c.first_trade_id >= first_trade]
            assert len(expected) >= 5
            for c in expected:
                got = closed[c.start_ms * 1000]
                assert [dec(got[k]) for k in ("open", "high", "low", "close", "volume")] == \
                    [c.open, c.high, c.low, c.close, c.volume]
    finally:
        await sim.stop()


async def test_okx_without_checksum_verification_diverges(cluster, registry, registry_url, unique):
    """The control experiment: with our verifier off, ccxt alone keeps the corrupted book (so the test above
    really exercises the checksum, not luck)."""
    model = okx_model(22)
    sim = OkxSimulator([model])
    await sim.start()
    settings = okx_settings(cluster, registry_url, sim, f"okxraw-{unique}", markets=["BTC/USDT"],
                            channels=["book"], verify_checksums=False)
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.subscribers("books", INST), 20, "subscribed")
            await steps(sim, 10)
            sim.corrupt_next(INST)
            await steps(sim, 1)  # later steps could heal the level by chance: stop right here
            await asyncio.sleep(0.5)
            book = replay_book(await run.events(BOOK, MARKET))
            assert book.in_sync and book.resets == []
            assert book.bids != dict(model.bids)  # the hidden change never reached ccxt's book
            assert sim.book_subscribes == 1
    finally:
        await sim.stop()


async def test_okx_private_balances_orders_fills_end_to_end(cluster, registry, registry_url, unique):
    model = okx_model(23)
    sim = OkxSimulator([model], api_key=f"key-{unique}", secret=f"secret-{unique}", passphrase="pass-phrase")
    sim.account.deposit("USDT", Decimal("10000.00"))
    sim.account.deposit("BTC", Decimal("1.50000000"))
    await sim.start()
    settings = okx_settings(cluster, registry_url, sim, f"okxacct-{unique}", markets=[], channels=[],
                            api_key=f"key-{unique}", api_secret=f"secret-{unique}", api_password="pass-phrase",
                            private_channels=["balance", "orders", "fills"], account_id=f"acct-{unique}")
    try:
        async with FeedRun(settings, registry) as run:
            await wait_for(lambda: sim.subscribers("account", "") and sim.subscribers("orders", "ANY"), 20,
                           "login + private subscriptions")
            assert sim.logins >= 1 and sim.failed_logins == 0
            await steps(sim, 2)
            buy = await sim.place_order(INST, "buy", "29990.0", "0.50000000")
            await asyncio.sleep(0.05)
            await sim.fill_order(buy.ord_id, "0.20000000")
            await asyncio.sleep(0.05)
            await sim.fill_order(buy.ord_id, "0.30000000")
            await asyncio.sleep(0.05)
            sell = await sim.place_order(INST, "sell", "30100.0", "0.10000000")
            await asyncio.sleep(0.05)
            await sim.cancel_order(sell.ord_id)

            def final_balances(events: list[dict]) -> dict[str, dict]:
                return {e["balance"]["asset"]: e["balance"] for e in events if e["kind"] == "BALANCE"}

            truth = {b.ccy: (b.cash, b.available, b.frozen) for b in sim.account.balances.values()}
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while True:
                events = await run.events(ACCOUNT)
                got = {a: (dec(b["total"]), dec(b["available"]), dec(b["locked"]))
                       for a, b in final_balances(events).items()}
                fills = [e["fill"] for e in events if e["kind"] == "FILL"]
                if got == truth and len(fills) == 2 or loop.time() > deadline:
                    break
                await asyncio.sleep(0.3)
            assert got == truth
            orders = [e["order"] for e in events if e["kind"] == "ORDER"]
            buy_states = [o["status"] for o in orders if o["order_id"] == buy.ord_id]
            assert buy_states == ["NEW", "PARTIALLY_FILLED", "FILLED"]
            sell_states = [o["status"] for o in orders if o["order_id"] == sell.ord_id]
            assert sell_states == ["NEW", "CANCELLED"]
            last_buy = [o for o in orders if o["order_id"] == buy.ord_id][-1]
            assert (last_buy["price"], last_buy["size"], last_buy["filled_size"]) == \
                ("29990.0", "0.50000000", "0.50000000")
            assert [(f["fill_id"], f["order_id"], f["price"], f["size"]) for f in fills] == \
                [(f.trade_id, f.ord_id, "29990.0", f"{f.sz:.8f}") for f in sim.account.fills]
            assert [dec(f["fee"]) for f in fills] == [f.fee for f in sim.account.fills]
            assert all(e["market"] == MARKET for e in events if e["kind"] in ("ORDER", "FILL"))
            assert all(e["account"] == f"acct-{unique}" for e in events)
            ids = [e["event_id"] for e in events]
            assert len(ids) == len(set(ids))
    finally:
        await sim.stop()


async def test_refused_login_is_logged_with_the_exchange_message_and_retried(cluster, registry, registry_url, unique,
                                                                              caplog):
    model = okx_model(24)
    sim = OkxSimulator([model], api_key="right-key", secret="right-secret", passphrase="p")
    await sim.start()
    settings = okx_settings(cluster, registry_url, sim, f"okxbad-{unique}", markets=["BTC/USDT"], channels=["trades"],
                            api_key="right-key", api_secret="wrong-secret", api_password="p",
                            private_channels=["balance"], reconnect_max_delay=0.4)
    try:
        with caplog.at_level("WARNING", logger="producers.ccxt.feed"):
            async with FeedRun(settings, registry) as run:
                await wait_for(lambda: sim.failed_logins >= 2, 20, "the login to be refused twice (a retry)")
                await wait_for(lambda: sim.subscribers("trades", INST), 20, "public channel unaffected")
                await steps(sim, 5)
                await asyncio.sleep(0.3)
                trades = await run.events(TRADES, MARKET)
                assert [t["trade_id"] for t in trades] == [str(t.trade_id) for t in model.trades]
                ready, why = run.feed.readiness()
                assert not ready and "balance (AuthenticationError)" in why
        refused = [r.getMessage() for r in caplog.records if "refused our credentials" in r.getMessage()]
        assert refused and "Login failed." in refused[0] and "60009" in refused[0]
        assert sim.logins == 0
    finally:
        await sim.stop()

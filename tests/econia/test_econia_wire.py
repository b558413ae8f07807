"""Econia producer through the wire (simulated DSS -> EconiaFeed -> real Kafka + registry).

The duplicate maker/taker fill is published once; a reconnect gap (events produced while the producer was
away) is backfilled from PostgREST without loss or duplicates; malformed frames are counted and skipped;
an expiring token is renewed; a bad token stops the feed with a clear error."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

import pytest

from producers.core.errors import TerminalFeedError
from schemas.topics import ACCOUNT, BOOK, TRADES, account_key, market_key
from simulators.econia.exchange import FillTruth
from simulators.econia.markets import EconiaMarket
from simulators.econia.server import DEV_SECRET, EconiaSimulator, mint_token
from tests.econia.conftest import caught_up, wait_until
from tests.feedcore.book_replay import replay_book
from tests.feedcore.kafka_reader import end_offsets, read_events


def nominal_price(m: EconiaMarket, ticks: int) -> Decimal:
    return Decimal(ticks * m.tick_size) / 10**m.quote_decimals / (Decimal(m.lot_size) / 10**m.base_decimals)


def nominal_size(m: EconiaMarket, lots: int) -> Decimal:
    return Decimal(lots * m.lot_size) / 10**m.base_decimals


def account(user: str, custodian: int) -> str:
    return user if custodian == 0 else f"{user}:{custodian}"


async def read_all(cluster, registry, sim: EconiaSimulator, start):  # type: ignore[no-untyped-def]
    markets = {market_key("econia", f"{m.base_symbol}-{m.quote_symbol}") for m in sim.exchange.markets}
    accounts = {account_key("econia", account(u, c)) for u in sim.exchange.users for c in (0, 1)}
    trades = await read_events(cluster.bootstrap, registry, TRADES, start[TRADES.name], keys=markets)
    events = await read_events(cluster.bootstrap, registry, ACCOUNT, start[ACCOUNT.name], keys=accounts)
    return trades, events


async def check_books(cluster, registry, sim: EconiaSimulator, start,  # type: ignore[no-untyped-def]
                      *, resyncs_allowed: bool = False) -> None:
    """The L2 book rebuilt from Kafka equals the simulator's resting orders, per market, and no state on the
    way was crossed (``replay_book`` reports those as problems). Without ``resyncs_allowed``: one SNAPSHOT
    and no RESET."""
    for m in sim.exchange.markets:
        events = await read_events(cluster.bootstrap, registry, BOOK, start[BOOK.name],
                                   keys={market_key("econia", f"{m.base_symbol}-{m.quote_symbol}")})
        book = replay_book(events)
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        for o in sim.exchange.resting[m.market_id]:
            if o.size > 0:
                side = asks if o.side else bids
                price = nominal_price(m, o.price)
                side[price] = side.get(price, Decimal(0)) + nominal_size(m, o.size)
        assert book.in_sync and not book.problems and book.duplicates == 0, (book.problems, book.resets)
        assert book.bids == bids and book.asks == asks, f"{m.market_id}: book differs from the resting orders"
        assert book.deltas > 0
        assert book.snapshots == 1 + len(book.resets)  # every RESET followed by its SNAPSHOT
        assert resyncs_allowed or not book.resets, book.resets


def check_tape(trades: list[dict], fills: list[FillTruth]) -> None:
    counts = Counter(t["trade_id"] for t in trades)
    assert [k for k, n in counts.items() if n > 1] == [], "a fill was published twice"
    truth = {f"{f.txn_version}:{f.taker_order_id}:{f.sequence_number_for_trade}": f for f in fills}
    assert set(counts) == set(truth), f"missing {sorted(set(truth) - set(counts))[:3]}, extra {len(set(counts) - set(truth))}"
    for t in trades:
        f = truth[t["trade_id"]]
        assert Decimal(t["price"]) == nominal_price(f.market, f.price)
        assert Decimal(t["size"]) == nominal_size(f.market, f.size)
        assert t["side"] == ("BUY" if f.maker_side else "SELL")  # maker ASK -> taker bought
        assert t["market"] == f"{f.market.base_symbol}-{f.market.quote_symbol}"


def check_account_fills(events: list[dict], fills: list[FillTruth]) -> None:
    got = Counter((e["account"], e["fill"]["fill_id"], e["fill"]["is_maker"]) for e in events if e["kind"] == "FILL")
    want = Counter()
    for f in fills:
        fid = f"{f.txn_version}:{f.taker_order_id}:{f.sequence_number_for_trade}"
        want[(account(f.maker_address, f.maker_custodian_id), fid, True)] += 1
        want[(account(f.taker_address, f.taker_custodian_id), fid, False)] += 1
    assert got == want
    for e in events:
        if e["kind"] == "FILL" and not e["fill"]["is_maker"]:
            assert e["fill"]["fee_asset"] == "USDC" and Decimal(e["fill"]["fee"]) >= 0


async def test_duplicate_fill_published_once_orders_normalized(econia_sim: EconiaSimulator, make_feed,
                                                                cluster, registry) -> None:
    sim, ex = econia_sim, econia_sim.exchange
    feed = make_feed(sim)
    start = await end_offsets(cluster.bootstrap, [TRADES, ACCOUNT, BOOK])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        m1, m2 = ex.markets
        placed = [ex.place_limit_order(m, custodian_id=c) for m in (m1, m2) for c in (0, 1) for _ in range(3)]
        fills = ex.take(m1, fills=3) + ex.take(m2, fills=2) + ex.take(m1, fills=1, self_trade=True)
        changed = [ex.change_size(m1), ex.change_size(m2)]
        cancelled = [ex.cancel(m1), ex.cancel(m2)]
        await wait_until(lambda: caught_up(feed, sim), 10, "all events processed")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    trades, events = await read_all(cluster, registry, sim, start)
    check_tape(trades, fills)
    assert len(trades) == len(fills) == 6
    check_account_fills(events, fills)
    assert feed.normalizer.duplicate_fills == len(fills)  # every taker copy (and the self-trade's 2nd maker copy)
    orders = [e for e in events if e["kind"] == "ORDER" and e["order"]["order_type"] == "limit"]
    assert len([e for e in events if e["kind"] == "ORDER"]) == len(orders) + 3 + len(fills)  # 3 market orders
    assert Counter(e["order"]["venue_status"].split(":")[0] for e in orders) == {
        "placed": len(placed), "size_changed": len([c for c in changed if c]),
        "cancelled": len([c for c in cancelled if c])}
    by_id = {e["order"]["order_id"]: e for e in orders if e["order"]["venue_status"] == "placed"}
    for o in placed:
        e = by_id[str(o.order_id)]  # u128 ids survive as exact text
        assert o.order_id > 2**64 and len(str(o.order_id)) >= 38
        assert e["account"] == account(o.user, o.custodian_id)
        assert e["order"]["side"] == ("SELL" if o.side else "BUY")
        assert Decimal(e["order"]["price"]) == nominal_price(o.market, o.price)
        assert Decimal(e["order"]["size"]) == nominal_size(o.market, o.initial_size)
        assert e["order"]["status"] == "NEW"
    assert len({e["event_id"] for e in events}) == len(events)
    assert feed.metrics.count("parse_errors") == 0
    await check_books(cluster, registry, sim, start)


async def test_reconnect_gap_is_backfilled_without_loss_or_duplicates(econia_sim: EconiaSimulator, make_feed,
                                                                       cluster, registry) -> None:
    sim, ex = econia_sim, econia_sim.exchange
    feed = make_feed(sim)
    start = await end_offsets(cluster.bootstrap, [TRADES, ACCOUNT, BOOK])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        for _ in range(30):
            ex.random_activity()
        malformed = sim.send_malformed(4)
        await wait_until(lambda: caught_up(feed, sim), 10, "live events processed")
        before = len(ex.events_since(0))
        sim.accepting = False  # the producer is away: reconnects fail with HTTP 503
        sim.disconnect_all()
        for _ in range(120):  # > 4 REST pages per table at 25 rows
            ex.random_activity()
        ex.take(ex.markets[0], fills=3)
        missed = len(ex.events_since(0)) - before
        await wait_until(lambda: feed.metrics.count("reconnects") >= 2, 10, "failed reconnect attempts")
        sim.accepting = True
        await wait_until(lambda: caught_up(feed, sim) and feed.connections >= 2, 15, "backfilled")
        for _ in range(20):  # live again after the backfill
            ex.random_activity()
        await wait_until(lambda: caught_up(feed, sim), 10, "live after backfill")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    trades, events = await read_all(cluster, registry, sim, start)
    check_tape(trades, ex.fills)
    check_account_fills(events, ex.fills)
    assert feed.backfilled == missed and feed.metrics.count("gaps") == missed
    assert feed.backfills >= 1 and feed.rest is not None and feed.rest.requests > 4
    assert feed.metrics.count("parse_errors") == malformed
    orders = [e for e in events if e["kind"] == "ORDER"]
    order_rows = sum(len(ex.tables[t]) for t in ("place_limit_order_events", "change_order_size_events",
                                                  "cancel_order_events", "place_market_order_events",
                                                  "place_swap_order_events"))
    order_rows += sum(len(t.fills) for t in ex.taker_orders.values())  # a taker order's state after each fill
    assert len(orders) == order_rows
    assert len({e["event_id"] for e in events}) == len(events)
    await check_books(cluster, registry, sim, start)  # the backfill kept the derived book exact: no RESET
    assert feed.books is not None and feed.books.unknown_orders == 0


async def test_expiring_token_is_renewed_and_nothing_is_lost(econia_sim: EconiaSimulator, make_feed,
                                                              cluster, registry) -> None:
    sim, ex = econia_sim, econia_sim.exchange
    feed = make_feed(sim, econia_token_ttl=1.0)
    start = await end_offsets(cluster.bootstrap, [TRADES, ACCOUNT])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        for _ in range(5):
            for _ in range(6):
                ex.random_activity()
            await asyncio.sleep(0.4)
        await wait_until(lambda: sim.stats["expired_closes"] >= 1 and caught_up(feed, sim), 15, "expiry + catch-up")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert feed.tokens_minted >= 2 and feed.metrics.reconnect_reasons["close"] >= 1
    trades, events = await read_all(cluster, registry, sim, start)
    check_tape(trades, ex.fills)


@pytest.mark.parametrize(("secret", "token", "message"), [
    ("not-the-dss-secret-0000000000000000", None, "Signature verification failed"),
    (None, "expired", "Token expired"),
    (None, "no-mode", "Missing mode"),
])
async def test_bad_token_stops_with_a_clear_error(econia_sim: EconiaSimulator, make_feed, secret, token,
                                                   message) -> None:
    sim = econia_sim
    api_token = {None: None, "expired": mint_token(DEV_SECRET, ["fill_event"], ttl=-10),
                 "no-mode": mint_token(DEV_SECRET, ["fill_event"], mode="")}[token]
    feed = make_feed(sim, econia_jwt_secret=secret, api_token=api_token)
    with pytest.raises(TerminalFeedError, match=message) as info:
        await asyncio.wait_for(feed.run(), 10)
    assert "HTTP 400" in str(info.value)
    assert feed.connections == 0 and feed.stop_reason


async def test_book_baseline_from_open_orders_then_events(econia_sim: EconiaSimulator, make_feed, cluster,
                                                          registry) -> None:
    """Orders resting before the producer starts come from /limit_orders; later events move the book."""
    sim, ex = econia_sim, econia_sim.exchange
    for m in ex.markets:
        for _ in range(12):
            ex.place_limit_order(m)
        ex.take(m, fills=2)
    feed = make_feed(sim)
    start = await end_offsets(cluster.bootstrap, [BOOK, TRADES, ACCOUNT])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        before = len(ex.fills)
        for m in ex.markets:  # cancels, size changes and fills of orders the producer never saw placed
            ex.cancel(m)
            ex.change_size(m)
            ex.take(m, fills=3)
            ex.place_limit_order(m)
        await wait_until(lambda: caught_up(feed, sim), 10, "events processed")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await check_books(cluster, registry, sim, start)
    trades, _ = await read_all(cluster, registry, sim, start)
    check_tape(trades, ex.fills[before:])  # history before the start is not replayed (live start)
    assert feed.books is not None and feed.books.unknown_orders == 0

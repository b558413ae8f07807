"""Econia market orders and swaps through the wire (simulated DSS -> EconiaFeed -> real Kafka + registry).

The simulator's takers are real market orders (``place_market_order_event``, then the fills, then a
``cancel_order_event`` for an unfilled rest) and swaps by a signing account (``place_swap_order_event``).
The ACCOUNT ORDER records of every market order and swap in Kafka equal the venue's truth exactly, record
by record (placed, after each taker fill, cancelled), also for transactions whose notifications were
dropped (recovered by a reconcile) and for those committed while the producer was away (backfilled after
the reconnect). ``recognized_market_event`` and the legacy ``new_*_order`` channels are accepted and
counted."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

from schemas.topics import ACCOUNT, BOOK, TRADES
from simulators.econia.exchange import TakerOrder
from simulators.econia.markets import EconiaMarket
from simulators.econia.server import EconiaSimulator
from tests.econia.conftest import caught_up, wait_until
from tests.econia.test_econia_wire import (
    account,
    check_account_fills,
    check_books,
    check_tape,
    nominal_price,
    nominal_size,
    read_all,
)
from tests.feedcore.kafka_reader import end_offsets

Record = tuple[str, str, str, str, Decimal | None, Decimal, Decimal, Decimal, str]


def base_units(m: EconiaMarket, subunits: int) -> Decimal:
    return Decimal(subunits).scaleb(-m.base_decimals)


def expected_records(t: TakerOrder, fill_ids: list[str]) -> list[Record]:
    """The venue's account of a taker order: placed, one state per taker fill, cancelled if a rest was left."""
    m = t.market
    acct = account(t.user, t.custodian_id)
    side = "SELL" if t.direction else "BUY"  # direction true = sell
    price = None if t.limit_price is None else nominal_price(m, t.limit_price)
    size = base_units(m, t.size)

    def rec(status: str, filled_lots: int, remaining: Decimal, venue_status: str) -> Record:
        return (acct, t.order_type, side, status, price, size, nominal_size(m, filled_lots), remaining, venue_status)

    out = [rec("NEW", 0, size, "placed")]
    filled = 0
    for lots, fill_id in zip(t.fills, fill_ids, strict=True):
        filled += lots
        remaining = base_units(m, t.size - filled * m.lot_size)
        out.append(rec("FILLED" if remaining == 0 else "PARTIALLY_FILLED", filled, remaining, f"filled:{fill_id}"))
    if t.cancel_reason is not None:
        out.append(rec("CANCELLED", filled, Decimal(0), f"cancelled:{t.cancel_reason}"))
    return out


def got_records(events: list[dict], order_id: int) -> list[Record]:
    out: list[Record] = []
    for e in events:
        if e["kind"] != "ORDER" or e["order"]["order_id"] != str(order_id):
            continue
        o = e["order"]
        out.append((e["account"], o["order_type"], o["side"], o["status"],
                    None if o["price"] is None else Decimal(o["price"]), Decimal(o["size"]),
                    Decimal(o["filled_size"]), Decimal(o["remaining_size"]), o["venue_status"]))
    return out


def check_taker_orders(events: list[dict], sim: EconiaSimulator) -> None:
    ex = sim.exchange
    fill_ids: dict[int, list[str]] = {}
    for f in ex.fills:
        fill_ids.setdefault(f.taker_order_id, []).append(f"{f.txn_version}:{f.taker_order_id}:{f.sequence_number_for_trade}")
    wrong = []
    for t in ex.taker_orders.values():
        want, got = expected_records(t, fill_ids.get(t.order_id, [])), got_records(events, t.order_id)
        if got != want:
            wrong.append((t.order_type, t.order_id, want, got))
    assert not wrong, f"{len(wrong)} of {len(ex.taker_orders)} taker orders differ; first: {wrong[0]}"
    taker_ids = {str(t.order_id) for t in ex.taker_orders.values()}
    limit_ids = {str(oid) for _, oid in ex.orders}
    stray = [e for e in events if e["kind"] == "ORDER" and e["order"]["order_id"] not in taker_ids | limit_ids]
    assert stray == [], "ORDER records of orders the venue never had"
    assert all(e["order"]["order_type"] == "limit" for e in events
               if e["kind"] == "ORDER" and e["order"]["order_id"] in limit_ids)


def check_taker_final_states(events: list[dict], sim: EconiaSimulator) -> None:
    """The last ORDER record of every market order and swap is the venue's final state (when single
    notifications inside a transaction were lost, the records on the way may skip states: a taker fill
    applied before its place is folded into one state after the late place)."""
    ex = sim.exchange
    fill_ids: dict[int, list[str]] = {}
    for f in ex.fills:
        fill_ids.setdefault(f.taker_order_id, []).append(f"{f.txn_version}:{f.taker_order_id}:{f.sequence_number_for_trade}")
    wrong = []
    for t in ex.taker_orders.values():
        want, got = expected_records(t, fill_ids.get(t.order_id, [])), got_records(events, t.order_id)
        if not got or got[-1] != want[-1] or got[0] != want[0]:
            wrong.append((t.order_type, t.order_id, want, got))
    assert not wrong, f"{len(wrong)} of {len(ex.taker_orders)} taker orders end wrong; first: {wrong[0]}"


async def test_market_and_swap_orders_equal_the_venue_through_drops_and_a_reconnect(
        econia_sim: EconiaSimulator, make_feed, cluster, registry) -> None:
    sim, ex = econia_sim, econia_sim.exchange
    feed = make_feed(sim, econia_reconcile_seconds=0.5, econia_reconcile_lookback=5.0)
    start = await end_offsets(cluster.bootstrap, [TRADES, ACCOUNT, BOOK])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        m1, m2 = ex.markets
        for m in (m1, m2):
            for side in (True, False):
                for _ in range(5):
                    ex.place_limit_order(m, side=side, custodian_id=1 if side else 0)
        ex.take(m1, fills=3, direction=False)  # buy, fully filled
        ex.take(m2, fills=2, direction=True, taker_custodian_id=1)  # sell, by a custodian's market account
        ex.take(m1, fills=1, self_trade=True)
        ex.swap(m1, fills=2, direction=True)  # whole lots: fills completely
        ex.swap(m2, fills=1, direction=False, odd_subunits=True)  # half a lot left: TOO_SMALL_TO_FILL_LOT
        ex.take(m2, direction=False, exhaust=True)  # more than the asks hold: NOT_ENOUGH_LIQUIDITY
        await wait_until(lambda: caught_up(feed, sim), 15, "live takers applied")
        sim.drop_next_txns(3)  # notified never; the socket stays up: a reconcile recovers them
        ex.swap(m1, fills=2)
        ex.take(m1, fills=2)
        ex.take(m2, direction=False, exhaust=True)  # the asks are empty: no fill, only place + cancel
        for _ in range(10):
            ex.random_activity()
        await wait_until(lambda: caught_up(feed, sim) and feed.normalizer.taker_orders == len(ex.taker_orders),
                         20, "dropped takers recovered by a reconcile")
        recovered = feed.backfilled
        sim.accepting = False  # the producer is away: reconnects fail with HTTP 503
        sim.disconnect_all()
        for _ in range(40):
            ex.random_activity()
        ex.swap(m2, fills=2, odd_subunits=True)
        ex.take(m1, fills=2, taker_custodian_id=1)
        await wait_until(lambda: feed.metrics.count("reconnects") >= 2, 10, "failed reconnect attempts")
        sim.accepting = True
        await wait_until(lambda: caught_up(feed, sim) and feed.connections >= 2
                         and feed.normalizer.taker_orders == len(ex.taker_orders), 20, "backfilled")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert recovered >= 3 and feed.backfilled > recovered  # drops and the reconnect gap came from REST
    kinds = Counter((t.order_type, t.cancel_reason) for t in ex.taker_orders.values())
    assert kinds[("market", 5)] >= 2 and kinds[("swap", 8)] >= 2 and kinds[("market", None)] >= 3 \
        and kinds[("swap", None)] >= 2, kinds
    trades, events = await read_all(cluster, registry, sim, start)
    check_taker_orders(events, sim)
    check_tape(trades, ex.fills)
    check_account_fills(events, ex.fills)
    assert len({e["event_id"] for e in events}) == len(events)
    assert feed.metrics.count("parse_errors") == 0
    await check_books(cluster, registry, sim, start, resyncs_allowed=True)


async def test_recognized_market_and_legacy_order_channels_are_accepted(econia_sim: EconiaSimulator, make_feed,
                                                                        cluster, registry) -> None:
    """``recognized_market_event`` is applied (counted, checked against /markets); rows on the dropped
    ``new_*_order`` channels (an older DSS) are counted, not published, and break nothing."""
    sim, ex = econia_sim, econia_sim.exchange
    channels = ["fill_event", "place_limit_order_event", "change_order_size_event", "cancel_order_event",
                "market_registration_event", "place_market_order_event", "place_swap_order_event",
                "recognized_market_event", "new_market_order", "new_limit_order"]
    feed = make_feed(sim, econia_channels=channels)
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        m1 = ex.markets[0]
        ex.recognize_market(m1)
        order = ex.place_limit_order(m1)
        ex.notify("new_limit_order", {  # aggregator.user_history_limit insert row (pre-2023-11-11 DSS)
            "market_id": m1.market_id, "order_id": order.order_id, "user": order.user, "custodian_id": 0,
            "side": order.side, "self_matching_behavior": 0, "restriction": 0})
        ex.take(m1, fills=1)
        await wait_until(lambda: caught_up(feed, sim) and feed.legacy_order_rows == 1, 10, "events applied")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert feed.recognized_markets == 1 and feed.metrics.count("recognized_markets") == 1
    assert feed.metrics.count("legacy_order_rows") == 1 and feed.metrics.count("parse_errors") == 0
    assert feed.normalizer.taker_orders == 1


async def test_taker_whose_place_notification_is_lost_ends_in_the_venue_state(
        econia_sim: EconiaSimulator, make_feed, cluster, registry) -> None:
    """Only the place notification of a swap and of three market orders is lost: their fills and cancels come
    live and are published past the reorder window; the reconcile after a reconnect brings the places back
    (the timer's reconcile is far off, so nothing can recover them sooner). The late place is published as it
    was, followed by the order's state after those fills and its cancel."""
    sim, ex = econia_sim, econia_sim.exchange
    feed = make_feed(sim, econia_reorder_seconds=0.05, econia_reconcile_seconds=120.0, econia_reconcile_lookback=120.0)
    start = await end_offsets(cluster.bootstrap, [TRADES, ACCOUNT, BOOK])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        m1, m2 = ex.markets
        for m in (m1, m2):
            for side in (True, False):
                for _ in range(4):
                    ex.place_limit_order(m, side=side)
        sim.drop_next_on_channel("place_swap_order_event")
        swap = ex.swap(m1, fills=2, direction=False, odd_subunits=True)  # fills, then a cancel of half a lot
        sim.drop_next_on_channel("place_market_order_event", 3)
        market = ex.take(m2, fills=2, direction=True)  # fills only
        ex.take(m2, direction=False, exhaust=True)  # fills, then a cancel
        empty = ex.take(m2, direction=False, exhaust=True)  # no asks left: only a cancel comes live
        assert swap.cancel_reason == 8 and market and empty == []
        await wait_until(lambda: caught_up(feed, sim), 15, "fills and cancels published")
        assert feed.normalizer.taker_orders == len(ex.taker_orders) - 4  # the lost places are not back yet
        sim.disconnect_all()
        await wait_until(lambda: feed.connections >= 2 and caught_up(feed, sim)
                         and feed.normalizer.taker_orders == len(ex.taker_orders), 20,
                         "lost places recovered by the reconcile after the reconnect")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [c for c, _, _ in sim.dropped] == ["place_swap_order_event"] + ["place_market_order_event"] * 3
    assert feed.normalizer.late_taker_places == 4 and feed.late_events == 4
    _, events = await read_all(cluster, registry, sim, start)
    check_taker_final_states(events, sim)
    late = got_records(events, swap.order_id)
    assert [r[3] for r in late] == ["NEW", "PARTIALLY_FILLED", "CANCELLED"]
    unknown_to_rest = ex.taker_orders[(m2.market_id, max(oid for _, oid in ex.taker_orders))]
    assert [r[3] for r in got_records(events, unknown_to_rest.order_id)] == ["NEW", "CANCELLED"]
    assert feed.metrics.count("parse_errors") == 0
    await check_books(cluster, registry, sim, start, resyncs_allowed=True)

"""Econia in venue order, through the wire (simulated DSS -> EconiaFeed -> real Kafka + registry).

The simulator delivers transactions out of order (within and beyond the producer's reorder window),
silently drops notifications on a healthy socket, places limit orders that cross the spread (one
transaction: the place, then its fills), and closes the socket with 3001 while a pre-issued token is still
valid. At the end the books, trades, fills and orders in Kafka equal the simulator's truth, and no
published book state was crossed (the simulated venue's book never is)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from producers.core.errors import TerminalFeedError
from schemas.topics import ACCOUNT, BOOK, TRADES
from simulators.econia.server import DEV_SECRET, EconiaSimulator, mint_token
from tests.econia.conftest import caught_up, wait_until
from tests.econia.test_econia_taker import check_taker_final_states
from tests.econia.test_econia_wire import (
    account,
    check_account_fills,
    check_books,
    check_tape,
    nominal_size,
    read_all,
)
from tests.feedcore.kafka_reader import end_offsets

log = logging.getLogger(__name__)
WINDOW = 0.4  # the producer's reorder window in these tests (s)


def order_states(events: list[dict]) -> dict[str, dict]:
    """What a consumer knows of each order from the account topic, in offset order per account: an ORDER
    record sets the order's state; a maker FILL after it takes its size off the remaining size."""
    states: dict[str, dict] = {}
    for e in events:
        if e["kind"] == "ORDER":
            o = e["order"]
            states[o["order_id"]] = {"status": o["status"], "remaining": Decimal(o["remaining_size"]),
                                     "account": e["account"]}
        elif e["kind"] == "FILL" and e["fill"]["is_maker"] and e["fill"]["order_id"] in states:
            st = states[e["fill"]["order_id"]]
            st["remaining"] -= Decimal(e["fill"]["size"])
    return states


def check_orders(events: list[dict], sim: EconiaSimulator) -> None:
    states = order_states(events)
    wrong = []
    for (_, oid), o in sim.exchange.orders.items():
        st = states.get(str(oid))
        if st is None:
            wrong.append((oid, "missing"))
            continue
        want_remaining = nominal_size(o.market, o.size)
        cancelled = st["status"] == "CANCELLED"
        if st["remaining"] != want_remaining or cancelled != (o.status == "cancelled") \
                or st["account"] != account(o.user, o.custodian_id):
            wrong.append((oid, o.status, str(want_remaining), st))
    if wrong:
        oid = str(wrong[0][0])
        trail = [(e["event_id"].split(":", 2)[2], e["order"]["status"], e["order"]["remaining_size"])
                 if e["kind"] == "ORDER" else (e["event_id"].split(":", 2)[2], e["fill"]["size"])
                 for e in events if (e.get("order") or e.get("fill") or {}).get("order_id") == oid]
        raise AssertionError(f"{len(wrong)} of {len(sim.exchange.orders)} orders differ: {wrong[:3]}; "
                             f"the first one's records in Kafka: {trail}")


def settled(feed) -> bool:  # type: ignore[no-untyped-def]
    """Nothing left to repair: no market waiting for a resync, no order waiting for a restate."""
    return not feed.normalizer.restate_needed and (feed.books is None or not feed.books.broken)


async def run_activity(sim: EconiaSimulator, bursts: int, per_burst: int = 6) -> None:
    """Bursts of transactions (so held ones are overtaken by the next transaction), paced a little."""
    for _ in range(bursts):
        for _ in range(per_burst):
            sim.exchange.random_activity()
        await asyncio.sleep(0.03)


async def test_out_of_order_and_dropped_notifications_end_equal_to_the_venue(
        econia_sim: EconiaSimulator, make_feed, cluster, registry) -> None:
    sim, ex = econia_sim, econia_sim.exchange
    ex.crossing_orders = True
    sim.reorder_probability = 0.3  # held until after the next transaction (or 0.2 s): inside the window
    sim.reorder_max_delay = 0.2
    sim.drop_probability = 0.02
    feed = make_feed(sim, econia_reorder_seconds=WINDOW, econia_reconcile_seconds=0.5,
                     econia_reconcile_lookback=3.0)
    start = await end_offsets(cluster.bootstrap, [TRADES, ACCOUNT, BOOK])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        for m in ex.markets:  # a book to cross
            for _ in range(8):
                ex.place_limit_order(m)
        await run_activity(sim, 30)
        sim.drop_next_txns(5)  # five transactions in the middle never notified; the socket stays up
        await run_activity(sim, 30)
        sim.reorder_probability = sim.drop_probability = 0.0
        sim.flush_held()
        await wait_until(lambda: caught_up(feed, sim), 30, "every transaction applied")
        await wait_until(lambda: all((txn, idx) in feed._seen for _, txn, idx in sim.dropped), 30,  # noqa: SLF001
                         "every dropped notification recovered by a reconcile")
        await wait_until(lambda: settled(feed), 30, "books resynced and orders restated")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    reordered, dropped = sim.stats["reordered_txns"], len(sim.dropped)
    log.warning("econia faults: %d txns delivered after a later one, %d notifications dropped, %d crossing orders; "
                "feed: %d events put back in order, %d late (%d applied to the book in place), %d recovered from REST, "
                "%d book resyncs, %d orders restated, %d crossed derived states caught", reordered, dropped,
                ex.crossings, feed.reordered, feed.late_events, feed.books.late_applied if feed.books else -1,
                feed.backfilled, feed.book_resyncs, feed.restated, feed.metrics.count("crossed"))
    assert reordered >= 10 and dropped >= 10 and ex.crossings >= 5, "the faults did not happen"
    trades, events = await read_all(cluster, registry, sim, start)
    check_tape(trades, ex.fills)  # every fill once
    check_account_fills(events, ex.fills)
    check_orders(events, sim)  # the last word on every order is the venue's
    check_taker_final_states(events, sim)  # market orders and swaps too
    log.warning("econia takers: %d market orders/swaps, %d placed after their fills or cancel (place dropped)",
                len(ex.taker_orders), feed.normalizer.late_taker_places)
    assert len(ex.taker_orders) >= 40
    assert len({e["event_id"] for e in events}) == len(events)
    assert feed.backfilled >= dropped  # every dropped notification came back from REST
    assert feed.reordered >= reordered  # the window put them back in order
    assert feed.metrics.count("parse_errors") == 0
    # never a crossed state in Kafka (a transaction with a dropped fill can leave the derived book crossed:
    # that is caught before publishing and resynced), and equal to the venue at the end
    await check_books(cluster, registry, sim, start, resyncs_allowed=True)


async def test_cancel_delivered_long_before_its_place(econia_sim: EconiaSimulator, make_feed, cluster,
                                                      registry) -> None:
    """A place held back far beyond the reorder window (and before the next reconcile): its cancel goes out
    first; the late place is published as it was, the order is restated as cancelled, the book resynced."""
    sim, ex = econia_sim, econia_sim.exchange
    feed = make_feed(sim, econia_reorder_seconds=0.1, econia_reconcile_seconds=60.0,
                     econia_reconcile_lookback=60.0)
    start = await end_offsets(cluster.bootstrap, [TRADES, ACCOUNT, BOOK])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        await run_activity(sim, 5)
        m = ex.markets[0]
        sim.hold_next_txn(2.0)  # far beyond the 0.1 s window, even on a busy machine
        placed = ex.place_limit_order(m, price=1_020, size=77)
        ex.cancel(m, placed)
        await run_activity(sim, 5)
        await wait_until(lambda: feed.late_events >= 1, 10, "the late place")
        await run_activity(sim, 5)
        await wait_until(lambda: caught_up(feed, sim) and settled(feed), 15, "caught up")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert feed.late_events == 1 and feed.restated == 1 and feed.book_resyncs >= 1
    trades, events = await read_all(cluster, registry, sim, start)
    mine = [e for e in events if e["kind"] == "ORDER" and e["order"]["order_id"] == str(placed.order_id)]
    assert [e["order"]["status"] for e in mine] == ["CANCELLED", "NEW", "CANCELLED"]  # as seen, then restated
    assert mine[-1]["order"]["venue_status"] == "restated:cancelled"
    check_tape(trades, ex.fills)
    check_orders(events, sim)
    await check_books(cluster, registry, sim, start, resyncs_allowed=True)


async def test_late_fill_is_applied_in_place_without_a_resync(econia_sim: EconiaSimulator, make_feed, cluster,
                                                              registry) -> None:
    """A fill delivered after later transactions of other orders: the order model allows it, so the book
    takes it as a correction DELTA (no RESET), and everything ends equal to the venue."""
    sim, ex = econia_sim, econia_sim.exchange
    feed = make_feed(sim, econia_reorder_seconds=0.1, econia_reconcile_seconds=60.0,
                     econia_reconcile_lookback=60.0)
    start = await end_offsets(cluster.bootstrap, [TRADES, ACCOUNT, BOOK])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        for m in ex.markets:
            for _ in range(6):
                ex.place_limit_order(m)
        await wait_until(lambda: caught_up(feed, sim), 10, "book built")
        for m in ex.markets:
            sim.hold_next_txn(2.0)  # far beyond the 0.1 s window, even on a busy machine
            ex.take(m, fills=2)
            for _ in range(4):  # later transactions, other orders
                ex.place_limit_order(m)
            await asyncio.sleep(0.2)
        await wait_until(lambda: feed.late_events >= 8, 10, "the late fills (2 fills x 2 copies x 2 markets)")
        await wait_until(lambda: caught_up(feed, sim) and settled(feed), 10, "caught up")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert feed.books is not None and feed.books.late_applied == 4 and feed.book_resyncs == 0
    await check_books(cluster, registry, sim, start)  # one SNAPSHOT, no RESET, equal to the venue
    trades, events = await read_all(cluster, registry, sim, start)
    check_tape(trades, ex.fills)
    check_orders(events, sim)


async def test_crossing_orders_never_publish_a_crossed_book(econia_sim: EconiaSimulator, make_feed, cluster,
                                                            registry) -> None:
    """No reordering: the only way to a crossed state would be between the events of one transaction."""
    sim, ex = econia_sim, econia_sim.exchange
    feed = make_feed(sim, econia_reorder_seconds=0.05)
    start = await end_offsets(cluster.bootstrap, [TRADES, ACCOUNT, BOOK])
    task = asyncio.create_task(feed.run())
    crossings = 0
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        for _ in range(30):
            for m in ex.markets:
                ex.place_limit_order(m)
                ex.place_limit_order(m)
                crossings += ex.place_crossing_limit_order(m) is not None
            await asyncio.sleep(0.01)
        await wait_until(lambda: caught_up(feed, sim), 20, "events processed")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert crossings >= 40
    assert feed.metrics.count("crossed") == 0 and feed.book_resyncs == 0 and feed.late_events == 0
    await check_books(cluster, registry, sim, start)  # exactly one SNAPSHOT, no RESET, never crossed
    trades, events = await read_all(cluster, registry, sim, start)
    check_tape(trades, ex.fills)
    check_orders(events, sim)


async def test_pre_issued_token_survives_a_3001_close(econia_sim: EconiaSimulator, make_feed, cluster,
                                                      registry) -> None:
    sim, ex = econia_sim, econia_sim.exchange
    token = mint_token(DEV_SECRET, ["fill_event", "place_limit_order_event", "change_order_size_event",
                                    "cancel_order_event", "market_registration_event"], ttl=3600)
    feed = make_feed(sim, econia_jwt_secret=None, api_token=token, econia_reconcile_seconds=0.5,
                     econia_reconcile_lookback=2.0)
    start = await end_offsets(cluster.bootstrap, [TRADES, ACCOUNT, BOOK])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "connected")
        for round_ in range(2):
            await run_activity(sim, 5)
            assert await sim.close_all(3001, "JWT expired") == 1
            await run_activity(sim, 3)  # while away: recovered on reconnect
            await wait_until(lambda r=round_: feed.connections >= r + 2 and feed.ready, 15, "reconnected")
        await run_activity(sim, 5)
        await wait_until(lambda: caught_up(feed, sim) and settled(feed), 15, "caught up")
        assert not task.done(), "the producer stopped"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert feed.token_reconnects == 2 and feed.tokens_minted == 0 and feed.stop_reason is None
    trades, events = await read_all(cluster, registry, sim, start)
    check_tape(trades, ex.fills)
    check_orders(events, sim)
    await check_books(cluster, registry, sim, start)


async def test_pre_issued_token_past_its_exp_stops_with_a_clear_error(econia_sim: EconiaSimulator,
                                                                       make_feed) -> None:
    sim = econia_sim
    token = mint_token(DEV_SECRET, ["fill_event"], ttl=1.5)
    feed = make_feed(sim, econia_jwt_secret=None, api_token=token, econia_channels=["fill_event"])
    with pytest.raises(TerminalFeedError, match=r"pre-issued token .* expired at .* nothing can mint") as info:
        await asyncio.wait_for(feed.run(), 15)
    assert "3001" in str(info.value) and sim.stats["expired_closes"] == 1 and feed.connections == 1

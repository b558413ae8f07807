"""Drift producer through the wire: simulator -> DriftFeed -> real Kafka + registry -> rebuilt state.

After a scenario with abrupt disconnects, malformed frames, slot regressions, duplicated fills and
several messages per frame, the book rebuilt from Kafka equals the simulator's true book, every fill
the simulator delivered is on the tape exactly once at the exact price, and the metrics counted every
fault.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

from producers.drift.settings import DriftMarketSpec
from schemas.topics import BOOK, TICKER, TRADES, market_key
from simulators.drift import DriftSimulator, price_text, units_to_text
from tests.drift.conftest import spec_text, wait_until
from tests.feedcore.book_replay import replay_book
from tests.feedcore.kafka_reader import end_offsets, read_events


def true_book(sim: DriftSimulator, name: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    book = sim.books[name]
    exp = book.market.base_precision_exp
    return ({Decimal(price_text(p)): Decimal(units_to_text(s, exp)) for p, s in book.bids},
            {Decimal(price_text(p)): Decimal(units_to_text(s, exp)) for p, s in book.asks})


async def run_until_caught_up(feed, sim: DriftSimulator) -> None:  # type: ignore[no-untyped-def]
    """Stop the simulated market, wait for the feed to hold every true book, then stop the feed (flush)."""
    await wait_until(lambda: all(m.last_slot == sim.books[m.spec.name].slot for m in feed.markets), 15,
                     "the feed to publish the final true books")


async def test_scenario_book_equals_truth_no_trade_lost_or_duplicated(drift_sim: DriftSimulator, make_feed,
                                                                      cluster, registry) -> None:
    sim = drift_sim
    feed = make_feed(sim)
    start = await end_offsets(cluster.bootstrap, [BOOK, TRADES, TICKER])
    task = asyncio.create_task(feed.run())
    malformed = stale = dup_fills = 0
    try:
        await wait_until(lambda: feed.ready, 15, "subscribed")
        await wait_until(lambda: len(sim.delivered) >= 5, 10, "first fills")
        malformed += sim.send_malformed(5)
        dup_fills += sum(sim.duplicate_last_trade(m) for m in sim.markets if m.name in sim.last_fill)
        stale += sim.send_stale_book(sim.markets[0])
        await asyncio.sleep(0.3)
        sim.messages_per_frame = 4  # several JSON messages per frame, split on "\n"
        await asyncio.sleep(0.5)
        malformed += sim.send_malformed(3)
        await asyncio.sleep(0.3)
        sim.messages_per_frame = 1
        sim.disconnect_all()  # abrupt: no close frame
        await wait_until(lambda: feed.connections >= 2 and feed.ready, 15, "reconnect 1")
        await asyncio.sleep(0.5)
        malformed += sim.send_malformed(2)
        await asyncio.sleep(0.3)
        sim.disconnect_all()
        await wait_until(lambda: feed.connections >= 3 and feed.ready, 15, "reconnect 2")
        await wait_until(lambda: all(m.published_slot is not None for m in feed.markets), 10, "books after reconnect")
        # the end: the market stops, one last true book per market, then a stale one that must be ignored
        sim.publishing = False
        await asyncio.sleep(0.2)
        for m in sim.markets:
            sim.publish_now(m, fills=2)
        await asyncio.sleep(0.2)
        stale += sim.send_stale_book(sim.markets[1])
        await run_until_caught_up(feed, sim)
        await asyncio.sleep(0.3)  # let the stale frame arrive and be dropped
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # books: rebuilt from Kafka as a consumer would, equal to the truth
    for m in sim.markets:
        spec = DriftMarketSpec.parse(spec_text(m))
        events = await read_events(cluster.bootstrap, registry, BOOK, start[BOOK.name],
                                   keys={market_key("drift", spec.market)})
        replayed = replay_book(events)
        bids, asks = true_book(sim, m.name)
        assert replayed.in_sync, f"{spec.market}: ended out of sync"
        assert replayed.bids == bids and replayed.asks == asks, f"{spec.market}: book differs from the truth"
        assert replayed.sequence == sim.books[m.name].slot
        assert replayed.duplicates == 0 and not replayed.problems
        assert replayed.resets.count("reconnect") == 2, replayed.resets
        slots = [e["sequence"] for e in events if e["kind"] == "SNAPSHOT"]
        assert all(a < b for a, b in zip(slots, slots[1:], strict=False)), "slots must increase on the topic"

    # trades: every delivered fill once, exact price and size
    keys = {market_key("drift", DriftMarketSpec.parse(spec_text(m)).market) for m in sim.markets}
    trades = await read_events(cluster.bootstrap, registry, TRADES, start[TRADES.name], keys=keys)
    counts = Counter(t["trade_id"] for t in trades)
    assert [k for k, n in counts.items() if n > 1] == []
    truth = {f"{sig}:{rid}": f for (sig, rid), f in sim.delivered.items()}
    assert set(counts) == set(truth), (f"missing {len(set(truth) - set(counts))}, "
                                       f"unexpected {len(set(counts) - set(truth))}")
    for t in trades:
        f = truth[t["trade_id"]]
        assert t["price"] == price_text(f.price_units), t
        assert t["size"] == units_to_text(f.base_amount, f.market.base_precision_exp), t
        assert t["side"] == {"long": "BUY", "short": "SELL", None: "UNKNOWN"}[f.taker_direction]
        assert t["exchange_ts"] == f.ts_s * 1_000_000

    # tickers: what the DLOB sends beside the levels (first levels, markPrice, oracle), published on change;
    # the last one of each market is the final true book's
    tickers = await read_events(cluster.bootstrap, registry, TICKER, start[TICKER.name], keys=keys)
    for m in sim.markets:
        market = DriftMarketSpec.parse(spec_text(m)).market
        mine = [t for t in tickers if t["market"] == market]
        assert mine, f"{market}: no ticker"
        fields = ("best_bid", "best_bid_size", "best_ask", "best_ask_size", "mark_price", "index_price")
        rows = [tuple(t[f] for f in fields) for t in mine]
        assert all(a != b for a, b in zip(rows, rows[1:], strict=False)), "a ticker repeated an unchanged one"
        book, exp = sim.books[m.name], m.base_precision_exp
        assert rows[-1] == (price_text(book.bids[0][0]), units_to_text(book.bids[0][1], exp),
                            price_text(book.asks[0][0]), units_to_text(book.asks[0][1], exp),
                            price_text(book.mark), price_text(book.oracle)), market
        assert all(t["last_price"] is None and t["funding_rate"] is None for t in mine)
        assert any(t["index_price"] != t["mark_price"] for t in mine)  # the oracle is read, not the mid

    # metrics counted every fault
    assert feed.metrics.count("parse_errors") == malformed
    assert feed.metrics.count("stale") == stale + dup_fills
    assert feed.metrics.count("reconnects") == 2
    assert feed.metrics.count("heartbeats") >= 1
    assert sim.stats["overflow_closes"] == 0 and sim.stats["dropped_backpressure"] == 0
    print(f"trades={len(trades)} malformed={malformed} stale={stale} dup={dup_fills} {feed.metrics.snapshot()}")


async def test_rest_l2_snapshot_on_connect_gives_a_book_before_the_first_ws_message(drift_sim: DriftSimulator,
                                                                                     make_feed, cluster,
                                                                                     registry) -> None:
    """The grouped channel sends nothing on subscribe; with the REST option the book is there at once."""
    sim = drift_sim
    sim.publishing = False  # no WS books at all: only /l2 can provide them
    await asyncio.sleep(0.1)
    feed = make_feed(sim, drift_rest_snapshot_on_connect=True, drift_trades=False)
    start = await end_offsets(cluster.bootstrap, [BOOK])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: all(m.published_slot is not None for m in feed.markets), 10, "REST snapshots")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sim.stats["rest_l2"] == len(sim.markets) and sim.stats["books_sent"] == 0
    for m in sim.markets:
        spec = DriftMarketSpec.parse(spec_text(m))
        events = await read_events(cluster.bootstrap, registry, BOOK, start[BOOK.name],
                                   keys={market_key("drift", spec.market)})
        replayed = replay_book(events)
        assert (replayed.bids, replayed.asks) == true_book(sim, m.name)
        assert replayed.sequence == sim.books[m.name].slot

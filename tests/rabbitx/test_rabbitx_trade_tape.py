"""TradeTape logic without Kafka (CapturingEmitter): duplicates, order, holes recovered / marked, a malformed
REST row, and a publisher blocked by back-pressure cancelled mid-way (nothing lost, nothing twice); the
REST history walk against the simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from producers.core.emitter import EventEmitter
from producers.core.errors import InexactNumber
from producers.core.metrics import FeedMetrics
from producers.rabbitx.trade_history import HistoryWindow, trades_between
from producers.rabbitx.trades import TradeTape
from schemas.topics import TRADES, TopicSpec
from simulators.rabbitx import RabbitXSimulator
from tests.feedcore.capture import CapturingEmitter

M = "BTC-USD"


def trade(n: int) -> dict[str, Any]:
    return {"id": f"{M}-{n}", "market_id": M, "price": f"65000.{n % 10}", "size": "0.01", "liquidation": False,
            "taker_side": "long" if n % 2 else "short", "timestamp": 1_700_000_000_000_000 + n}


class History:
    """A venue REST history holding the trades ``oldest..newest`` (``broken``: rows that are malformed)."""

    def __init__(self, oldest: int, newest: int, broken: frozenset[int] = frozenset(), fail: bool = False) -> None:
        self.oldest, self.newest, self.broken, self.fail = oldest, newest, broken, fail
        self.calls: list[tuple[int, int]] = []

    async def __call__(self, symbol: str, after: int, before: int) -> HistoryWindow:
        self.calls.append((after, before))
        if self.fail:
            raise ConnectionError("REST down")
        rows = {}
        for n in range(max(after + 1, self.oldest), min(before, self.newest + 1)):
            row = trade(n)
            if n in self.broken:
                del row["price"]
            rows[n] = row
        return HistoryWindow(rows=rows, oldest=self.oldest, pages=1, complete=self.oldest <= after + 1)


def tape_with(history: History, emitter: EventEmitter | None = None) -> tuple[TradeTape, CapturingEmitter]:
    metrics = FeedMetrics("rabbitx")
    em = emitter or CapturingEmitter("rabbitx", metrics)
    assert isinstance(em, CapturingEmitter)
    return TradeTape(M, f"{M}-PERP", em, em.metrics, history), em


def tiles(records: list[dict[str, Any]]) -> list[int]:
    out: list[int] = []
    for r in records:
        if r["gap"] is None:
            out.append(int(r["trade_id"].rsplit("-", 1)[1]))
        else:
            after, before = (int(x.rsplit("-", 1)[1]) for x in (r["gap"]["after_id"], r["gap"]["before_id"]))
            assert r["gap"]["missing_count"] == before - after - 1
            out.extend(range(after + 1, before))
    return out


async def test_duplicates_skipped_and_each_message_published_in_number_order() -> None:
    tape, em = tape_with(History(1, 100))
    await tape.accept([trade(n) for n in (3, 1, 2)], 1)
    await tape.accept([trade(n) for n in (2, 3, 4)], 2)  # a snapshot repeating recent trades
    assert [r["trade_id"] for r in em.of(TRADES)] == [f"{M}-{n}" for n in (1, 2, 3, 4)]
    assert em.metrics.count("duplicates") == 2 and tape.holes == 0


async def test_hole_partly_beyond_history_one_marker_then_recovered_then_live() -> None:
    history = History(oldest=40, newest=100)
    tape, em = tape_with(history)
    await tape.accept([trade(10)], 1)
    await tape.accept([trade(60), trade(61)], 2)
    await tape.settled()
    assert history.calls == [(10, 60)]
    records = em.of(TRADES)
    assert tiles(records) == list(range(10, 62))
    assert records[1]["gap"]["after_id"] == f"{M}-10" and records[1]["gap"]["before_id"] == f"{M}-40"
    assert records[1]["gap"]["reason"] == "history-exhausted"
    m = em.metrics
    assert (m.count("recovered"), m.count("gap_markers"), m.count("missing_events")) == (20, 1, 29)


async def test_rest_failure_marks_the_whole_hole_and_a_malformed_row_only_itself() -> None:
    tape, em = tape_with(History(1, 100, fail=True))
    await tape.accept([trade(5)], 1)
    await tape.accept([trade(9)], 2)
    await tape.settled()
    [marker] = [r for r in em.of(TRADES) if r["gap"] is not None]
    assert marker["gap"]["reason"] == "recovery-failed" and marker["gap"]["missing_count"] == 3

    tape, em = tape_with(History(1, 100, broken=frozenset({7})))
    await tape.accept([trade(5)], 1)
    await tape.accept([trade(9)], 2)
    await tape.settled()
    records = em.of(TRADES)
    assert tiles(records) == [5, 6, 7, 8, 9]
    assert [r["gap"]["missing_count"] for r in records if r["gap"] is not None] == [1]
    assert em.metrics.count("parse_errors") == 1 and em.metrics.count("recovered") == 2


class GatedEmitter(CapturingEmitter):
    """``emit`` waits while the gate is closed, like ``publish`` on a full buffer during a Kafka outage."""

    def __init__(self, metrics: FeedMetrics) -> None:
        super().__init__("rabbitx", metrics)
        self.gate = asyncio.Event()
        self.gate.set()

    async def emit(self, spec: TopicSpec, key: bytes, record: dict[str, Any], channel: str) -> None:
        await self.gate.wait()
        await super().emit(spec, key, record, channel)


async def test_a_reader_cancelled_while_the_publisher_blocks_loses_nothing() -> None:
    """The connection dies while ``publish`` waits (the core cancels the reader): the tape stays at the last
    trade really buffered, and the next snapshot (after the reconnect) brings the rest back by REST."""
    history = History(1, 1000)
    em = GatedEmitter(FeedMetrics("rabbitx"))
    tape, _ = tape_with(history, em)
    await tape.accept([trade(n) for n in range(1, 4)], 1)
    em.gate.clear()  # Kafka away
    reader = asyncio.create_task(tape.accept([trade(n) for n in range(4, 8)], 2))
    await asyncio.sleep(0.05)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    assert tape.last == 3
    em.gate.set()
    await tape.accept([trade(n) for n in range(20, 25)], 3)  # the resubscribe reply: only recent trades
    await tape.settled()
    assert [int(r["trade_id"].rsplit("-", 1)[1]) for r in em.of(TRADES)] == list(range(1, 25))
    assert history.calls == [(3, 20)] and em.metrics.count("recovered") == 16


@pytest.mark.sim(rest_trade_history=1000)
async def test_rest_walk_against_the_simulator_stops_where_it_should(sim: RabbitXSimulator) -> None:
    m = sorted(sim.markets)[0]
    while len(sim.markets[m].trades) < 1500:
        sim.generate(500)
    numbers = [int(t["id"].rsplit("-", 1)[1]) for t in sim.markets[m].trades]
    newest, retained = numbers[-1], numbers[-1000:]
    async with aiohttp.ClientSession() as http:
        within = await trades_between(http, sim.rest_url, m, newest - 250, newest - 5, page_limit=100)
        assert sorted(within.rows) == list(range(newest - 249, newest - 5))
        assert within.complete and within.pages == 3 and not within.page_limited

        beyond = await trades_between(http, sim.rest_url, m, numbers[0], newest, page_limit=300)
        assert sorted(beyond.rows) == retained[:-1] and beyond.oldest == retained[0]
        assert not beyond.complete and not beyond.page_limited and beyond.pages == 4  # 300+300+300+100

        limited = await trades_between(http, sim.rest_url, m, numbers[0], newest, page_limit=100, max_pages=2)
        assert sorted(limited.rows) == retained[-200:-1] and limited.page_limited and not limited.complete


class SlowHistory(History):
    """A REST history that answers only when ``release`` is set."""

    def __init__(self, oldest: int, newest: int) -> None:
        super().__init__(oldest, newest)
        self.release = asyncio.Event()

    async def __call__(self, symbol: str, after: int, before: int) -> HistoryWindow:
        await self.release.wait()
        return await super().__call__(symbol, after, before)


async def test_the_reader_is_not_held_by_a_hole_and_later_trades_wait_behind_it() -> None:
    history = SlowHistory(1, 1000)
    tape, em = tape_with(history)
    tape.held_max = 10
    await tape.accept([trade(1)], 1)
    await asyncio.wait_for(tape.accept([trade(5), trade(6)], 2), 1)  # hole 2..4: returns at once
    await asyncio.wait_for(tape.accept([trade(7)], 3), 1)
    await asyncio.wait_for(tape.accept([trade(6), trade(8)], 4), 1)  # a repeat is dropped when drained
    assert tape.filling and [r["trade_id"] for r in em.of(TRADES)] == [f"{M}-1"]
    blocked = asyncio.create_task(tape.accept([trade(n) for n in range(9, 20)], 5))  # beyond held_max: waits
    await asyncio.sleep(0.05)
    assert not blocked.done()
    history.release.set()
    await asyncio.wait_for(blocked, 5)
    await tape.settled()
    assert [r["trade_id"] for r in em.of(TRADES)] == [f"{M}-{n}" for n in range(1, 20)]
    assert em.metrics.count("recovered") == 3 and em.metrics.count("duplicates") == 1


async def test_malformed_trade_is_counted_and_skipped_and_a_float_price_is_read_again_exactly() -> None:
    tape, em = tape_with(History(1, 100))
    bad = trade(2)
    bad["size"] = "lots"
    await tape.accept([trade(1), bad, trade(3)], 1)  # 2 is malformed on the socket: recovered from REST
    await tape.settled()
    assert [r["trade_id"] for r in em.of(TRADES)] == [f"{M}-{n}" for n in (1, 2, 3)]
    assert em.metrics.count("parse_errors") == 1 and em.metrics.count("recovered") == 1
    floated = trade(4)
    floated["price"] = 65000.5
    with pytest.raises(InexactNumber):
        await tape.accept([floated], 2)
    assert tape.last == 3

"""BookSynchronizer unit tests (no Kafka): buffering, stale drop, gaps, resets, crossed books, exactness."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

import pytest

from producers.core.book import BookSynchronizer
from producers.core.errors import InexactNumber
from producers.core.metrics import FeedMetrics
from tests.feedcore.book_replay import replay_book


class Harness:
    def __init__(self, venue: str = "unit", **kw: Any) -> None:
        self.metrics = FeedMetrics(venue)
        self.published: list[dict[str, Any]] = []
        self.resync_reasons: list[str] = []
        self.sync = BookSynchronizer(venue, "BTC-USD", "BTC-USD", publish=self._publish, metrics=self.metrics,
                                     resync=self._resync, **kw)

    async def _publish(self, record: dict[str, Any]) -> None:
        self.published.append(record)

    async def _resync(self, sync: BookSynchronizer, reason: str) -> None:
        self.resync_reasons.append(reason)

    def kinds(self) -> list[str]:
        return [r["kind"] for r in self.published]


def ts() -> dict[str, int]:
    return {"exchange_ts": 1_700_000_000_000_000, "receive_ts": 1_700_000_000_000_100}


async def test_deltas_before_snapshot_are_buffered_then_stale_ones_dropped() -> None:
    h = Harness()
    await h.sync.delta([["100", "1"]], [], sequence=10, **ts())  # older than the snapshot
    await h.sync.delta([["101", "2"]], [], sequence=12, **ts())
    await h.sync.delta([], [["105", "3"]], sequence=13, **ts())
    assert h.published == []
    await h.sync.snapshot([["99", "5"], ["100", "4"]], [["106", "1"]], sequence=11, **ts())
    assert h.kinds() == ["SNAPSHOT", "DELTA", "DELTA"]
    assert h.metrics.count("stale") == 1
    snap = h.published[0]
    assert [lv["price"] for lv in snap["bids"]] == ["100", "99"]  # best first even if sent ascending
    assert h.sync.book.as_dict() == {"bids": {Decimal(100): Decimal(4), Decimal(99): Decimal(5),
                                              Decimal(101): Decimal(2)},
                                     "asks": {Decimal(106): Decimal(1), Decimal(105): Decimal(3)}}
    assert h.published[1]["prev_sequence"] == 11 and h.published[2]["prev_sequence"] == 12


async def test_gap_publishes_reset_then_snapshot_and_asks_for_resync() -> None:
    h = Harness()
    await h.sync.snapshot([["100", "1"]], [["101", "1"]], sequence=1, **ts())
    await h.sync.delta([["100", "2"]], [], sequence=2, **ts())
    await h.sync.delta([["100", "3"]], [], sequence=4, **ts())  # 3 is missing
    await asyncio.sleep(0)  # resync task runs
    assert h.metrics.count("gaps") == 1 and h.metrics.count("resyncs") == 1
    assert h.resync_reasons == ["gap"]
    assert h.kinds() == ["SNAPSHOT", "DELTA", "RESET"]
    assert h.published[-1]["reason"] == "gap"
    await h.sync.delta([["100", "7"]], [], sequence=5, **ts())  # buffered while out of sync
    await h.sync.snapshot([["100", "3"]], [["101", "1"]], sequence=4, **ts())
    # no second RESET: downstream already discarded its book
    assert h.kinds() == ["SNAPSHOT", "DELTA", "RESET", "SNAPSHOT", "DELTA"]
    assert h.sync.book.as_dict()["bids"] == {Decimal(100): Decimal(7)}
    assert h.metrics.count("stale") == 1  # the buffered seq 4 <= snapshot 4
    replay = replay_book(h.published)
    assert replay.problems == [] and replay.in_sync and replay.bids == {Decimal(100): Decimal(7)}


async def test_reset_on_disconnect_then_new_snapshot() -> None:
    h = Harness()
    await h.sync.snapshot([["100", "1"]], [["101", "1"]], sequence=1, **ts())
    await h.sync.reset("reconnect")
    await h.sync.reset("reconnect")  # idempotent: one RESET downstream
    await h.sync.delta([["100", "9"]], [], sequence=2, **ts())  # not applied before the snapshot
    await h.sync.snapshot([["100", "2"]], [["101", "1"]], sequence=5, **ts())
    assert h.kinds() == ["SNAPSHOT", "RESET", "SNAPSHOT"]
    assert h.published[1]["reason"] == "reconnect"
    assert h.resync_reasons == []
    assert h.sync.book.as_dict()["bids"] == {Decimal(100): Decimal(2)}


async def test_resnapshot_without_reset_publishes_reset_first() -> None:
    h = Harness()
    await h.sync.snapshot([["100", "1"]], [], sequence=1, **ts())
    await h.sync.snapshot([["100", "2"]], [], sequence=9, **ts(), reason="resubscribe")
    assert h.kinds() == ["SNAPSHOT", "RESET", "SNAPSHOT"]
    assert h.published[1]["reason"] == "resubscribe"
    ids = [r["event_id"] for r in h.published]
    assert len(set(ids)) == 3


async def test_zero_deletes_and_zero_text_is_normalized() -> None:
    h = Harness()
    await h.sync.snapshot([["100.50", "1"], ["100.40", "2"]], [["101", "1"]], sequence=1, **ts())
    await h.sync.delta([["100.5", "0.000"]], [], sequence=2, **ts())
    assert h.published[-1]["bids"] == [{"price": "100.5", "size": "0"}]
    assert h.sync.book.as_dict()["bids"] == {Decimal("100.40"): Decimal(2)}


async def test_crossed_book_is_counted_and_resynced() -> None:
    h = Harness()
    await h.sync.snapshot([["100", "1"]], [["101", "1"]], sequence=1, **ts())
    await h.sync.delta([["102", "1"]], [], sequence=2, **ts())
    await asyncio.sleep(0)
    assert h.metrics.count("crossed") == 1
    assert h.kinds() == ["SNAPSHOT", "RESET"] and h.published[-1]["reason"] == "crossed"  # crossed delta withheld
    assert h.resync_reasons == ["crossed"]
    assert replay_book(h.published).problems == []


async def test_crossed_snapshot_is_not_published() -> None:
    h = Harness()
    await h.sync.snapshot([["102", "1"]], [["101", "1"]], sequence=1, **ts())
    await asyncio.sleep(0)
    assert h.published == [] and h.resync_reasons == ["crossed"] and not h.sync.synced
    await h.sync.snapshot([["100", "1"]], [["101", "1"]], sequence=2, **ts())
    assert h.kinds() == ["SNAPSHOT"] and h.sync.synced


async def test_crossed_policy_count_only() -> None:
    h = Harness(on_crossed="count")
    await h.sync.snapshot([["102", "1"]], [["101", "1"]], sequence=1, **ts())
    assert h.metrics.count("crossed") == 1 and h.kinds() == ["SNAPSHOT"] and h.resync_reasons == []


async def test_float_levels_are_refused_before_any_state_change() -> None:
    h = Harness()
    await h.sync.snapshot([["100", "1"]], [], sequence=1, **ts())
    with pytest.raises(InexactNumber):
        await h.sync.delta([["100", "2"], [100.1, "1"]], [], sequence=2, **ts())
    assert h.sync.last_sequence == 1 and h.sync.book.as_dict()["bids"] == {Decimal(100): Decimal(1)}
    with pytest.raises(ValueError):
        await h.sync.delta([["abc", "1"]], [], sequence=2, **ts())


async def test_unsequenced_venue_deltas_apply_in_order() -> None:
    h = Harness()
    await h.sync.snapshot([["1", "1"]], [["2", "1"]], **ts())
    await h.sync.delta([["1", "3"]], [], **ts())
    assert h.kinds() == ["SNAPSHOT", "DELTA"] and h.published[1]["sequence"] is None
    assert h.published[0]["event_id"] != h.published[1]["event_id"]


async def test_prev_sequence_venues_check_the_link_not_plus_one() -> None:
    h = Harness(contiguous=False)
    await h.sync.snapshot([["1", "1"]], [["2", "1"]], sequence=100, **ts())
    await h.sync.delta([["1", "2"]], [], sequence=105, prev_sequence=100, **ts())
    await h.sync.delta([["1", "3"]], [], sequence=109, prev_sequence=106, **ts())
    await asyncio.sleep(0)
    assert h.metrics.count("gaps") == 1 and h.kinds() == ["SNAPSHOT", "DELTA", "RESET"]


async def test_event_ids_are_deterministic() -> None:
    async def run() -> list[str]:
        h = Harness()
        await h.sync.snapshot([["100", "1"]], [["101", "1"]], sequence=1, **ts())
        await h.sync.delta([["100", "2"]], [], sequence=2, **ts())
        await h.sync.delta([["100", "3"]], [], sequence=4, **ts())
        return [r["event_id"] for r in h.published]

    assert await run() == await run()


async def test_random_stream_with_faults_replays_to_the_true_book() -> None:
    """Drops, duplicates and swaps in the delta stream; resyncs from the truth; replay == truth."""
    rng = random.Random(7)
    truth: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}
    seq = 0
    h = Harness()

    async def resync(sync: BookSynchronizer, reason: str) -> None:
        pass  # the test delivers the snapshot itself below, like a resubscribe reply would

    h.sync._resync = resync
    pending_snapshot = True
    stream: list[tuple[int, list[list[str]], list[list[str]]]] = []
    for _ in range(3000):
        side = "bids" if rng.random() < 0.5 else "asks"
        price = Decimal(rng.randint(1, 50)) if side == "bids" else Decimal(rng.randint(51, 100))
        size = Decimal(0) if rng.random() < 0.3 else Decimal(rng.randint(1, 900)) / 10
        seq += 1
        if size == 0:
            truth[side].pop(price, None)
        else:
            truth[side][price] = size
        lv = [[str(price), str(size)]]
        stream.append((seq, lv if side == "bids" else [], lv if side == "asks" else []))
        r = rng.random()
        deliver = [stream[-1]]
        if r < 0.01:
            deliver = []  # lost
        elif r < 0.02:
            deliver = [stream[-1], stream[-1]]  # duplicated
        elif r < 0.03 and len(stream) > 2:
            deliver = [stream[-1], stream[-2]]  # late older one
        for s_, b, a in deliver:
            await h.sync.delta(b, a, sequence=s_, **ts())
        await asyncio.sleep(0)
        if not h.sync.synced and (pending_snapshot or rng.random() < 0.2):
            await h.sync.snapshot([[str(p), str(v)] for p, v in truth["bids"].items()],
                                  [[str(p), str(v)] for p, v in truth["asks"].items()], sequence=seq, **ts())
            pending_snapshot = False
    if not h.sync.synced:
        await h.sync.snapshot([[str(p), str(v)] for p, v in truth["bids"].items()],
                              [[str(p), str(v)] for p, v in truth["asks"].items()], sequence=seq, **ts())
    replay = replay_book(h.published)
    assert replay.problems == []
    assert replay.in_sync
    assert replay.bids == truth["bids"] and replay.asks == truth["asks"]
    assert h.metrics.count("gaps") > 5 and h.metrics.count("stale") > 5

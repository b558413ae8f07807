"""Exact integer-precision conversion (edge values, spot precisions), the fill price rule, and the fast
BookUpdate writer agreeing byte for byte with fastavro; plus edge values through the wire."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal, localcontext

import pytest

from producers.core.numbers import units_text
from producers.drift.precision import fill_price_units, human_to_units, json_units
from producers.drift.settings import DriftMarketSpec
from producers.drift.snapshot_encoder import SnapshotEncoder, matches_fastavro
from schemas.registry import ContractRegistry
from schemas.topics import BOOK, TRADES, market_key
from simulators.drift import DriftSimulator
from simulators.drift.wire import convert_to_number, js_number
from tests.drift.conftest import spec_text, wait_until
from tests.feedcore.book_replay import replay_book
from tests.feedcore.kafka_reader import end_offsets, read_events


@pytest.mark.parametrize(("units", "exp", "text"), [
    (150_120_000, 6, "150.12"), (1, 6, "0.000001"), (999_999, 6, "0.999999"), (1_000_000, 6, "1"),
    (0, 6, "0"), (10, 6, "0.00001"), (123_456_789_012_345_678_901_234_567_890, 6, "123456789012345678901234.56789"),
    (2**64 + 1, 9, "18446744073.709551617"), (1, 9, "0.000000001"), (61_040_000_000, 9, "61.04"),
    (5, 0, "5"), (12_345, 8, "0.00012345"), (100_000_000, 8, "1"), (-1_500_000, 6, "-1.5"),
])
def test_units_text_is_exact(units: int, exp: int, text: str) -> None:
    assert units_text(units, exp) == text
    with localcontext(prec=100):
        assert Decimal(text) == Decimal(units).scaleb(-exp)


def test_json_units_accepts_integers_and_js_exponent_forms_only() -> None:
    assert json_units(150120000) == 150120000
    assert json_units(1.2345678901234568e21) == 1234567890123456800000  # JS prints big numbers this way
    with pytest.raises(ValueError):
        json_units(1.5)
    with pytest.raises(ValueError):
        json_units(True)


def test_human_floats_snap_back_to_the_chain_integers() -> None:
    rng = random.Random(3)
    cases = [1, 999_999, 10**6, 2**53 - 1, 123_456_789_123] + [rng.randint(1, 10**15) for _ in range(2000)]
    for exp in (6, 8, 9):
        for units in cases:
            text = js_number(convert_to_number(units, exp))  # exactly what the TS server writes
            if units < 2**53 // 10:  # beyond that a double cannot carry the amount (the venue's loss, not ours)
                assert human_to_units(Decimal(text), exp) == units, (units, exp, text)
    with pytest.raises(TypeError):
        human_to_units(0.1, 6)


def test_fill_price_is_quote_over_base_floored_to_price_precision() -> None:
    assert fill_price_units(225_180_000, 1_500_000_000, 9) == 150_120_000  # 225.18 / 1.5 = 150.12
    assert fill_price_units(100_000_000, 3_000_000_000, 9) == 33_333_333  # 100 / 3 -> 33.333333 (floor)
    assert fill_price_units(1, 10**9, 9) == 1
    assert fill_price_units(150_120_000, 1_000_000, 6) == 150_120_000  # spot market with 6 decimals
    with pytest.raises(ValueError):
        fill_price_units(1, 0, 9)


def test_fast_snapshot_writer_matches_fastavro(registry: ContractRegistry) -> None:
    framer = registry.framer(BOOK.schema)
    for size_exp in (9, 6, 8, 0):
        assert matches_fastavro(framer, 6, size_exp, samples=40)
    enc = SnapshotEncoder(framer, venue="drift", market="SOL-PERP", venue_symbol="SOL-PERP", price_exp=6, size_exp=9)
    value = enc.encode("drift:SOL-PERP:book:S:5:0", 1, 2, 5, None, [(150_120_000, 1)], [(150_130_000, 999_999)])
    decoded = registry.decode(value)
    assert decoded["bids"] == [{"price": "150.12", "size": "0.000000001"}]
    assert decoded["asks"] == [{"price": "150.13", "size": "0.000999999"}]
    assert decoded["kind"] == "SNAPSHOT" and decoded["sequence"] == 5 and decoded["prev_sequence"] is None


EDGE_BIDS = [(2**53 - 1, 1), (999_999, 999_999), (1, 2**53 - 1)]
EDGE_ASKS = [(2**53, 10**15), (2**53 + 10**6, 1)]


@pytest.mark.parametrize("fast", [True, False])
async def test_edge_values_through_the_wire(drift_sim: DriftSimulator, make_feed, cluster, registry,
                                            fast: bool) -> None:
    sim = drift_sim
    feed = make_feed(sim, drift_fast_book_encoder=fast, drift_trades=False)
    start = await end_offsets(cluster.bootstrap, [BOOK, TRADES])
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.ready, 10, "subscribed")
        sim.publishing = False
        await asyncio.sleep(0.1)
        books = {m.name: sim.publish_custom_book(m, EDGE_BIDS, EDGE_ASKS) for m in sim.markets}
        await wait_until(lambda: all(m.last_slot == books[m.spec.name].slot for m in feed.markets), 10, "edge books")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert feed.fast_encoder is fast
    for m in sim.markets:
        spec = DriftMarketSpec.parse(spec_text(m))
        events = await read_events(cluster.bootstrap, registry, BOOK, start[BOOK.name],
                                   keys={market_key("drift", spec.market)})
        last = [e for e in events if e["kind"] == "SNAPSHOT"][-1]
        exp = m.base_precision_exp
        assert last["bids"] == [{"price": units_text(p, 6), "size": units_text(s, exp)} for p, s in EDGE_BIDS]
        assert last["bids"][0] == {"price": "9007199254.740991", "size": "0.000000001" if exp == 9 else "0.000001"}
        assert last["asks"][0]["price"] == "9007199254.740992"
        assert replay_book(events).in_sync


def test_wire_levels_are_validated_on_the_fast_path(registry: ContractRegistry) -> None:
    enc = SnapshotEncoder(registry.framer(BOOK.schema), venue="drift", market="SOL-PERP", venue_symbol="SOL-PERP",
                          price_exp=6, size_exp=9)
    ok = {"price": 150_120_000, "size": 1}
    enc.encode_wire("e", 1, 2, 3, None, [ok], [])  # warms the caches with 150120000 and 1
    big = registry.decode(enc.encode_wire("e", 1, 2, 3, None, [{"price": 1.2345678901234568e21, "size": 1.0}], []))
    assert big["bids"] == [{"price": "1234567890123456.8", "size": "0.000000001"}]
    text = registry.decode(enc.encode_wire("e", 1, 2, 3, None, [{"price": "150130000", "size": "7"}], []))
    assert text["bids"] == [{"price": "150.13", "size": "0.000000007"}]  # legacy/REST levels are strings
    for bad in ({"price": True, "size": 1}, {"price": 150_120_000, "size": -1}, {"price": 0, "size": 1},
                {"price": 1.5, "size": 1}, {"price": "1.5", "size": 1}, {"size": 1}):
        with pytest.raises((ValueError, KeyError)):
            enc.encode_wire("e", 1, 2, 3, None, [ok, bad], [])

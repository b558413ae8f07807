"""Exact decimals, timestamp units, ids, backoff."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from producers.core.backoff import Backoff
from producers.core.errors import InexactNumber
from producers.core.numbers import content_id, decimal_text, loads_exact, to_decimal, to_micros


def test_decimal_text_keeps_venue_digits() -> None:
    assert decimal_text("65289.20") == "65289.20"
    assert decimal_text("26820.952219892065306000000000000000016") == "26820.952219892065306000000000000000016"
    assert decimal_text(42) == "42"
    assert decimal_text(Decimal("0.10")) == "0.10"
    for bad in ("abc", "", "NaN", "Infinity", True, None, [1]):
        with pytest.raises(ValueError):
            decimal_text(bad)
    with pytest.raises(InexactNumber):
        decimal_text(0.1)


def test_exact_reparse_keeps_json_number_text() -> None:
    msg = loads_exact('{"price": 25.4631, "size": 1e-8, "n": 3}')
    assert decimal_text(msg["price"]) == "25.4631" and msg["n"] == 3
    assert to_decimal(msg["size"]) == Decimal("1E-8")


@pytest.mark.parametrize(("ts", "micros"), [
    (1665996854, 1665996854_000000),  # seconds
    (1665996854.5, 1665996854_500000),
    (1677226216475, 1677226216475_000),  # ms
    (1677226216475971, 1677226216475971),  # µs
    (1677226216475971123, 1677226216475971),  # ns
    ("1677226216475971", 1677226216475971),
])
def test_to_micros_by_magnitude(ts: object, micros: int) -> None:
    assert to_micros(ts) == micros


def test_content_id_is_stable_and_ignores_receive_time() -> None:
    a = {"market": "BTC-USD", "x": "1", "receive_ts": 1}
    b = {"x": "1", "market": "BTC-USD", "receive_ts": 2}
    assert content_id("p", a) == content_id("p", b)
    assert content_id("p", a) != content_id("p", {**a, "x": "2"})


def test_backoff_grows_capped_with_jitter() -> None:
    b = Backoff(0.5, 8.0, jitter=0.5, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(10)]
    bases = [min(8.0, 0.5 * 2**i) for i in range(10)]
    assert all(0.5 * base <= d <= 1.5 * base for d, base in zip(delays, bases, strict=True))
    assert max(delays) <= 12.0 and len(set(delays)) == 10
    b.reset()
    assert b.next_delay() <= 0.75

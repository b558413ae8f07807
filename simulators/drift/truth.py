"""What the simulated venue really did: the true books (integer units) and the trades it delivered."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from simulators.drift.markets import PRICE_PRECISION_EXP, DriftMarket

Level = tuple[int, int]  # (price, size) in integer precision units
DEPTH = 20


@dataclass
class BookState:
    """A market's book: 20 levels a side in integer precision units, plus the slot it was published at."""

    market: DriftMarket
    slot: int
    bids: list[Level]  # best first (descending price)
    asks: list[Level]  # best first (ascending price)
    ts_ms: int = 0
    oracle: int = 0  # the oracle price (PRICE_PRECISION units): what the DLOB sends as oracle / oracleData.price

    @property
    def mark(self) -> int:
        """markPrice as the DLOB publishes it for a two-sided book: the mid of the best bid and ask."""
        best_bid = self.bids[0][0] if self.bids else 0
        best_ask = self.asks[0][0] if self.asks else 0
        return (best_bid + best_ask) // 2


@dataclass
class FillTruth:
    """One fill in the protocol's integer units, and the trade it implies."""

    market: DriftMarket
    tx_sig: str
    fill_record_id: int
    base_amount: int  # base precision units
    quote_amount: int  # QUOTE_PRECISION units (1e6)
    taker_direction: str | None  # "long" | "short" | None (AMM-only fills may lack a taker)
    ts_s: int
    slot: int

    @property
    def price_units(self) -> int:
        """Fill price in PRICE_PRECISION units, floored like the program's calculate_fill_price."""
        return self.quote_amount * 10**self.market.base_precision_exp // self.base_amount


@dataclass
class MarketModel:
    """A random walk that produces plausible top-20 books and fills for one market."""

    market: DriftMarket
    rng: random.Random
    slot: int = 270_000_000
    mid: int = 0
    sizes_bid: list[int] = field(default_factory=list)
    sizes_ask: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mid = self.market.start_price // self.market.tick_size
        unit = 10 ** max(self.market.base_precision_exp - 2, 0)
        self.sizes_bid = [self.rng.randint(1, 5000) * unit for _ in range(DEPTH)]
        self.sizes_ask = [self.rng.randint(1, 5000) * unit for _ in range(DEPTH)]

    def next_book(self, ts_ms: int) -> BookState:
        self.slot += self.rng.randint(1, 3)
        self.mid = max(DEPTH + 2, self.mid + self.rng.randint(-2, 2))
        unit = 10 ** max(self.market.base_precision_exp - 2, 0)
        for sizes in (self.sizes_bid, self.sizes_ask):
            for _ in range(3):
                sizes[self.rng.randrange(DEPTH)] = self.rng.randint(1, 5000) * unit + self.rng.randint(0, unit - 1)
        tick = self.market.tick_size
        bids = [((self.mid - 1 - i) * tick, s) for i, s in enumerate(self.sizes_bid)]
        asks = [((self.mid + 1 + i) * tick, s) for i, s in enumerate(self.sizes_ask)]
        # the oracle wanders around the book's mid on its own (a function of the slot: no draw from rng)
        oracle = self.mid * tick + ((self.slot % 7) - 3) * max(tick // 3, 1)
        return BookState(self.market, self.slot, bids, asks, ts_ms, oracle)

    def next_fill(self, record_id: int, ts_s: int, tx_sig: str) -> FillTruth:
        m = self.market
        price = (self.mid + self.rng.choice((-1, 1))) * m.tick_size
        base = self.rng.randint(1, 10**6) * 10 ** max(m.base_precision_exp - 6, 0)
        if self.rng.random() < 0.3:  # odd sizes make quote/base non-terminating
            base += self.rng.randint(1, 999)
        quote = base * price // 10**m.base_precision_exp
        if quote == 0:
            quote = 1
        direction = self.rng.choice(("long", "short", None)) if self.rng.random() < 0.2 else \
            self.rng.choice(("long", "short"))
        return FillTruth(m, tx_sig, record_id, base, quote, direction, ts_s, self.slot)


def units_to_text(value: int, exp: int) -> str:
    """Integer precision units -> exact decimal text (reference implementation for tests)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**exp)
    if exp == 0 or frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(exp, '0').rstrip('0')}"


def price_text(units: int) -> str:
    return units_to_text(units, PRICE_PRECISION_EXP)

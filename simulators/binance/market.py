"""The simulated venue's truth for one market: book, trades and candles, all exact decimal text.

Shared by the Binance and OKX simulators (it knows nothing about either wire protocol). A seeded
random walk drives it, so a scenario replays identically. Time is simulated: each ``step()`` moves
the venue clock by ``step_ms``, which lets a test cover many one-minute candles in a few seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class LevelChange:
    side: str  # "bid" | "ask"
    price: str  # exact decimal text, fixed decimals
    size: str  # absolute size; a zero (with fixed decimals) removes the level


@dataclass(frozen=True)
class SimTrade:
    trade_id: int
    price: str
    size: str
    taker_side: str  # "buy" | "sell"
    ts_ms: int


@dataclass
class SimCandle:
    start_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    trades: int = 0
    first_trade_id: int = 0
    last_trade_id: int = 0


@dataclass
class StepResult:
    changes: list[LevelChange]
    trades: list[SimTrade]
    ts_ms: int


@dataclass
class MarketModel:
    """Truth of one market. ``symbol`` is the venue id (BTCUSDT / BTC-USDT); base/quote the assets."""

    symbol: str
    base: str
    quote: str
    mid: Decimal = Decimal("30000.00")
    price_decimals: int = 2
    size_decimals: int = 8
    levels: int = 40
    seed: int = 1
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z, minute-aligned
    step_ms: int = 5_000
    candle_ms: int = 60_000
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    trades: list[SimTrade] = field(default_factory=list)
    candles: list[SimCandle] = field(default_factory=list)  # closed and open, oldest first

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.tick = Decimal(1).scaleb(-self.price_decimals)
        self.lot = Decimal(1).scaleb(-self.size_decimals)
        self.now_ms = self.start_ms
        self.next_trade_id = 1000
        for i in range(1, self.levels + 1):
            self.bids[self.mid - self.tick * i] = self._random_size()
            self.asks[self.mid + self.tick * (i - 1) + self.tick] = self._random_size()

    # -- formatting -----------------------------------------------------------------------
    def px(self, value: Decimal) -> str:
        return f"{value:.{self.price_decimals}f}"

    def sz(self, value: Decimal) -> str:
        return f"{value:.{self.size_decimals}f}"

    def _random_size(self) -> Decimal:
        return Decimal(self.rng.randint(1, 500_000)) * self.lot * 100

    # -- views ----------------------------------------------------------------------------
    def best_bid(self) -> Decimal:
        return max(self.bids)

    def best_ask(self) -> Decimal:
        return min(self.asks)

    def sorted_bids(self, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
        return sorted(self.bids.items(), key=lambda kv: -kv[0])[:depth]

    def sorted_asks(self, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
        return sorted(self.asks.items())[:depth]

    def book_text(self, depth: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
        bids = [[self.px(p), self.sz(s)] for p, s in self.sorted_bids(depth)]
        asks = [[self.px(p), self.sz(s)] for p, s in self.sorted_asks(depth)]
        return bids, asks

    def closed_candles(self) -> list[SimCandle]:
        return [c for c in self.candles if c.start_ms + self.candle_ms <= self.now_ms]

    # -- evolution --------------------------------------------------------------------------
    def _set(self, side: str, price: Decimal, size: Decimal) -> LevelChange:
        book = self.bids if side == "bid" else self.asks
        if size == ZERO:
            book.pop(price, None)
        else:
            book[price] = size
        return LevelChange(side, self.px(price), self.sz(size))

    def step(self, n_changes: int = 3, trade_probability: float = 0.6) -> StepResult:
        """Advance the clock one step: a few level changes and maybe a trade against the top."""
        self.now_ms += self.step_ms
        changes: list[LevelChange] = []
        trades: list[SimTrade] = []
        if self.rng.random() < trade_probability:
            trades.append(self._trade(changes))
        for _ in range(n_changes):
            changes.append(self._random_change())
        return StepResult(changes, trades, self.now_ms)

    def top_change(self, side: str = "bid") -> LevelChange:
        """Change the size at the best level of a side (what a checksum over the top must catch)."""
        price = self.best_bid() if side == "bid" else self.best_ask()
        return self._set(side, price, self._random_size())

    def change_level(self, side: str, rank: int) -> LevelChange:
        """Change the size at the ``rank``-th best level of a side (0 = the best)."""
        levels = self.sorted_bids(rank + 1) if side == "bid" else self.sorted_asks(rank + 1)
        return self._set(side, levels[-1][0], self._random_size())

    def _random_change(self) -> LevelChange:
        side = "bid" if self.rng.random() < 0.5 else "ask"
        book = self.bids if side == "bid" else self.asks
        roll = self.rng.random()
        best_bid, best_ask = self.best_bid(), self.best_ask()
        if roll < 0.25 and len(book) > 5:  # delete a level
            price = self.rng.choice(list(book))
            return self._set(side, price, ZERO)
        if roll < 0.55:  # insert a level within 30 ticks of the inside, never crossing
            offset = self.tick * self.rng.randint(1, 30)
            price = best_ask - offset if side == "bid" else best_bid + offset
            if side == "bid" and price >= best_ask:
                price = best_ask - self.tick
            if side == "ask" and price <= best_bid:
                price = best_bid + self.tick
            return self._set(side, price, self._random_size())
        price = self.rng.choice(list(book))  # resize an existing level
        return self._set(side, price, self._random_size())

    def _trade(self, changes: list[LevelChange]) -> SimTrade:
        taker = "buy" if self.rng.random() < 0.5 else "sell"
        side, price = ("ask", self.best_ask()) if taker == "buy" else ("bid", self.best_bid())
        book = self.asks if side == "ask" else self.bids
        available = book[price]
        size = min(available, Decimal(self.rng.randint(1, 20_000)) * self.lot * 100)
        changes.append(self._set(side, price, available - size))
        if not (self.bids and self.asks):  # keep both sides alive
            changes.append(self._random_change())
        trade = SimTrade(self.next_trade_id, self.px(price), self.sz(size), taker, self.now_ms)
        self.next_trade_id += 1
        self.trades.append(trade)
        self._candle(trade, price, size)
        return trade

    def _candle(self, trade: SimTrade, price: Decimal, size: Decimal) -> None:
        start = trade.ts_ms - trade.ts_ms % self.candle_ms
        current = self.candles[-1] if self.candles else None
        if current is None or current.start_ms != start:
            current = SimCandle(start, price, price, price, price, first_trade_id=trade.trade_id)
            self.candles.append(current)
        current.high = max(current.high, price)
        current.low = min(current.low, price)
        current.close = price
        current.volume += size
        current.quote_volume += price * size
        current.trades += 1
        current.last_trade_id = trade.trade_id

    def candle_for(self, ts_ms: int) -> SimCandle | None:
        start = ts_ms - ts_ms % self.candle_ms
        for c in reversed(self.candles):
            if c.start_ms == start:
                return c
        return None

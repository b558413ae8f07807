"""The simulator's truth for one RabbitX market: the book it published, its trades, its market-info state.

Prices are ``Decimal`` on a tick grid: bids strictly below ``mid`` and asks strictly above it, so the
true book is never crossed. Every book change increments ``sequence`` by one, whether or not it was
delivered (a scripted gap is a change the clients never see).
"""

from __future__ import annotations

import random
from collections import deque
from decimal import Decimal
from typing import Any


class TrueMarket:
    def __init__(self, market_id: str, mid: Decimal, tick: Decimal, rng: random.Random, *,
                 depth: int = 20, recent_trades: int = 500, start_ts: int = 1_700_000_000_000_000) -> None:
        self.market_id = market_id
        self.mid = mid
        self.tick = tick
        self.rng = rng
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.sequence = 1000
        self.trades: list[dict[str, Any]] = []  # every trade generated (the truth)
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent_trades)
        self.trade_counter = 13_230_000
        self.clock = start_ts
        for k in range(1, depth + 1):
            self.bids[mid - tick * k] = self._size()
            self.asks[mid + tick * k] = self._size()
        self.info: dict[str, Any] = {
            "id": market_id, "status": "active", "min_tick": str(tick), "min_order": "0.001",
            "best_bid": str(mid - tick), "best_ask": str(mid + tick), "fair_price": str(mid),
            "index_price": str(mid), "market_price": str(mid), "last_trade_price": str(mid),
            "last_trade_price_24high": str(mid + tick * 50), "last_trade_price_24low": str(mid - tick * 50),
            "instant_funding_rate": "0.0000125", "average_daily_volume": "2401820.374635",
            "average_daily_volume_q": "94024.7", "last_update_sequence": self.sequence,
            "last_update_time": self.clock,
        }

    def _size(self) -> Decimal:
        return Decimal(self.rng.randint(1, 50_000)) / 1000

    def now(self) -> int:
        self.clock += self.rng.randint(50, 5000)
        return self.clock

    # -- book --------------------------------------------------------------------------------------
    def book_change(self, max_levels: int = 3) -> tuple[list[list[str]], list[list[str]]]:
        """Apply 1..max_levels level changes to the truth; returns (bids, asks) as [price, size] text."""
        bids: list[list[str]] = []
        asks: list[list[str]] = []
        for _ in range(self.rng.randint(1, max_levels)):
            is_bid = self.rng.random() < 0.5
            k = self.rng.randint(1, 30)
            price = self.mid - self.tick * k if is_bid else self.mid + self.tick * k
            side = self.bids if is_bid else self.asks
            size = Decimal(0) if (price in side and self.rng.random() < 0.3) else self._size()
            if size == 0:
                del side[price]
            else:
                side[price] = size
            (bids if is_bid else asks).append([str(price), str(size)])
        self.sequence += 1
        return bids, asks

    def book_data(self, bids: list[list[Any]], asks: list[list[Any]], ts: int | None = None) -> dict[str, Any]:
        return {"market_id": self.market_id, "bids": bids, "asks": asks, "sequence": self.sequence,
                "timestamp": self.now() if ts is None else ts}

    def snapshot_data(self, limit: int = 1000, ts: int | None = None) -> dict[str, Any]:
        """Both sides sorted lowest to highest, as RabbitX documents (bids ascending!)."""
        bids = sorted(self.bids.items())[-limit:]
        asks = sorted(self.asks.items())[:limit]
        return self.book_data([[str(p), str(s)] for p, s in bids], [[str(p), str(s)] for p, s in asks], ts)

    # -- trades ------------------------------------------------------------------------------------
    def trade_history(self, depth: int, limit: int, page: int, ascending: bool) -> list[dict[str, Any]]:
        """One page of ``GET /markets/trades``: the venue keeps the last ``depth`` trades; pages of ``limit``
        rows counted from the newest (``DESC``, the default) or from the oldest retained (``ASC``)."""
        kept = self.trades[-depth:] if depth > 0 else []
        rows = kept if ascending else kept[::-1]
        return [dict(t) for t in rows[page * limit:(page + 1) * limit]]

    def trade(self) -> dict[str, Any]:
        self.trade_counter += 1
        price = self.mid + self.tick * self.rng.randint(-5, 5)
        t = {"id": f"{self.market_id}-{self.trade_counter}", "liquidation": self.rng.random() < 0.02,
             "market_id": self.market_id, "price": str(price), "size": str(self._size()),
             "taker_side": "long" if self.rng.random() < 0.5 else "short", "timestamp": self.now()}
        self.trades.append(t)
        self.recent.append(t)
        return t

    # -- market info (partial diffs) -------------------------------------------------------------------
    def info_change(self) -> dict[str, Any]:
        """Change a few fields; returns only the changed ones (plus the id), like RabbitX's table diffs."""
        diff: dict[str, Any] = {"id": self.market_id}
        best_bid = max(self.bids) if self.bids else self.mid - self.tick
        best_ask = min(self.asks) if self.asks else self.mid + self.tick
        candidates = {
            "best_bid": str(best_bid), "best_ask": str(best_ask),
            "fair_price": str(self.mid + self.tick * self.rng.randint(-3, 3)),
            "index_price": str(self.mid + self.tick * self.rng.randint(-3, 3)),
            "last_trade_price": self.trades[-1]["price"] if self.trades else str(self.mid),
            "instant_funding_rate": f"0.{self.rng.randint(0, 10**7):07d}",
        }
        for key in self.rng.sample(sorted(candidates), self.rng.randint(1, 3)):
            if self.info.get(key) != candidates[key]:
                diff[key] = candidates[key]
        diff["last_update_time"] = self.now()
        diff["last_update_sequence"] = self.sequence
        self.info.update(diff)
        return diff

    def true_book(self) -> dict[str, dict[Decimal, Decimal]]:
        return {"bids": dict(self.bids), "asks": dict(self.asks)}

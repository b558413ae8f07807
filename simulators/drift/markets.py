"""Drift markets as the DLOB server knows them: type, index, name and integer precisions."""

from __future__ import annotations

from dataclasses import dataclass

PRICE_PRECISION_EXP = 6  # PRICE_PRECISION = QUOTE_PRECISION = 1e6
PERP_BASE_PRECISION_EXP = 9  # BASE_PRECISION = AMM_RESERVE_PRECISION = 1e9


@dataclass(frozen=True)
class DriftMarket:
    """One Drift market. ``name`` is what clients subscribe with (``SOL-PERP`` for perps, ``SOL`` for spot)."""

    market_type: str  # "perp" | "spot"
    index: int
    name: str
    base_precision_exp: int = PERP_BASE_PRECISION_EXP  # spot: the mint's decimals
    tick_size: int = 100  # orderTickSize in PRICE_PRECISION units (100 = 0.0001)
    start_price: int = 150_000_000  # PRICE_PRECISION units

    @property
    def book_channel(self) -> str:
        return f"orderbook_{self.market_type}_{self.index}_grouped_1"

    @property
    def trades_channel(self) -> str:
        return f"trades_{self.market_type}_{self.index}"


DEFAULT_MARKETS: tuple[DriftMarket, ...] = (
    DriftMarket("perp", 0, "SOL-PERP", start_price=150_000_000),
    DriftMarket("perp", 1, "BTC-PERP", tick_size=100_000, start_price=65_000_000_000),
    DriftMarket("perp", 2, "ETH-PERP", tick_size=10_000, start_price=3_400_000_000),
    DriftMarket("spot", 1, "SOL", base_precision_exp=9, start_price=150_000_000),
)

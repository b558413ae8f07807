"""Econia units -> exact decimal text, with each market's registration parameters.

- size is in lots: base subunits = ``size * lot_size``; nominal = base subunits / 10**base_decimals.
- price is ticks per lot: quote subunits per lot = ``price * tick_size``; nominal price per base unit
  = ``price * tick_size / 10**quote_decimals / (lot_size / 10**base_decimals)``.
- fees are quote subunits.
All of it is integer/rational math; a price whose decimal expansion does not terminate (a lot size that
is not 2^a*5^b) is rounded half-even to 18 decimal places (counted by the caller as inexact).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any

from producers.core.numbers import units_text

MAX_SCALE = 40
ROUNDED_SCALE = 18


def fraction_text(q: Fraction) -> tuple[str, bool]:
    """(decimal text, exact?) of a non-negative rational."""
    d = q.denominator
    for k in range(MAX_SCALE + 1):
        if (10**k) % d == 0:
            return units_text(q.numerator * (10**k // d), k), True
    with localcontext(prec=80):
        rounded = (Decimal(q.numerator) / Decimal(q.denominator)).quantize(Decimal(1).scaleb(-ROUNDED_SCALE),
                                                                            rounding=ROUND_HALF_EVEN)
    return units_text(int(rounded.scaleb(ROUNDED_SCALE)), ROUNDED_SCALE), False


@dataclass(frozen=True)
class MarketParams:
    market_id: int
    lot_size: int
    tick_size: int
    base_decimals: int
    quote_decimals: int
    base_symbol: str | None
    quote_symbol: str | None

    @property
    def market(self) -> str:
        if self.base_symbol and self.quote_symbol:
            return f"{self.base_symbol}-{self.quote_symbol}".upper()
        return f"ECONIA{self.market_id}-{(self.quote_symbol or 'QUOTE').upper()}"

    @property
    def venue_symbol(self) -> str:
        return str(self.market_id)

    def size_text(self, lots: int) -> str:
        return units_text(lots * self.lot_size, self.base_decimals)

    def price_text(self, ticks: int) -> tuple[str, bool]:
        q = Fraction(ticks * self.tick_size * 10**self.base_decimals, self.lot_size * 10**self.quote_decimals)
        return fraction_text(q)

    def quote_text(self, subunits: int) -> str:
        return units_text(subunits, self.quote_decimals)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> MarketParams:
        """A PostgREST ``/markets`` row."""
        return cls(market_id=_int(row["market_id"]), lot_size=_int(row["lot_size"]), tick_size=_int(row["tick_size"]),
                   base_decimals=_int(row["base_decimals"]), quote_decimals=_int(row["quote_decimals"]),
                   base_symbol=row.get("base_symbol"), quote_symbol=row.get("quote_symbol"))


def _int(v: Any) -> int:
    if type(v) is int:
        return v
    if isinstance(v, str) and v.isdigit():
        return int(v)
    raise ValueError(f"expected an integer, got {v!r}")

"""Drift integer precision -> exact decimal text, and the fill price rule. No binary floats on the way.

- Book levels are JSON numbers holding integers in precision units (price 1e6, perp base 1e9, spot base
  10^decimals). ``units_text(150120000, 6) == "150.12"``.
- FillEvents carry human floats (``convertToNumber``); they are re-read as the wire's decimal text
  (``parse_float=Decimal``), snapped back to the integer units the chain holds (the float is only a lossy
  transport of an integer amount), and the price is ``quote_units * 10**base_exp // base_units``:
  the program's own ``calculate_fill_price`` (floor to PRICE_PRECISION).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

PRICE_EXP = 6
QUOTE_EXP = 6


def json_units(value: Any) -> int:
    """A grouped-book JSON number (integer units; JS may print big ones in exponent form) -> int."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        raise ValueError(f"boolean where integer units were expected: {value!r}")
    if isinstance(value, float | Decimal | str):
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if not d.is_finite() or d != d.to_integral_value():
            raise ValueError(f"not integer precision units: {value!r}")
        return int(d)
    raise ValueError(f"not a number: {value!r}")


def human_to_units(value: Any, exp: int) -> int:
    """A human amount as the wire wrote it (Decimal/str/int from ``parse_float=Decimal``) -> integer units."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"missing or non-numeric amount: {value!r}")
    if isinstance(value, float):
        raise TypeError("parse FillEvents with parse_float=Decimal; a float here would lose the wire text")
    d = Decimal(value) if not isinstance(value, Decimal) else value
    if not d.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return int(d.scaleb(exp).to_integral_value(ROUND_HALF_EVEN))


def fill_price_units(quote_units: int, base_units: int, base_exp: int) -> int:
    """PRICE_PRECISION units per base unit, floored like the program's calculate_fill_price."""
    if base_units <= 0 or quote_units < 0:
        raise ValueError(f"cannot price a fill of base {base_units} for quote {quote_units}")
    return quote_units * 10**base_exp // base_units

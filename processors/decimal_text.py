"""Exact decimal text in and out: prices and sizes never pass through binary floats."""

from __future__ import annotations

from decimal import Context, Decimal, InvalidOperation

# decimal128 precision for ratios (VWAP); sums and products of venue text stay exact well within it.
RATIO_CONTEXT = Context(prec=34)
ZERO = Decimal(0)


class BadDecimal(ValueError):
    """A field that must hold decimal text does not."""


def parse(text: str | None, field: str) -> Decimal:
    if text is None:
        raise BadDecimal(f"{field} is missing")
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise BadDecimal(f"{field}={text!r} is not decimal text") from exc
    if not value.is_finite():
        raise BadDecimal(f"{field}={text!r} is not finite")
    return value


def text(value: Decimal) -> str:
    """Plain (never scientific) decimal text; keeps the scale the arithmetic produced."""
    return format(abs(value) if value.is_zero() else value, "f")


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    """numerator / denominator with 34 significant digits (ROUND_HALF_EVEN), trailing zeros removed."""
    result = RATIO_CONTEXT.divide(numerator, denominator)
    normalized = result.normalize(RATIO_CONTEXT)
    # normalize() may give an exponent form like 1E+2: requantize to an integer exponent
    exponent = normalized.as_tuple().exponent  # an int for a finite value ('n'/'N'/'F' only for NaN/inf)
    return normalized.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normalized

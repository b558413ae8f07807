"""Exact numbers through ccxt: how the venue's decimal text survives to Kafka.

ccxt parses prices/sizes in two ways:

1. ``exchange.parse_number`` / ``safe_number`` (trades, tickers, OHLCV of most exchanges, balances,
   orders, REST order-book snapshots): ccxt first reads the venue value as a *string*
   (``safe_string``) and only then calls ``exchange.number`` on it. We set ``exchange.number = str``,
   so the value stays the venue's own text. (``Decimal`` would not work: ccxt's ``safe_string`` ignores
   ``Decimal`` values, so balances and orders re-parsed by ccxt would come back as ``None``.)
2. ``exchange.safe_float`` / ``safe_float_2`` / ``safe_float_n`` (static methods) used directly by a few
   ccxt.pro hot paths: the order-book deltas of binance, okx, htx, gate, mexc, bingx... and binance
   klines. We shadow them on the instance (``fence.keep_exact_text``) with versions returning the venue's
   text as well.

Order-book sides must still sort numerically, so the journaled sides (``journal.py``) turn every price
and size into ``Decimal`` built from that text: exact, and ``str(Decimal("0.00100000"))`` gives the
wire digits back (trailing zeros included) for checksums.

A venue that sends JSON *numbers* (Kraken v2) reaches ccxt as Python floats before we can intervene.
Those are converted with ``Decimal(repr(x))``: ``repr`` is the shortest text that round-trips the
double, which equals the venue's decimal value whenever it has at most 15 significant digits (IEEE 754
guarantees 15 digits survive text -> double -> text); only trailing zeros are lost. Each such
conversion is counted in ``marketpipe_ccxt_float_conversions_total`` so it is never silent.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from prometheus_client import Counter

FLOAT_CONVERSIONS = Counter("marketpipe_ccxt_float_conversions_total",
                            "Venue numbers that reached ccxt as binary floats (converted via shortest repr)")


def to_exact_decimal(value: Any) -> Decimal:
    """Decimal from the venue's text (str), an int, a Decimal, or (counted) a float's shortest repr."""
    t = type(value)
    if t is Decimal:
        return value
    if t is str or t is int:
        return Decimal(value)
    if t is float:
        FLOAT_CONVERSIONS.inc()
        return Decimal(repr(value))
    if value is None:
        raise ValueError("missing number")
    return Decimal(str(value))


def exact_text(value: Any) -> str | None:
    """Plain decimal text (no exponent) of a ccxt value; None stays None. Raises ValueError on junk."""
    if value is None or value == "":
        return None
    t = type(value)
    if t is str:
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
        if "e" not in value and "E" not in value:
            return value
        return format(d, "f")
    return format(to_exact_decimal(value), "f")


def safe_exact(dictionary: Any, key: Any, default_value: Any = None) -> Any:
    """Drop-in for ccxt's static ``safe_float`` that keeps the venue's text instead of a float."""
    try:
        value = dictionary[key]
    except (KeyError, IndexError, TypeError):
        return default_value
    if value is None or value == "":
        return default_value
    t = type(value)
    if t is str:
        return value
    if t is float:
        FLOAT_CONVERSIONS.inc()
        return repr(value)
    return str(value)


def safe_exact_2(dictionary: Any, key1: Any, key2: Any, default_value: Any = None) -> Any:
    """Drop-in for ccxt's ``safe_float_2`` (bingx, mexc, extended book deltas)."""
    value = safe_exact(dictionary, key1)
    return value if value is not None else safe_exact(dictionary, key2, default_value)


def safe_exact_n(dictionary: Any, key_list: Any, default_value: Any = None) -> Any:
    """Drop-in for ccxt's ``safe_float_n``."""
    for key in key_list or ():
        value = safe_exact(dictionary, key)
        if value is not None:
            return value
    return default_value


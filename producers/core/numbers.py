"""Exact money and time helpers shared by venue modules.

- ``decimal_text(v)``: exact decimal text for a price/size given as ``str``, ``int`` or ``Decimal``.
  A ``float`` raises ``InexactNumber``: the core then re-parses the message with
  ``loads_exact`` (``json`` with ``parse_float=Decimal``) and runs the handler again, so values that
  arrive as JSON numbers still reach Kafka as the venue's own digits, never through a binary float.
- ``to_decimal(v)``: the same check, returning a ``Decimal``.
- ``to_micros(ts)``: a venue timestamp in s, ms, µs or ns (by magnitude) -> µs since the epoch.
- ``now_micros()``: receive time in µs.
- ``stable_id(*parts)`` / ``content_id(prefix, mapping)``: deterministic event ids.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from producers.core.errors import InexactNumber

Number = str | int | Decimal


def _parse_text(value: str) -> Decimal:
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return d


def decimal_text(value: Any) -> str:
    """Exact decimal text of a venue number; raises InexactNumber for floats, ValueError for junk."""
    if type(value) is str:
        _parse_text(value)
        return value.strip()
    if isinstance(value, bool):
        raise ValueError(f"boolean where a number was expected: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite decimal: {value!r}")
        return str(value)
    if isinstance(value, float):
        raise InexactNumber(f"float {value!r} where exact decimal text is required")
    raise ValueError(f"not a number: {value!r}")


def to_decimal(value: Any) -> Decimal:
    if type(value) is str:
        return _parse_text(value)
    return Decimal(decimal_text(value))


def loads_exact(line: str | bytes) -> Any:
    """Parse JSON keeping every non-integer number as ``Decimal`` (slow path, used on demand)."""
    return json.loads(line, parse_float=Decimal)


def loads(line: str | bytes) -> Any:
    """Fast JSON parse (orjson); floats stay floats and ``decimal_text`` will reject them."""
    return orjson.loads(line)


def units_text(value: int, exp: int) -> str:
    """Integer precision units (value * 10^-exp) -> shortest exact decimal text, e.g. (150120000, 6) -> "150.12".
    For venues that send scaled integers (Drift precisions, Econia subunits)."""
    if value < 0:
        return "-" + units_text(-value, exp)
    if exp == 0:
        return str(value)
    whole, frac = divmod(value, 10**exp)
    return str(whole) if frac == 0 else f"{whole}.{frac:0{exp}d}".rstrip("0")


def to_micros(ts: Any) -> int:
    """Venue timestamp -> µs since the epoch, deciding the unit by magnitude (s, ms, µs, ns)."""
    if type(ts) is int and 10**14 <= ts < 10**17:  # already µs: the common case
        return ts
    if isinstance(ts, str):
        ts = Decimal(ts)
    if isinstance(ts, bool) or not isinstance(ts, int | float | Decimal):
        raise ValueError(f"not a timestamp: {ts!r}")
    number: int | float | Decimal = ts
    v = number if number >= 0 else -number
    if v < 10**11:  # seconds (until year 5138)
        return int(Decimal(str(ts)) * 1_000_000) if not isinstance(ts, int) else ts * 1_000_000
    if v < 10**14:  # milliseconds
        return int(ts * 1000)
    if v < 10**17:  # microseconds
        return int(ts)
    return int(ts // 1000)  # nanoseconds


def now_micros() -> int:
    return time.time_ns() // 1000


def stable_id(*parts: object) -> str:
    """Readable deterministic id: the parts joined by ':'."""
    return ":".join(str(p) for p in parts)


def content_id(prefix: str, mapping: Mapping[str, Any], *, exclude: tuple[str, ...] = ("receive_ts", "event_id")) -> str:
    """Deterministic id from a record's content (for venue events that carry no id of their own)."""
    body = {k: v for k, v in mapping.items() if k not in exclude}
    digest = hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str), digest_size=12)
    return f"{prefix}:{digest.hexdigest()}"


def opt_none(value: Any, convert: Any) -> Any:
    """``convert(value)`` unless the venue left the field empty (None or "")."""
    return None if value is None or value == "" else convert(value)

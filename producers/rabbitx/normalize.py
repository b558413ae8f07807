"""RabbitX payloads -> contract fields. Pure functions; numbers stay exact decimal text.

RabbitX quirks handled here: partial diffs where an empty field means "unchanged" (``merge_partial``),
key spellings that vary inside the venue's own docs (``canonical_keys``), ``taker_side`` long/short,
timestamps in s or µs (``to_micros`` decides by magnitude).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from producers.core.numbers import decimal_text, to_decimal

KEY_ALIASES = {
    "isMaker": "is_maker", "marketID": "market_id", "avg_entr_price": "avg_entry_price",
    "withdrawalable_balance": "withdrawable_balance", "orderID": "order_id", "tradeID": "trade_id",
}
SIDES = {"long": "BUY", "short": "SELL", "buy": "BUY", "sell": "SELL", "bid": "BUY", "ask": "SELL"}
TICKER_MAP = {  # contract field -> RabbitX market field
    "best_bid": "best_bid", "best_ask": "best_ask", "last_price": "last_trade_price", "mark_price": "fair_price",
    "index_price": "index_price", "funding_rate": "instant_funding_rate", "open_interest": "open_interest",
}


def canonical_keys(d: dict[str, Any]) -> dict[str, Any]:
    return {KEY_ALIASES.get(k, k): v for k, v in d.items()}


def is_empty(v: Any) -> bool:
    return v is None or v == ""


def merge_partial(state: dict[str, Any], diff: dict[str, Any]) -> dict[str, Any]:
    """Merge a RabbitX table diff into ``state`` in place: empty fields mean "no change"."""
    for k, v in canonical_keys(diff).items():
        if not is_empty(v):
            state[k] = v
    return state


def side(v: Any) -> str:
    try:
        return SIDES[str(v).lower()]
    except KeyError:
        raise ValueError(f"unknown side {v!r}") from None


def trade_side(t: dict[str, Any]) -> str:
    """A trade's taker side: ``taker_side`` (WebSocket), or ``taker_size`` as the REST trades doc spells it."""
    v = t.get("taker_side")
    return side(t.get("taker_size") if v is None else v)


def opt_text(v: Any) -> str | None:
    return None if is_empty(v) else decimal_text(v)


def ticker_fields(state: dict[str, Any]) -> dict[str, str | None]:
    return {field: opt_text(state.get(src)) for field, src in TICKER_MAP.items()}


def order_status(venue_status: str, filled: Decimal, remaining: Decimal | None) -> str:
    s = venue_status.lower()
    if s == "processing":
        return "NEW"
    if s in ("placed", "open"):
        return "PARTIALLY_FILLED" if filled > 0 else "NEW"
    if s == "closed":
        return "FILLED" if remaining is not None and remaining == 0 and filled > 0 else "CANCELLED"
    if s in ("canceled", "cancelled"):
        return "CANCELLED"
    if s == "rejected":
        return "REJECTED"
    return "UNKNOWN"  # canceling, amending, cancelingall: in transition


def order_payload(o: dict[str, Any]) -> dict[str, Any]:
    filled_text = opt_text(o.get("total_filled_size")) or "0"
    remaining_text = opt_text(o.get("remaining_size"))
    size_text = opt_text(o.get("initial_size")) or opt_text(o.get("size"))
    if size_text is None:
        raise ValueError(f"order {o.get('id')!r} has no size")
    status = str(o.get("status", ""))
    return {
        "order_id": str(o["id"]), "client_order_id": None if is_empty(o.get("client_order_id")) else str(
            o["client_order_id"]),
        "side": side(o["side"]), "order_type": str(o.get("type") or o.get("order_type") or "unknown"),
        "status": order_status(status, to_decimal(filled_text),
                               None if remaining_text is None else to_decimal(remaining_text)),
        "price": opt_text(o.get("price")), "size": size_text, "filled_size": filled_text,
        "remaining_size": remaining_text, "average_price": opt_text(o.get("average_price")),
        "venue_status": status or None,
    }


def fill_payload(f: dict[str, Any], fee_asset: str) -> dict[str, Any]:
    maker = f.get("is_maker")
    return {
        "fill_id": str(f["id"]), "order_id": str(f["order_id"]), "side": side(f["side"]),
        "price": decimal_text(f["price"]), "size": decimal_text(f["size"]), "fee": opt_text(f.get("fee")),
        "fee_asset": fee_asset if not is_empty(f.get("fee")) else None,
        "is_maker": None if maker is None else bool(maker),
    }


def position_payload(p: dict[str, Any]) -> dict[str, Any]:
    size_text = decimal_text(p.get("size", "0"))
    size = to_decimal(size_text)
    if size == 0:
        pos_side = "FLAT"
    else:
        pos_side = "SHORT" if str(p.get("side", "long")).lower() in ("short", "sell") or size < 0 else "LONG"
    return {
        "side": pos_side, "size": size_text.lstrip("-"), "entry_price": opt_text(p.get("avg_entry_price")),
        "mark_price": opt_text(p.get("fair_price")), "liquidation_price": opt_text(p.get("liquidation_price")),
        "unrealized_pnl": opt_text(p.get("unrealized_pnl")), "margin": opt_text(p.get("margin")),
    }

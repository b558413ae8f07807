"""ccxt unified structures -> the fields of our contracts (pure functions; numbers as exact text)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from producers.ccxt.exact import exact_text

ORDER_STATUS = {"closed": "FILLED", "canceled": "CANCELLED", "cancelled": "CANCELLED", "expired": "CANCELLED",
                "rejected": "REJECTED"}


def ms_to_micros(ms: Any, default: int) -> int:
    """ccxt timestamps are integer milliseconds; None -> ``default`` (the receive time)."""
    if ms is None or isinstance(ms, bool):
        return default
    return int(ms) * 1000


def taker_side(side: Any) -> str:
    return {"buy": "BUY", "sell": "SELL"}.get(str(side).lower(), "UNKNOWN")


def _side(side: Any) -> str:
    s = str(side).lower()
    if s not in ("buy", "sell"):
        raise ValueError(f"order side {side!r} is neither buy nor sell")
    return s.upper()


def ticker_fields(t: dict[str, Any]) -> dict[str, str | None]:
    return {
        "best_bid": exact_text(t.get("bid")), "best_bid_size": exact_text(t.get("bidVolume")),
        "best_ask": exact_text(t.get("ask")), "best_ask_size": exact_text(t.get("askVolume")),
        "last_price": exact_text(t.get("last")), "mark_price": exact_text(t.get("markPrice")),
        "index_price": exact_text(t.get("indexPrice")), "volume_24h": exact_text(t.get("baseVolume")),
    }


def venue_status(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    for key in ("state", "X", "status", "orderStatus"):
        value = info.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def order_payload(o: dict[str, Any]) -> dict[str, Any]:
    filled = exact_text(o.get("filled")) or "0"
    status = ORDER_STATUS.get(str(o.get("status")), "UNKNOWN")
    if o.get("status") == "open":
        status = "PARTIALLY_FILLED" if Decimal(filled) > 0 else "NEW"
    size = exact_text(o.get("amount"))
    if size is None:
        raise ValueError(f"order {o.get('id')} has no amount")
    return {
        "order_id": str(o["id"]), "client_order_id": o.get("clientOrderId") or None, "side": _side(o.get("side")),
        "order_type": str(o.get("type") or "unknown"), "status": status, "price": exact_text(o.get("price")),
        "size": size, "filled_size": filled, "remaining_size": exact_text(o.get("remaining")),
        "average_price": exact_text(o.get("average")), "venue_status": venue_status(o.get("info")),
    }


def fill_payload(t: dict[str, Any]) -> dict[str, Any]:
    fee = t.get("fee") or {}
    price, size = exact_text(t.get("price")), exact_text(t.get("amount"))
    if price is None or size is None:
        raise ValueError(f"fill {t.get('id')} has no price or amount")
    maker = t.get("takerOrMaker")
    return {
        "fill_id": str(t["id"]), "order_id": str(t.get("order") or ""), "side": _side(t.get("side")),
        "price": price, "size": size, "fee": exact_text(fee.get("cost")), "fee_asset": fee.get("currency"),
        "is_maker": None if maker is None else maker == "maker",
    }


def balance_payload(asset: str, total: Any, free: Any, used: Any) -> dict[str, Any]:
    total_text = exact_text(total)
    if total_text is None:
        raise ValueError(f"balance of {asset} has no total")
    return {"asset": asset, "total": total_text, "available": exact_text(free), "locked": exact_text(used)}


def position_payload(p: dict[str, Any]) -> dict[str, Any]:
    size = exact_text(p.get("contracts")) or "0"
    side = str(p.get("side") or "").lower()
    if side not in ("long", "short") or Decimal(size) == 0:
        side_enum = "FLAT"
    else:
        side_enum = side.upper()
    return {
        "side": side_enum, "size": size, "entry_price": exact_text(p.get("entryPrice")),
        "mark_price": exact_text(p.get("markPrice")), "liquidation_price": exact_text(p.get("liquidationPrice")),
        "unrealized_pnl": exact_text(p.get("unrealizedPnl")),
        "margin": exact_text(p.get("initialMargin") if p.get("initialMargin") is not None else p.get("collateral")),
    }

"""`marketpipe query` for people: a bid/ask ladder, candle tables with a small chart, account tables, times in
ISO-8601 UTC. ``--json`` prints the endpoint's body unchanged instead (for scripts).

Prices and sizes are shown as the exact decimal text the processors return; only the chart's bar heights
are computed (with ``Decimal``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rich.console import Console
from rich.table import Table

BARS = "▁▂▃▄▅▆▇█"


def iso(ts: object) -> str:
    """An epoch timestamp (s, ms, us or ns: told apart by size) as ISO-8601 UTC; anything else as text."""
    if not isinstance(ts, int | float) or isinstance(ts, bool) or ts <= 0:
        return "" if ts is None else str(ts)
    value = float(ts)
    for scale in (1e9, 1e6, 1e3):
        if value >= scale * 1e8:  # after 1973 in that unit
            value /= scale
            break
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dec(text: object) -> Decimal | None:
    try:
        return Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None


def sparkline(values: list[object]) -> str:
    """One block character per value, scaled between the smallest and largest."""
    numbers = [_dec(v) for v in values]
    known = [n for n in numbers if n is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = high - low
    out = []
    for n in numbers:
        if n is None:
            out.append(" ")
        elif span == 0:
            out.append(BARS[len(BARS) // 2])
        else:
            out.append(BARS[int((n - low) / span * (len(BARS) - 1))])
    return "".join(out)


def _header(body: dict[str, Any], *fields: str) -> str:
    parts = [f"{body.get('venue', '')}:{body.get('market', body.get('account', ''))}"]
    for name in fields:
        if name in body:
            value = iso(body[name]) if name.endswith("_ts") else body[name]
            parts.append(f"{name}={value}")
    return "  ".join(parts)


def book(body: dict[str, Any], console: Console) -> None:
    console.print(_header(body, "in_sync", "crossed", "sequence", "exchange_ts", "receive_ts"))
    table = Table(show_edge=False)
    for name, style in (("bid size", "green"), ("bid", "green"), ("ask", "red"), ("ask size", "red")):
        table.add_column(name, justify="right", style=style)
    bids, asks = body.get("bids", []), body.get("asks", [])
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else {}
        a = asks[i] if i < len(asks) else {}
        table.add_row(b.get("size", ""), b.get("price", ""), a.get("price", ""), a.get("size", ""))
    console.print(table)


def top(body: dict[str, Any], console: Console) -> None:
    console.print(_header(body, "in_sync", "crossed", "sequence", "exchange_ts"))
    table = Table(show_edge=False)
    for name in ("bid size", "bid", "ask", "ask size", "spread", "mid"):
        table.add_column(name, justify="right")
    table.add_row(*(str(body.get(k) if body.get(k) is not None else "") for k in
                    ("best_bid_size", "best_bid", "best_ask", "best_ask_size", "spread", "mid")))
    console.print(table)


def candles(body: dict[str, Any], console: Console) -> None:
    rows = body.get("candles", [])
    console.print(f"{body.get('venue', '')}:{body.get('market', '')}  interval={body.get('interval', '')}  "
                  f"{len(rows)} candles")
    table = Table(show_edge=False)
    for name in ("start (UTC)", "open", "high", "low", "close", "volume", "trades", ""):
        table.add_column(name, justify="left" if name.startswith("start") else "right")
    for r in rows:
        note = "gap" if r.get("gap") else ("open" if r.get("final") is False else "")
        table.add_row(iso(r.get("start_ts")), *(str(r.get(k, "")) for k in ("open", "high", "low", "close",
                                                                           "volume", "trade_count")), note)
    console.print(table)
    traded = [r for r in rows if r.get("trade_count")]
    if len(traded) > 1:
        lows = [_dec(r.get("low")) for r in traded]
        highs = [_dec(r.get("high")) for r in traded]
        console.print(f"close  {sparkline([r.get('close') for r in traded])}  "
                      f"(low {min(x for x in lows if x is not None)}, high {max(x for x in highs if x is not None)})")


_ACCOUNT_COLUMNS = {
    "balances": ("asset", "free", "locked", "total", "exchange_ts"),
    "positions": ("market", "side", "size", "entry_price", "unrealized_pnl", "exchange_ts"),
    "orders": ("order_id", "market", "side", "type", "price", "size", "filled", "status", "exchange_ts"),
    "fills": ("fill_id", "order_id", "market", "side", "price", "size", "fee", "fee_asset", "exchange_ts"),
}


def account(section: str, body: dict[str, Any], console: Console) -> None:
    console.print(_header(body, "updated_ts"))
    value = body.get(section, [])
    rows: list[dict[str, Any]] = list(value.values()) if isinstance(value, dict) else list(value)
    wanted = _ACCOUNT_COLUMNS.get(section, ())
    present = [c for c in wanted if any(c in r for r in rows)]
    extra = sorted({k for r in rows for k in r} - set(wanted) - {"venue", "account"}) if rows else []
    columns = present + extra
    table = Table(show_edge=False)
    for name in columns:
        table.add_column("time (UTC)" if name == "exchange_ts" else name)
    for r in rows:
        table.add_row(*(iso(r.get(c)) if c.endswith("_ts") else ("" if r.get(c) is None else str(r.get(c)))
                        for c in columns))
    console.print(table if rows else f"no {section}")
    gaps = body.get("gaps")
    if gaps:
        console.print(f"gap markers (events may be missing): {gaps}")


def render(what: str, body: dict[str, Any], console: Console) -> None:
    if "error" in body and len(body) == 1:
        console.print(f"error: {body['error']}")
    elif what == "book":
        book(body, console)
    elif what == "top":
        top(body, console)
    elif what == "candles":
        candles(body, console)
    else:
        account(what, body, console)

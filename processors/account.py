"""AccountState: balances, orders with their lifecycle, recent fills and positions of one (venue, account).

Order lifecycle: NEW -> PARTIALLY_FILLED -> FILLED | CANCELLED | REJECTED. Updates never move an order
backwards: an update with a lower lifecycle rank, or the same rank with a smaller filled size, is stale and
ignored (events of one account are ordered per partition, but venues re-send old states on reconnect).
Terminal orders leave the open-orders map and are kept in a bounded list of recently closed orders.
Balances and positions carry absolute values, so re-applying an event is harmless; fills are kept once by
fill_id in a bounded window. A FLAT position (or size 0) removes the market's position.

Gap markers (`gap` set, no payload) are not account changes: per kind they are counted and the latest
window is kept (`gaps`), so queries can say that events of that kind may be missing. A marker repeated with
the same event_id is counted once.
"""

from __future__ import annotations

from typing import Any

from processors.decimal_text import parse

_RANK = {"NEW": 0, "PARTIALLY_FILLED": 1, "FILLED": 2, "CANCELLED": 2, "REJECTED": 2}
TERMINAL = frozenset({"FILLED", "CANCELLED", "REJECTED"})


class AccountState:
    def __init__(self, venue: str, account: str, *, fills_window: int = 500, closed_window: int = 200) -> None:
        self.venue, self.account = venue, account
        self.balances: dict[str, dict[str, Any]] = {}
        self.open_orders: dict[str, dict[str, Any]] = {}
        self.closed_orders: list[dict[str, Any]] = []
        self.fills: list[dict[str, Any]] = []
        self.positions: dict[str, dict[str, Any]] = {}
        self.fills_window, self.closed_window = fills_window, closed_window
        self.last_offset = -1
        self.updated_ts = 0
        # kind -> {"count": markers, "missing_known": sum of known missing counts, "last": the newest marker}
        self.gaps: dict[str, dict[str, Any]] = {}

    def apply(self, event: dict[str, Any]) -> str:
        """Fold one decoded AccountEvent in; returns what happened. Raises ValueError when malformed."""
        kind = event["kind"]
        gap = event.get("gap")
        if gap is not None:
            return self._gap(event, kind, gap)
        body = event.get(kind.lower())
        if body is None:
            raise ValueError(f"{kind} event without its {kind.lower()!r} record")
        handler = {"BALANCE": self._balance, "ORDER": self._order, "FILL": self._fill,
                   "POSITION": self._position}[kind]
        outcome = handler(event, body)
        self.updated_ts = max(self.updated_ts, event["exchange_ts"])
        return outcome

    def _gap(self, event: dict[str, Any], kind: str, gap: dict[str, Any]) -> str:
        if gap["to_ts"] < gap["from_ts"]:
            raise ValueError(f"gap window [{gap['from_ts']}, {gap['to_ts']}] is inverted")
        entry = self.gaps.get(kind)
        if entry is not None and entry["last"]["event_id"] == event["event_id"]:
            return "duplicate_gap"
        if entry is None:
            entry = self.gaps[kind] = {"count": 0, "missing_known": 0}
        entry["count"] += 1
        entry["missing_known"] += gap.get("missing_count") or 0
        entry["last"] = {**gap, "market": event["market"], "event_id": event["event_id"],
                         "receive_ts": event["receive_ts"]}
        return "gap"

    def _balance(self, event: dict[str, Any], b: dict[str, Any]) -> str:
        for f in ("total", "available", "locked"):
            if b.get(f) is not None:
                parse(b[f], f)
        self.balances[b["asset"]] = {**b, "exchange_ts": event["exchange_ts"]}
        return "balance"

    def _order(self, event: dict[str, Any], o: dict[str, Any]) -> str:
        filled = parse(o["filled_size"], "filled_size")
        parse(o["size"], "size")
        oid = o["order_id"]
        current = self.open_orders.get(oid)
        if current is None and any(c["order_id"] == oid for c in self.closed_orders):
            return "stale_order"  # already terminal
        status = o["status"]
        if current is not None:
            rank, cur_rank = _RANK.get(status, _RANK[current["status"]]), _RANK[current["status"]]
            if rank < cur_rank or (rank == cur_rank and filled < parse(current["filled_size"], "filled_size")):
                return "stale_order"
            if status == "UNKNOWN":
                status = current["status"]
        record = {**o, "status": status, "market": event["market"], "updated_ts": event["exchange_ts"]}
        if status in TERMINAL:
            self.open_orders.pop(oid, None)
            self.closed_orders.append(record)
            del self.closed_orders[:-self.closed_window]
            return "order_closed"
        self.open_orders[oid] = record
        return "order_open"

    def _fill(self, event: dict[str, Any], f: dict[str, Any]) -> str:
        parse(f["price"], "price")
        parse(f["size"], "size")
        if any(x["fill_id"] == f["fill_id"] for x in self.fills):
            return "duplicate_fill"
        self.fills.append({**f, "market": event["market"], "exchange_ts": event["exchange_ts"]})
        del self.fills[:-self.fills_window]
        return "fill"

    def _position(self, event: dict[str, Any], p: dict[str, Any]) -> str:
        size = parse(p["size"], "size")
        market = event["market"]
        if p["side"] == "FLAT" or size == 0:
            self.positions.pop(market, None)
            return "position_closed"
        self.positions[market] = {**p, "market": market, "exchange_ts": event["exchange_ts"]}
        return "position"

    def to_state(self) -> dict[str, Any]:
        return {"venue": self.venue, "account": self.account, "balances": self.balances,
                "open_orders": self.open_orders, "closed_orders": self.closed_orders, "fills": self.fills,
                "positions": self.positions, "offset": self.last_offset, "updated_ts": self.updated_ts,
                "gaps": self.gaps}

    @classmethod
    def from_state(cls, s: dict[str, Any], *, fills_window: int = 500, closed_window: int = 200) -> AccountState:
        a = cls(s["venue"], s["account"], fills_window=fills_window, closed_window=closed_window)
        a.balances, a.open_orders, a.closed_orders = s["balances"], s["open_orders"], s["closed_orders"]
        a.fills, a.positions, a.last_offset, a.updated_ts = s["fills"], s["positions"], s["offset"], s["updated_ts"]
        a.gaps = s.get("gaps", {})  # state written before gap markers has none
        return a

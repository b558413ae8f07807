"""AccountTracker: merges RabbitX ``account@<profile>`` snapshots and partial updates into full state and
says which normalized AccountEvents changed.

- Snapshot = ALL information; updates carry only what changed ("empty fields mean no change"), entities
  (orders, positions) matched by ``id`` and merged field by field; fills are new facts, published once.
- An event is produced only when the normalized entity differs from what was last published for it, so a
  resubscribe snapshot after a reconnect republishes only what changed meanwhile.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from producers.core.numbers import opt_none, to_micros
from producers.rabbitx.normalize import (
    canonical_keys,
    fill_payload,
    is_empty,
    merge_partial,
    opt_text,
    order_payload,
    position_payload,
)


@dataclass
class AccountChange:
    kind: str  # BALANCE | ORDER | FILL | POSITION
    market: str  # venue market id, "*" for balances
    payload: dict[str, Any]
    exchange_ts: int | None
    event_id: str | None = None


class AccountTracker:
    def __init__(self, profile_id: str, settlement_asset: str, fills_window: int = 100_000) -> None:
        self.profile_id = profile_id
        self.asset = settlement_asset
        self.balance: dict[str, Any] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.positions: dict[str, dict[str, Any]] = {}
        self._published: dict[tuple[str, str], dict[str, Any]] = {}
        self._fills: OrderedDict[str, None] = OrderedDict()
        self._fills_window = fills_window

    def apply(self, data: dict[str, Any], *, snapshot: bool) -> list[AccountChange]:
        """Merge one snapshot or update; returns the normalized changes to publish (not yet marked)."""
        data = canonical_keys(data)
        if snapshot:
            self.balance, self.orders, self.positions = {}, {}, {}
        ts = None if is_empty(data.get("last_update")) else to_micros(data["last_update"])
        changes: list[AccountChange] = []
        for key in ("balance", "wallet_balance", "withdrawable_balance"):
            if not is_empty(data.get(key)):
                self.balance[key] = data[key]
        if self.balance:
            total = self.balance.get("balance", self.balance.get("wallet_balance"))
            if total is not None:
                payload = {"asset": self.asset, "total": opt_text(total),
                           "available": opt_text(self.balance.get("withdrawable_balance")), "locked": None}
                changes.append(AccountChange("BALANCE", "*", payload, ts))
        for raw in data.get("orders") or []:
            o = merge_partial(self.orders.setdefault(str(raw["id"]), {}), raw)
            changes.append(AccountChange("ORDER", str(o.get("market_id", "*")), order_payload(o), ts))
        for raw in data.get("positions") or []:
            p = merge_partial(self.positions.setdefault(str(raw["id"]), {}), raw)
            changes.append(AccountChange("POSITION", str(p.get("market_id", "*")), position_payload(p), ts))
        batch_fills: set[str] = set()
        for raw in data.get("fills") or []:
            f = canonical_keys(raw)
            if str(f["id"]) in self._fills or str(f["id"]) in batch_fills:
                continue
            batch_fills.add(str(f["id"]))
            fts = opt_none(f.get("timestamp"), to_micros)
            changes.append(AccountChange("FILL", str(f["market_id"]), fill_payload(f, self.asset), fts,
                                         event_id=f"fill:{f['id']}"))
        return [c for c in changes if self._differs(c)]

    def _identity(self, c: AccountChange) -> tuple[str, str]:
        ids = {"BALANCE": "asset", "ORDER": "order_id", "FILL": "fill_id"}
        return c.kind, str(c.payload[ids[c.kind]]) if c.kind in ids else c.market

    def _differs(self, c: AccountChange) -> bool:
        return self._published.get(self._identity(c)) != c.payload

    def mark_published(self, c: AccountChange) -> None:
        self._published[self._identity(c)] = c.payload
        if c.kind == "FILL":
            self._fills[c.payload["fill_id"]] = None
            if len(self._fills) > self._fills_window:
                self._fills.popitem(last=False)

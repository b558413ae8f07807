"""The simulator's truth for one RabbitX account (``account@<profile_id>``): balance, orders, fills, positions.

``change()`` mutates the truth and returns the partial update RabbitX would push: only changed fields,
empty strings for "no change", and the key spellings the venue's own docs mix (``isMaker``/``is_maker``,
``marketID``/``market_id``, ``avg_entr_price``/``avg_entry_price``). Fill timestamps are sometimes in
seconds, as in the docs' fills sample. ``snapshot()`` is the full state (subscribe reply).
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

OPEN = ("placed", "open")


class TrueAccount:
    def __init__(self, profile_id: str, markets: dict[str, Decimal], rng: random.Random,
                 start_ts: int = 1_700_000_000_000_000) -> None:
        self.profile_id = profile_id
        self.markets = markets  # market id -> mid price
        self.rng = rng
        self.clock = start_ts
        self.balance = Decimal("65289.20")
        self.withdrawable = Decimal("60000.00")
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: list[dict[str, Any]] = []
        self.positions: dict[str, dict[str, Any]] = {}
        self._order_n = 0
        self._fill_n = 0

    def now(self) -> int:
        self.clock += self.rng.randint(1000, 100_000)
        return self.clock

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": int(self.profile_id), "status": "active", "profile_type": "trader", "tier": 1,
            "balance": str(self.balance), "wallet_balance": str(self.balance),
            "withdrawalable_balance": str(self.withdrawable),  # (sic) as in the docs' snapshot
            "account_equity": str(self.balance), "account_margin": "0", "account_leverage": "1",
            "cum_unrealized_pnl": "0", "health": "1", "total_notional": "0", "total_order_margin": "0",
            "total_position_margin": "0", "balance_operations": [],
            "orders": [dict(o) for o in self.orders.values()],
            "fills": [dict(f) for f in self.fills[-200:]],
            "positions": [dict(p) for p in self.positions.values()],
        }

    def change(self) -> dict[str, Any]:
        open_orders = [o for o in self.orders.values() if o["status"] in OPEN]
        r = self.rng.random()
        if not open_orders or r < 0.35:
            diff = self._place()
        elif r < 0.75:
            diff = self._fill(self.rng.choice(open_orders))
        elif r < 0.9:
            diff = self._cancel(self.rng.choice(open_orders))
        else:
            diff = self._balance_op()
        diff["id"] = int(self.profile_id)
        diff["last_update"] = self.clock
        return diff

    def _place(self) -> dict[str, Any]:
        self._order_n += 1
        market = self.rng.choice(sorted(self.markets))
        mid = self.markets[market]
        size = Decimal(self.rng.randint(1, 5000)) / 1000
        order: dict[str, Any] = {
            "id": f"{market}@{self._order_n}", "client_order_id": f"cli-{self._order_n}", "market_id": market,
            "profile_id": int(self.profile_id), "side": self.rng.choice(["long", "short"]), "type": "limit",
            "price": str(mid + Decimal(self.rng.randint(-20, 20)) / 10), "initial_size": str(size),
            "remaining_size": str(size), "total_filled_size": "0", "status": "placed", "reason": "",
            "last_action": "place", "created_at": self.now(),
        }
        self.orders[order["id"]] = order
        return {"orders": [dict(order)]}

    def _fill(self, order: dict[str, Any]) -> dict[str, Any]:
        remaining = Decimal(order["remaining_size"])
        qty = remaining if self.rng.random() < 0.4 else (remaining / 2).quantize(Decimal("0.001"))
        if qty <= 0:
            qty = remaining
        self._fill_n += 1
        ts = self.now()
        filled = Decimal(order["total_filled_size"]) + qty
        order.update(remaining_size=str(remaining - qty), total_filled_size=str(filled),
                     status="closed" if remaining - qty == 0 else "open", last_action="fill")
        spelled = self.rng.random() < 0.5
        fill = {
            "id": f"fill-{self._fill_n}", "order_id": order["id"], "trade_id": f"{order['market_id']}-t{self._fill_n}",
            "profile_id": int(self.profile_id), "price": order["price"], "size": str(qty), "side": order["side"],
            "fee": str((qty * Decimal(order["price"]) * Decimal("0.0002")).quantize(Decimal("0.000001"))),
            "liquidation": False,
            "timestamp": ts // 1_000_000 if self.rng.random() < 0.3 else ts,  # seconds sometimes
            ("isMaker" if spelled else "is_maker"): self.rng.random() < 0.5,
            ("marketID" if spelled else "market_id"): order["market_id"],
        }
        self.fills.append(fill)
        signed = qty if order["side"] == "long" else -qty
        pos = self.positions.get(order["market_id"])
        if pos is None:
            pos = {"id": f"pos-{order['market_id']}-tr-{self.profile_id}", "market_id": order["market_id"],
                   "profile_id": int(self.profile_id), "size": "0", "side": "long", "avg_entry_price": order["price"],
                   "fair_price": order["price"], "liquidation_price": "0", "margin": "0", "notional": "0",
                   "unrealized_pnl": "0"}
            self.positions[order["market_id"]] = pos
        current = Decimal(pos["size"]) * (1 if pos["side"] == "long" else -1) + signed
        pos.update(size=str(abs(current)), side="long" if current >= 0 else "short", fair_price=order["price"],
                   margin=str((abs(current) * Decimal(order["price"]) / 10).quantize(Decimal("0.01"))))
        self.balance -= Decimal(fill["fee"])
        pos_diff: dict[str, Any] = {"id": pos["id"], "market_id": pos["market_id"], "size": pos["size"],
                                    "side": pos["side"], "fair_price": pos["fair_price"], "margin": pos["margin"],
                                    "liquidation_price": ""}
        pos_diff["avg_entr_price" if self.rng.random() < 0.5 else "avg_entry_price"] = pos["avg_entry_price"]
        order_diff = {"id": order["id"], "remaining_size": order["remaining_size"],
                      "total_filled_size": order["total_filled_size"], "status": order["status"],
                      "price": "", "side": "", "last_action": "fill"}
        return {"fills": [fill], "orders": [order_diff], "positions": [pos_diff], "balance": str(self.balance)}

    def _cancel(self, order: dict[str, Any]) -> dict[str, Any]:
        order.update(status="canceled", last_action="cancel")
        return {"orders": [{"id": order["id"], "status": "canceled", "last_action": "cancel", "price": ""}]}

    def _balance_op(self) -> dict[str, Any]:
        amount = Decimal(self.rng.randint(-5000, 5000)) / 100
        self.balance += amount
        self.withdrawable += amount
        return {"balance": str(self.balance), "withdrawable_balance": str(self.withdrawable),
                "balance_operations": [{"id": f"op-{self.now()}", "amount": str(amount), "ops_type": "deposit",
                                        "profile_id": int(self.profile_id), "timestamp": self.clock}]}

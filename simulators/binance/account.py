"""A simulated trading account: balances, orders and fills (the private channels' truth; venue-neutral)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)


@dataclass
class SimBalance:
    ccy: str
    cash: Decimal
    frozen: Decimal = ZERO

    @property
    def available(self) -> Decimal:
        return self.cash - self.frozen


@dataclass
class SimOrder:
    ord_id: str
    cl_ord_id: str
    inst_id: str
    side: str  # buy | sell
    px: Decimal
    sz: Decimal
    state: str = "live"  # live | partially_filled | filled | canceled
    acc_fill_sz: Decimal = ZERO
    notional_filled: Decimal = ZERO
    fee: Decimal = ZERO
    c_time: int = 0
    u_time: int = 0
    base: str = ""
    quote: str = ""


@dataclass(frozen=True)
class SimFill:
    trade_id: str
    ord_id: str
    inst_id: str
    side: str
    px: Decimal
    sz: Decimal
    fee: Decimal  # negative: charged
    fee_ccy: str
    ts: int


@dataclass
class SimAccount:
    uid: str = "44440000111"
    fee_rate: Decimal = Decimal("0.001")
    balances: dict[str, SimBalance] = field(default_factory=dict)
    orders: dict[str, SimOrder] = field(default_factory=dict)
    fills: list[SimFill] = field(default_factory=list)
    next_id: int = 700_000_000

    def deposit(self, ccy: str, amount: Decimal) -> None:
        self.balances.setdefault(ccy, SimBalance(ccy, ZERO)).cash += amount

    def place(self, inst_id: str, side: str, px: Decimal, sz: Decimal, ts: int, *, base: str | None = None,
              quote: str | None = None) -> SimOrder:
        """``inst_id`` is the venue's market id; base/quote default to its ``BASE-QUOTE`` parts."""
        if base is None or quote is None:
            base, quote = inst_id.split("-")
        self.next_id += 1
        order = SimOrder(str(self.next_id), f"mp{self.next_id}", inst_id, side, px, sz, c_time=ts, u_time=ts,
                         base=base, quote=quote)
        self.orders[order.ord_id] = order
        if side == "buy":
            self.balances.setdefault(quote, SimBalance(quote, ZERO)).frozen += px * sz
        else:
            self.balances.setdefault(base, SimBalance(base, ZERO)).frozen += sz
        return order

    def fill(self, ord_id: str, sz: Decimal, ts: int) -> SimFill:
        order = self.orders[ord_id]
        base, quote = order.base, order.quote
        sz = min(sz, order.sz - order.acc_fill_sz)
        self.next_id += 1
        fee = -(sz * self.fee_rate) if order.side == "buy" else -(sz * order.px * self.fee_rate)
        fee_ccy = base if order.side == "buy" else quote
        fill = SimFill(str(self.next_id), ord_id, order.inst_id, order.side, order.px, sz, fee, fee_ccy, ts)
        self.fills.append(fill)
        order.acc_fill_sz += sz
        order.notional_filled += sz * order.px
        order.fee += fee
        order.state = "filled" if order.acc_fill_sz == order.sz else "partially_filled"
        order.u_time = ts
        b, q = self.balances.setdefault(base, SimBalance(base, ZERO)), self.balances.setdefault(quote, SimBalance(quote, ZERO))
        if order.side == "buy":
            q.frozen -= sz * order.px
            q.cash -= sz * order.px
            b.cash += sz + fee
        else:
            b.frozen -= sz
            b.cash -= sz
            q.cash += sz * order.px + fee
        return fill

    def cancel(self, ord_id: str, ts: int) -> SimOrder:
        order = self.orders[ord_id]
        base, quote = order.base, order.quote
        rest = order.sz - order.acc_fill_sz
        if order.side == "buy":
            self.balances[quote].frozen -= rest * order.px
        else:
            self.balances[base].frozen -= rest
        order.state = "canceled"
        order.u_time = ts
        return order

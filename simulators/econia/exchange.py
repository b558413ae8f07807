"""EconiaExchange: a toy Econia market that writes the DSS event tables and notifies like ``pg_notify``.

Each transaction gets a ``txn_version``; its events get ``event_idx`` 0, 1, ... Fills are written TWICE
(maker handle, then taker handle) exactly as the Move module emits them. Order ids are u128 (38-39 digits).
``true`` = ASK. Prices are ticks per lot, sizes are lots.

Taker orders are real Econia market orders and swaps, each one transaction in the Move module's event
order: ``place_market_order_event`` (``direction``: ``true`` = sell, ``size`` in lots) or
``place_swap_order_event`` (by a ``signing_account``; ``min_base``/``max_base`` in base subunits,
``min_quote``/``max_quote`` in quote subunits, ``limit_price`` in ticks per lot) first, then its fills against
the best opposite orders (price-time priority, maker and taker copies), then, when it did not fill
completely, a ``cancel_order_event`` with the taker order's id (reason 5 NOT_ENOUGH_LIQUIDITY, or 8
TOO_SMALL_TO_FILL_LOT for a swap whose ``max_base`` leaves less than a lot). Truth: ``taker_orders``.
Each registered market is also recognized (``recognized_market_event``, its own transaction).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators.econia.markets import EconiaMarket

ASK, BID = True, False
Row = dict[str, Any]
Notify = Callable[[str, Row], None]

TABLE_OF_CHANNEL = {
    "market_registration_event": "market_registration_events",
    "place_limit_order_event": "place_limit_order_events",
    "fill_event": "fill_events",
    "change_order_size_event": "change_order_size_events",
    "cancel_order_event": "cancel_order_events",
    "place_market_order_event": "place_market_order_events",
    "place_swap_order_event": "place_swap_order_events",
    "recognized_market_event": "recognized_market_events",
}
HI_64 = 2**64 - 1
CANCEL_NOT_ENOUGH_LIQUIDITY = 5
CANCEL_TOO_SMALL_TO_FILL_LOT = 8


@dataclass
class RestingOrder:
    market: EconiaMarket
    order_id: int
    user: str
    custodian_id: int
    side: bool
    price: int
    initial_size: int
    size: int
    filled: int = 0
    created_at: str = ""
    status: str = "open"  # open | closed (filled) | cancelled: the venue's truth for the order


@dataclass
class FillTruth:
    """One matched fill (not one emitted event): the trade the tape should show once."""

    market: EconiaMarket
    txn_version: int
    maker_order_id: int
    taker_order_id: int
    sequence_number_for_trade: int
    maker_address: str
    taker_address: str
    maker_custodian_id: int
    taker_custodian_id: int
    maker_side: bool
    price: int  # ticks per lot
    size: int  # lots
    taker_quote_fees_paid: int


@dataclass
class TakerOrder:
    """A market order or swap: the venue's truth of what it asked for and what it got."""

    market: EconiaMarket
    order_id: int
    order_type: str  # market | swap
    user: str  # the market order's user, or the swap's signing account
    custodian_id: int  # 0 for swaps
    direction: bool  # true = sell
    size: int  # base subunits asked for (a market order's lots * lot_size; a swap's max_base)
    limit_price: int | None  # ticks per lot (swaps)
    txn_version: int
    fills: list[int] = field(default_factory=list)  # lots per taker fill, in order
    cancel_reason: int | None = None  # set when its unfilled rest was cancelled


@dataclass
class EconiaExchange:
    markets: tuple[EconiaMarket, ...]
    notify: Notify
    seed: int = 11
    users: tuple[str, ...] = ()
    rng: random.Random = field(init=False)
    txn_version: int = 100_000_000
    tables: dict[str, list[Row]] = field(default_factory=dict)
    limit_orders: dict[tuple[int, int], Row] = field(default_factory=dict)
    resting: dict[int, list[RestingOrder]] = field(default_factory=dict)
    fills: list[FillTruth] = field(default_factory=list)
    orders: dict[tuple[int, int], RestingOrder] = field(default_factory=dict)
    _order_counter: int = 1 << 60
    crossing_orders: bool = False  # random_activity also places limit orders that cross the spread
    crossings: int = 0  # crossing limit orders placed (each one transaction: place, then fills)
    taker_orders: dict[tuple[int, int], TakerOrder] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        if not self.users:
            self.users = tuple("0x" + f"{self.rng.getrandbits(256):064x}" for _ in range(4))
        for table in TABLE_OF_CHANNEL.values():
            self.tables.setdefault(table, [])
        for m in self.markets:
            self.resting[m.market_id] = []

    # -- plumbing ---------------------------------------------------------------------------
    @staticmethod
    def now_iso() -> str:
        return datetime.now(UTC).isoformat(timespec="microseconds")

    def _txn(self) -> int:
        self.txn_version += self.rng.randint(1, 5)
        return self.txn_version

    def _emit(self, channel: str, row: Row) -> None:
        self.tables[TABLE_OF_CHANNEL[channel]].append(row)
        self.notify(channel, row)

    def _emit_user_history(self, order: RestingOrder, status: str) -> None:
        row = {
            "market_id": order.market.market_id, "order_id": order.order_id, "created_at": order.created_at,
            "last_updated_at": self.now_iso(), "integrator": "0x" + "e" * 64, "total_filled": order.filled,
            "remaining_size": order.size, "order_status": status, "order_type": "limit", "user": order.user,
            "direction": "ask" if order.side else "bid", "price": order.price,
            "average_execution_price": order.price if order.filled else None,
            "custodian_id": order.custodian_id, "self_match_behavior": 0, "restriction": 0,
            "last_increase_stamp": order.order_id >> 64, "min_base": None, "max_base": None,
            "min_quote": None, "max_quote": None,
        }
        self.limit_orders[(order.market.market_id, order.order_id)] = row
        self.notify("updated_limit_order", row)

    def _new_order_id(self, price: int) -> int:
        self._order_counter += self.rng.randint(1, 1000)
        return (self._order_counter << 64) | (price << 32) | self.rng.getrandbits(32)

    # -- actions -----------------------------------------------------------------------------
    def register_market(self, market: EconiaMarket) -> Row:
        txn = self._txn()
        row = market.registration_row(txn, 0, self.now_iso())
        self.resting.setdefault(market.market_id, [])
        if market not in self.markets:
            self.markets = (*self.markets, market)
        self._emit("market_registration_event", row)
        self.recognize_market(market)
        return row

    def recognize_market(self, market: EconiaMarket) -> Row:
        """The registry's recognized market for the pair (``recognized_market_events`` columns in order)."""
        reg = market.registration_row(self._txn(), 0, self.now_iso())
        row = {k: reg[k] for k in ("txn_version", "event_idx", "time", "base_account_address", "base_module_name",
                                    "base_struct_name", "base_name_generic", "quote_account_address",
                                    "quote_module_name", "quote_struct_name", "market_id", "lot_size", "tick_size",
                                    "min_size", "underwriter_id")}
        self._emit("recognized_market_event", row)
        return row

    def place_limit_order(self, market: EconiaMarket, *, user: str | None = None, custodian_id: int = 0,
                          side: bool | None = None, price: int | None = None, size: int | None = None) -> RestingOrder:
        txn = self._txn()
        side = self.rng.choice((ASK, BID)) if side is None else side
        if price is None:  # a random price that rests without crossing (no matching here: see place_crossing_…)
            price = 1000 + self.rng.randint(1, 50) if side else 1000 - self.rng.randint(0, 50)
            opposite = [o.price for o in self.resting[market.market_id] if o.size > 0 and o.side is not side]
            if opposite:
                price = max(price, max(opposite) + 1) if side is ASK else min(price, min(opposite) - 1)
        size = size if size is not None else self.rng.randint(market.min_size, 500)
        user = user or self.rng.choice(self.users)
        order = RestingOrder(market, self._new_order_id(price), user, custodian_id, side, price, size, size,
                             created_at=self.now_iso())
        self.resting[market.market_id].append(order)
        self.orders[(market.market_id, order.order_id)] = order
        self._emit("place_limit_order_event", {
            "txn_version": txn, "event_idx": 0, "time": order.created_at, "market_id": market.market_id,
            "user": user, "custodian_id": custodian_id, "order_id": order.order_id, "side": side,
            "integrator": "0x" + "e" * 64, "initial_size": size, "price": price, "restriction": 0,
            "self_match_behavior": 0, "size": size,
        })
        self._emit_user_history(order, "open")
        return order

    def _opposite(self, market: EconiaMarket, direction: bool) -> list[RestingOrder]:
        """Resting orders a taker of ``direction`` (true = sell) meets, best price first, then time."""
        side = BID if direction else ASK
        book = [o for o in self.resting[market.market_id] if o.size > 0 and o.side is side]
        return sorted(book, key=lambda o: -o.price if side is BID else o.price)  # stable: time priority kept

    def _direction(self, market: EconiaMarket, direction: bool | None, fills: int) -> bool:
        if direction is not None:
            return direction
        deep = [d for d in (True, False) if len(self._opposite(market, d)) >= fills]
        if deep:
            return self.rng.choice(deep)
        return max((True, False), key=lambda d: (len(self._opposite(market, d)), self.rng.random()))

    def _match(self, market: EconiaMarket, txn: int, idx: int, taker: str, taker_custodian_id: int,
               taker_order_id: int, makers: list[tuple[RestingOrder, int]]) -> tuple[list[FillTruth], int]:
        """Emit the fills of one taker order (maker and taker copies) from ``idx``; returns (fills, next idx)."""
        out: list[FillTruth] = []
        ts = self.now_iso()
        for seq, (maker, lots) in enumerate(makers):
            fee = lots * maker.price * market.tick_size * 5 // 10_000
            fill = FillTruth(market, txn, maker.order_id, taker_order_id, seq, maker.user, taker, maker.custodian_id,
                             taker_custodian_id, maker.side, maker.price, lots, fee)
            for emit in (maker.user, taker):  # the Move module emits to both handles
                self._emit("fill_event", {
                    "txn_version": txn, "event_idx": idx, "emit_address": emit, "time": ts,
                    "maker_address": maker.user, "maker_custodian_id": maker.custodian_id,
                    "maker_order_id": maker.order_id, "maker_side": maker.side, "market_id": market.market_id,
                    "price": maker.price, "sequence_number_for_trade": seq, "size": lots, "taker_address": taker,
                    "taker_custodian_id": taker_custodian_id, "taker_order_id": taker_order_id,
                    "taker_quote_fees_paid": fee,
                })
                idx += 1
            maker.size -= lots
            maker.filled += lots
            maker.status = "open" if maker.size else "closed"
            self._emit_user_history(maker, maker.status)
            self.fills.append(fill)
            out.append(fill)
        return out, idx

    def _fill_plan(self, market: EconiaMarket, direction: bool, fills: int, exhaust: bool) -> tuple[list[RestingOrder], int]:
        """(opposite orders, lots): ``fills`` best orders, all but the last filled completely; with ``exhaust``
        more lots than the whole opposite side holds."""
        opposite = self._opposite(market, direction)
        if exhaust:
            return opposite, sum(o.size for o in opposite) + self.rng.randint(1, 50)
        makers = opposite[:fills]
        if not makers:
            return [], self.rng.randint(1, 50)
        return makers, sum(o.size for o in makers[:-1]) + self.rng.randint(1, makers[-1].size)

    def _walk(self, book: list[RestingOrder], lots: int) -> list[tuple[RestingOrder, int]]:
        matched: list[tuple[RestingOrder, int]] = []
        for maker in book:
            if lots == 0:
                break
            n = min(lots, maker.size)
            matched.append((maker, n))
            lots -= n
        return matched

    def take(self, market: EconiaMarket, *, taker: str | None = None, taker_custodian_id: int = 0,
             fills: int = 2, self_trade: bool = False, direction: bool | None = None,
             exhaust: bool = False) -> list[FillTruth]:
        """A market order (one direction, ``true`` = sell) filling ``fills`` resting orders in price-time
        priority, in one transaction: ``place_market_order_event``, its fills, and (``exhaust``: it asks for
        more than the opposite side holds) a ``cancel_order_event`` for its unfilled rest."""
        if not any(o.size > 0 for o in self.resting[market.market_id]):
            self.place_limit_order(market)
        direction = self._direction(market, direction, fills)
        book, lots = self._fill_plan(market, direction, fills, exhaust)
        taker = book[0].user if self_trade and book else (taker or self.rng.choice(self.users))
        order = TakerOrder(market, self._new_order_id(0), "market", taker, taker_custodian_id, direction,
                           lots * market.lot_size, None, self._txn())
        self._emit("place_market_order_event", {
            "txn_version": order.txn_version, "event_idx": 0, "market_id": market.market_id, "time": self.now_iso(),
            "order_id": order.order_id, "user": taker, "custodian_id": taker_custodian_id,
            "integrator": "0x" + "e" * 64, "direction": direction, "size": lots, "self_match_behavior": 0,
        })
        return self._execute(order, self._walk(book, lots), CANCEL_NOT_ENOUGH_LIQUIDITY)

    def swap(self, market: EconiaMarket, *, signing_account: str | None = None, fills: int = 2,
             direction: bool | None = None, exhaust: bool = False, odd_subunits: bool = False) -> TakerOrder:
        """A swap by a signing account, in one transaction: ``place_swap_order_event`` (``max_base`` in base
        subunits; ``odd_subunits`` adds half a lot, which cannot fill: TOO_SMALL_TO_FILL_LOT), its fills, and a
        ``cancel_order_event`` for an unfilled rest."""
        if not any(o.size > 0 for o in self.resting[market.market_id]):
            self.place_limit_order(market)
        direction = self._direction(market, direction, fills)
        book, lots = self._fill_plan(market, direction, fills, exhaust)
        matched = self._walk(book, lots)
        worst = matched[-1][0].price if matched else 1000
        account = signing_account or self.rng.choice(self.users)
        max_base = lots * market.lot_size + (market.lot_size // 2 if odd_subunits else 0)
        order = TakerOrder(market, self._new_order_id(0), "swap", account, 0, direction, max_base, worst,
                           self._txn())
        self._emit("place_swap_order_event", {
            "txn_version": order.txn_version, "event_idx": 0, "market_id": market.market_id, "time": self.now_iso(),
            "order_id": order.order_id, "signing_account": account, "integrator": "0x" + "e" * 64,
            "direction": direction, "min_base": 0, "max_base": max_base, "min_quote": 0, "max_quote": HI_64,
            "limit_price": worst,
        })
        reason = CANCEL_NOT_ENOUGH_LIQUIDITY if exhaust else CANCEL_TOO_SMALL_TO_FILL_LOT
        self._execute(order, matched, reason)
        return order

    def _execute(self, order: TakerOrder, matched: list[tuple[RestingOrder, int]], reason: int) -> list[FillTruth]:
        market = order.market
        self.taker_orders[(market.market_id, order.order_id)] = order
        fills, idx = self._match(market, order.txn_version, 1, order.user, order.custodian_id, order.order_id,
                                 matched)
        order.fills = [f.size for f in fills]
        if order.size - sum(order.fills) * market.lot_size > 0:
            order.cancel_reason = reason
            self._emit("cancel_order_event", {
                "txn_version": order.txn_version, "event_idx": idx, "time": self.now_iso(),
                "market_id": market.market_id, "user": order.user, "custodian_id": order.custodian_id,
                "order_id": order.order_id, "reason": reason,
            })
        return fills

    def place_crossing_limit_order(self, market: EconiaMarket, *, user: str | None = None,
                                   custodian_id: int = 0) -> tuple[RestingOrder, list[FillTruth]] | None:
        """A limit order priced through the best opposite level, in ONE transaction, in the Move module's
        event order: ``place_limit_order_event`` first (``size`` = what is posted after matching), then the
        fills against the resting orders it crosses (price-time priority, maker and taker copies). Between
        the place and its fills a book built event by event looks crossed; the venue's book never is."""
        book = [o for o in self.resting[market.market_id] if o.size > 0]
        side = self.rng.choice((ASK, BID))
        opposite = sorted((o for o in book if o.side is not side), key=lambda o: o.price if side is BID else -o.price)
        if not opposite:
            return None
        reach = self.rng.randint(0, min(len(opposite) - 1, 2))
        price = opposite[reach].price  # crosses the best level, up to the (reach+1)-th
        size = self.rng.randint(1, sum(o.size for o in opposite[:reach + 1]) + 200)  # may rest a remainder
        user = user or self.rng.choice(self.users)
        txn = self._txn()
        self.crossings += 1
        order = RestingOrder(market, self._new_order_id(price), user, custodian_id, side, price, size, size,
                             created_at=self.now_iso())
        matched: list[tuple[RestingOrder, int]] = []
        left = size
        crossed = [o for o in opposite if (o.price <= price if side is BID else o.price >= price)]
        for maker in crossed:  # every level the price reaches, so what rests never crosses
            if left == 0:
                break
            lots = min(left, maker.size)
            matched.append((maker, lots))
            left -= lots
        order.size, order.filled = left, size - left
        order.status = "open" if left else "closed"
        self.orders[(market.market_id, order.order_id)] = order
        self.resting[market.market_id].append(order)
        self._emit("place_limit_order_event", {
            "txn_version": txn, "event_idx": 0, "time": order.created_at, "market_id": market.market_id,
            "user": user, "custodian_id": custodian_id, "order_id": order.order_id, "side": side,
            "integrator": "0x" + "e" * 64, "initial_size": size, "price": price, "restriction": 0,
            "self_match_behavior": 0, "size": left,
        })
        fills, _ = self._match(market, txn, 1, user, custodian_id, order.order_id, matched)
        self._emit_user_history(order, order.status)
        return order, fills

    def change_size(self, market: EconiaMarket) -> RestingOrder | None:
        live = [o for o in self.resting[market.market_id] if o.size > 0]
        if not live:
            return None
        order = self.rng.choice(live)
        order.size = self.rng.randint(market.min_size, 600)
        self._emit("change_order_size_event", {
            "txn_version": self._txn(), "event_idx": 0, "market_id": market.market_id, "time": self.now_iso(),
            "order_id": order.order_id, "user": order.user, "custodian_id": order.custodian_id, "side": order.side,
            "new_size": order.size,
        })
        self._emit_user_history(order, "open")
        return order

    def cancel(self, market: EconiaMarket, order: RestingOrder | None = None) -> RestingOrder | None:
        live = [o for o in self.resting[market.market_id] if o.size > 0]
        if order is None:
            if not live:
                return None
            order = self.rng.choice(live)
        order.size = 0
        order.status = "cancelled"
        self._emit("cancel_order_event", {
            "txn_version": self._txn(), "event_idx": 0, "time": self.now_iso(), "market_id": market.market_id,
            "user": order.user, "custodian_id": order.custodian_id, "order_id": order.order_id, "reason": 3,
        })
        self._emit_user_history(order, "cancelled")
        return order

    def random_activity(self) -> None:
        market = self.rng.choice(self.markets)
        r = self.rng.random()
        if r < 0.4:
            self.place_limit_order(market)
        elif r < 0.47 and self.crossing_orders:
            self.place_crossing_limit_order(market)
        elif r < 0.66:
            self.take(market, fills=self.rng.randint(1, 3), self_trade=self.rng.random() < 0.1)
        elif r < 0.75:
            self.swap(market, fills=self.rng.randint(1, 2), odd_subunits=self.rng.random() < 0.3)
        elif r < 0.9:
            self.change_size(market)
        else:
            self.cancel(market)

    # -- truth helpers -----------------------------------------------------------------------
    def events_since(self, txn_version: int) -> list[tuple[str, Row]]:
        """Every event with txn_version > the given one, in (txn_version, event_idx) order."""
        rows = [(ch, r) for ch, t in TABLE_OF_CHANNEL.items() for r in self.tables[t] if r["txn_version"] > txn_version]
        return sorted(rows, key=lambda cr: (cr[1]["txn_version"], cr[1]["event_idx"]))

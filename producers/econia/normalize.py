"""Econia DSS rows -> marketpipe records (Trade, AccountEvent ORDER/FILL). Pure logic, no I/O.

- ``fill_event``: each fill is emitted twice (maker handle, taker handle). Only the copy with
  ``emit_address == maker_address`` is used (as DSS's ``fill_events_deduped`` view does); a self-trade
  passes that filter twice, so fills are also deduplicated by ``(txn_version, taker_order_id,
  sequence_number_for_trade)``. One maker copy yields the public Trade plus a FILL for the maker account
  and one for the taker account.
- ``true`` = ASK: the maker's side is ``maker_side``; the taker's is the other one.
- order events -> ORDER AccountEvents; the state of each order (price, side, filled) is remembered so
  later size changes and cancels carry it.
- accounts are ``<user address>`` or ``<user address>:<custodian id>`` when a custodian is set.
- each order remembers the key of the last event applied to it (``last_key``). The feed applies events in
  key order; one that still comes older than the order's last applied event (later than the reorder window)
  is published as what it was (its own record) without changing the order's state, and the order goes into
  ``restate_needed``: the feed reads its current state from REST and publishes it (``restate``), so the
  last ORDER record of every order is its venue state again. Cancelled orders stay remembered (a late
  place after its cancel must not reopen the order).
- taker orders (``place_market_order_event``, ``place_swap_order_event``) are immediate: their place
  event comes first in the transaction, then their fills, then (if they did not fill completely) a
  ``cancel_order_event`` with the taker's order id (Econia cancel reasons 2, 4, 5, 7, 8, 9). Each yields
  ORDER records with ``order_type`` ``market`` / ``swap``: NEW at the place, one update per taker fill
  (PARTIALLY_FILLED, FILLED once nothing remains) keyed by the fill id, CANCELLED at the cancel. Market
  order ``direction``: ``true`` = sell (the aggregator's mapping, as ASK = true); ``size`` is in lots.
  A swap belongs to its ``signing_account`` (no custodian); ``min_base``/``max_base`` are base subunits
  (not lots: a swap's size need not be a whole number of lots), ``limit_price`` is ticks per lot.
  A taker fill applied before its order's place (the place notification lost, recovered later by a
  reconcile) is remembered; the late place then publishes the place as it was plus the order's state
  after those fills, so the last ORDER record is the venue's state again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from producers.core.numbers import units_text
from producers.econia.units import MarketParams

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ASK = True
Emission = tuple[str, dict[str, Any]]  # ("trade" | "account", keyword arguments for EventEmitter)


class UnknownOrder(LookupError):
    def __init__(self, market_id: int, order_id: int) -> None:
        super().__init__(f"unknown Econia order {order_id} on market {market_id}")
        self.market_id = market_id
        self.order_id = order_id


class UnknownMarket(LookupError):
    def __init__(self, market_id: int) -> None:
        super().__init__(f"unknown Econia market {market_id}")
        self.market_id = market_id


def iso_micros(text: Any) -> int:
    """DSS ISO-8601 time with offset -> µs since the epoch (integer math, no float)."""
    if not isinstance(text, str):
        raise ValueError(f"time {text!r} is not ISO-8601 text")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // timedelta(microseconds=1)


def account_of(user: Any, custodian_id: Any) -> str:
    if not isinstance(user, str) or not user.startswith("0x"):
        raise ValueError(f"not an account address: {user!r}")
    custodian = _int(custodian_id)
    return user if custodian == 0 else f"{user}:{custodian}"


def order_side(side: Any) -> str:
    if not isinstance(side, bool):
        raise ValueError(f"side {side!r} is not a boolean (true = ASK)")
    return "SELL" if side is ASK else "BUY"


def _int(v: Any) -> int:
    if type(v) is int:
        return v
    raise ValueError(f"expected a JSON integer, got {v!r}")


def _fill_key(trade_id: str) -> tuple[int, int]:
    """(txn_version, sequence_number_for_trade) of a trade id "<txn>:<taker order>:<seq>"."""
    txn, _, seq = trade_id.split(":")
    return int(txn), int(seq)


def _key(row: dict[str, Any]) -> tuple[int, int]:
    return _int(row["txn_version"]), _int(row["event_idx"])


@dataclass
class OrderState:
    side: str
    price: str | None
    initial: int  # lots
    filled: int  # lots
    remaining: int  # lots
    last_key: tuple[int, int] | None = None  # (txn_version, event_idx) of the last event applied
    closed: bool = False


@dataclass
class TakerState:
    """A market order or swap (immediate: it never rests) as its events went by."""

    account: str
    order_type: str  # market | swap
    side: str
    price: str | None  # a swap's limit price; None for a market order
    size: int  # base subunits (a market order's lots * lot_size; a swap's max_base)
    filled: int = 0  # lots
    closed: bool = False
    fills: int = 0  # taker fills applied
    closed_status: str | None = None  # venue_status of the cancel that closed it ("cancelled:<reason>")
    newest_fill: tuple[int, int] | None = None  # (txn_version, sequence_number_for_trade) of its newest fill
    newest_fill_id: str = ""  # that fill's trade id


class EconiaNormalizer:
    def __init__(self, markets: dict[int, MarketParams], *, order_memory: int = 200_000,
                 fill_memory: int = 200_000) -> None:
        self.markets = markets
        self.orders: OrderedDict[tuple[int, int], OrderState] = OrderedDict()
        self._fills: OrderedDict[str, None] = OrderedDict()
        self._order_memory = order_memory
        self._fill_memory = fill_memory
        self.duplicate_fills = 0  # taker copies + self-trade repeats dropped
        self.inexact_prices = 0
        self._orphan_fills: OrderedDict[tuple[int, int], tuple[int, int]] = OrderedDict()  # maker unknown yet
        # (market, order) with an event applied out of order -> the newest such event's key
        self.restate_needed: dict[tuple[int, int], tuple[int, int]] = {}
        self.superseded = 0  # events older than their order's last applied event
        self.takers: OrderedDict[tuple[int, int], TakerState] = OrderedDict()  # market orders and swaps
        self._orphan_taker_fills: OrderedDict[tuple[int, int], tuple[int, int, str, int]] = OrderedDict()
        self._orphan_taker_cancels: OrderedDict[tuple[int, int], dict[str, Any]] = OrderedDict()
        self.taker_orders = 0  # market/swap place events applied
        self.late_taker_places = 0  # market/swap places applied after some of their fills or their cancel

    def market(self, market_id: Any) -> MarketParams:
        mid = _int(market_id)
        params = self.markets.get(mid)
        if params is None:
            raise UnknownMarket(mid)
        return params

    def _price(self, m: MarketParams, ticks: Any) -> str:
        text, exact = m.price_text(_int(ticks))
        if not exact:
            self.inexact_prices += 1
        return text

    def _remember(self, key: tuple[int, int], state: OrderState) -> None:
        self.orders[key] = state
        self.orders.move_to_end(key)
        if len(self.orders) > self._order_memory:
            self.orders.popitem(last=False)

    # -- per channel ---------------------------------------------------------------------------------
    def fill(self, row: dict[str, Any], receive_ts: int) -> list[Emission]:
        m = self.market(row["market_id"])
        maker, taker = row["maker_address"], row["taker_address"]
        if row["emit_address"] != maker:
            self.duplicate_fills += 1
            return []
        txn, taker_oid, seq = _int(row["txn_version"]), _int(row["taker_order_id"]), _int(row["sequence_number_for_trade"])
        maker_oid = _int(row["maker_order_id"])
        trade_id = f"{txn}:{taker_oid}:{seq}"
        if trade_id in self._fills:
            self.duplicate_fills += 1
            return []
        maker_side = order_side(row["maker_side"])
        taker_side = "BUY" if maker_side == "SELL" else "SELL"
        lots = _int(row["size"])
        price, size = self._price(m, row["price"]), m.size_text(lots)
        fee = m.quote_text(_int(row["taker_quote_fees_paid"]))
        ts = iso_micros(row["time"])
        maker_acct = account_of(maker, row["maker_custodian_id"])
        taker_acct = account_of(taker, row["taker_custodian_id"])
        common = {"market": m.market, "venue_symbol": m.venue_symbol, "exchange_ts": ts, "receive_ts": receive_ts}
        out: list[Emission] = [("trade", {**common, "trade_id": trade_id, "price": price, "size": size,
                                          "side": taker_side, "channel": "fill_event"})]
        for acct, oid, side, is_maker, fee_text in ((maker_acct, maker_oid, maker_side, True, None),
                                                    (taker_acct, taker_oid, taker_side, False, fee)):
            out.append(("account", {**common, "account": acct, "kind": "FILL", "channel": "fill_event",
                                    "event_id": f"econia:{acct}:fill:{trade_id}:{'maker' if is_maker else 'taker'}",
                                    "payload": {"fill_id": trade_id, "order_id": str(oid), "side": side,
                                                "price": price, "size": size, "fee": fee_text,
                                                "fee_asset": m.quote_symbol if fee_text is not None else None,
                                                "is_maker": is_maker}}))
        state = self.orders.get((m.market_id, maker_oid))
        if state is None:  # its place is still to come (late): the place must then be restated
            orphan = (m.market_id, maker_oid)
            self._orphan_fills[orphan] = max(self._orphan_fills.get(orphan, (0, 0)), _key(row))
            if len(self._orphan_fills) > self._order_memory:
                self._orphan_fills.popitem(last=False)
        elif self._in_order(m.market_id, maker_oid, state, row):
            state.filled += lots
            state.remaining = max(state.remaining - lots, 0)
        self._fills[trade_id] = None
        if len(self._fills) > self._fill_memory:
            self._fills.popitem(last=False)
        taker_state = self.takers.get((m.market_id, taker_oid))
        if taker_state is not None:
            taker_state.filled += lots
            taker_state.fills += 1
            if taker_state.newest_fill is None or (txn, seq) > taker_state.newest_fill:
                taker_state.newest_fill, taker_state.newest_fill_id = (txn, seq), trade_id
            # the order's state names its newest fill, also when an older one is applied late; and a fill
            # applied after the cancel that closed the order stays closed for that reason, the fill counted in
            status = taker_state.closed_status or f"filled:{taker_state.newest_fill_id}"
            out.append(self._taker_order(m, taker_oid, taker_state, status, "fill_event", f"fill:{trade_id}", ts,
                                         receive_ts))
        elif (m.market_id, taker_oid) not in self.orders:  # a market/swap order whose place is still to come
            orphan_t = (m.market_id, taker_oid)
            lots0, n0, newest_id, newest_ts = self._orphan_taker_fills.get(orphan_t, (0, 0, "", 0))
            if not newest_id or (txn, seq) > _fill_key(newest_id):  # the state names the newest fill
                newest_id, newest_ts = trade_id, ts
            self._orphan_taker_fills[orphan_t] = (lots0 + lots, n0 + 1, newest_id, newest_ts)
            if len(self._orphan_taker_fills) > self._order_memory:
                self._orphan_taker_fills.popitem(last=False)
        return out

    def place_limit_order(self, row: dict[str, Any], receive_ts: int) -> list[Emission]:
        m = self.market(row["market_id"])
        oid = _int(row["order_id"])
        initial, remaining = _int(row["initial_size"]), _int(row["size"])
        state = OrderState(order_side(row["side"]), self._price(m, row["price"]), initial, initial - remaining,
                           remaining, last_key=_key(row))
        self._orphan_taker_fills.pop((m.market_id, oid), None)  # it was a limit order crossing the spread
        known = self.orders.get((m.market_id, oid))
        if known is None or self._in_order(m.market_id, oid, known, row):
            self._remember((m.market_id, oid), state)
            orphan = self._orphan_fills.pop((m.market_id, oid), None)
            if orphan is not None and state.last_key is not None and orphan > state.last_key:  # fills went out first
                self.superseded += 1
                self._needs_restate((m.market_id, oid), orphan)
        status = "NEW" if state.filled == 0 else ("PARTIALLY_FILLED" if remaining else "FILLED")
        return [self._order(m, row, oid, state, status, "placed", "place_limit_order_event", receive_ts)]

    def place_market_order(self, row: dict[str, Any], receive_ts: int) -> list[Emission]:
        m = self.market(row["market_id"])
        acct = account_of(row["user"], row["custodian_id"])
        return self._place_taker(m, row, acct, "market", None, _int(row["size"]) * m.lot_size,
                                 "place_market_order_event", receive_ts)

    def place_swap_order(self, row: dict[str, Any], receive_ts: int) -> list[Emission]:
        m = self.market(row["market_id"])
        acct = account_of(row["signing_account"], 0)
        return self._place_taker(m, row, acct, "swap", self._price(m, row["limit_price"]), _int(row["max_base"]),
                                 "place_swap_order_event", receive_ts)

    def _place_taker(self, m: MarketParams, row: dict[str, Any], acct: str, order_type: str, price: str | None,
                     size: int, channel: str, receive_ts: int) -> list[Emission]:
        oid = _int(row["order_id"])
        direction = row["direction"]
        if not isinstance(direction, bool):
            raise ValueError(f"direction {direction!r} is not a boolean (true = sell)")
        state = TakerState(acct, order_type, "SELL" if direction else "BUY", price, size)
        self.takers[(m.market_id, oid)] = state
        if len(self.takers) > self._order_memory:
            self.takers.popitem(last=False)
        self.taker_orders += 1
        ts = iso_micros(row["time"])
        out = [self._taker_order(m, oid, state, "placed", channel,
                                 f"{_int(row['txn_version'])}:{_int(row['event_idx'])}", ts, receive_ts)]
        orphan = self._orphan_taker_fills.pop((m.market_id, oid), None)
        if orphan is not None or (m.market_id, oid) in self._orphan_taker_cancels:
            self.late_taker_places += 1
        if orphan is not None:  # its fills were applied first: the place as it was, then the state after them
            lots, n, trade_id, fill_ts = orphan
            self.superseded += 1
            state.filled, state.fills = lots, n
            state.newest_fill, state.newest_fill_id = _fill_key(trade_id), trade_id
            out.append(self._taker_order(m, oid, state, f"filled:{trade_id}", "reconcile", f"fill:{trade_id}",
                                         fill_ts, receive_ts))
        cancel = self._orphan_taker_cancels.pop((m.market_id, oid), None)
        if cancel is not None:
            out.extend(self._cancel_taker(m, cancel, receive_ts))
        return out

    def defer_taker_cancel(self, row: dict[str, Any]) -> None:
        """A cancel of an order unknown here and to ``/limit_orders``: a market order's or swap's rest whose
        place is still to come (applied by that place)."""
        order = (_int(row["market_id"]), _int(row["order_id"]))
        self._orphan_taker_cancels[order] = row
        if len(self._orphan_taker_cancels) > self._order_memory:
            self._orphan_taker_cancels.popitem(last=False)

    def is_taker_order(self, row: dict[str, Any]) -> bool:
        return (row.get("market_id"), row.get("order_id")) in self.takers

    def _taker_order(self, m: MarketParams, oid: int, state: TakerState, venue_status: str, channel: str,
                     event_suffix: str, exchange_ts: int, receive_ts: int) -> Emission:
        filled = state.filled * m.lot_size
        remaining = max(state.size - filled, 0) if not state.closed else 0
        if state.closed:
            status = "CANCELLED"
        elif state.filled == 0:
            status = "NEW"
        else:
            status = "FILLED" if remaining == 0 else "PARTIALLY_FILLED"
        payload = {"order_id": str(oid), "client_order_id": None, "side": state.side,
                   "order_type": state.order_type, "status": status, "price": state.price,
                   "size": units_text(state.size, m.base_decimals),
                   "filled_size": m.size_text(state.filled), "remaining_size": units_text(remaining, m.base_decimals),
                   "average_price": None, "venue_status": venue_status}
        return ("account", {"account": state.account, "kind": "ORDER", "market": m.market,
                            "venue_symbol": m.venue_symbol, "exchange_ts": exchange_ts, "receive_ts": receive_ts,
                            "channel": channel, "event_id": f"econia:{state.account}:order:{oid}:{event_suffix}",
                            "payload": payload})

    def _cancel_taker(self, m: MarketParams, row: dict[str, Any], receive_ts: int) -> list[Emission]:
        """The unfilled rest of a market order or swap, cancelled at the end of its transaction."""
        oid = _int(row["order_id"])
        state = self.takers[(m.market_id, oid)]
        state.closed = True
        state.closed_status = f"cancelled:{row.get('reason')}"
        return [self._taker_order(m, oid, state, state.closed_status, "cancel_order_event",
                                  f"{_int(row['txn_version'])}:{_int(row['event_idx'])}", iso_micros(row["time"]),
                                  receive_ts)]

    def change_order_size(self, row: dict[str, Any], receive_ts: int) -> list[Emission]:
        m = self.market(row["market_id"])
        oid = _int(row["order_id"])
        state = self._open(m, oid, row)
        new_size = _int(row["new_size"])
        if self._in_order(m.market_id, oid, state, row):
            state.remaining = new_size
            state.initial = state.filled + new_size
            self._remember((m.market_id, oid), state)
        else:  # its own record, as it was; the order's state is restated after it
            state = OrderState(state.side, state.price, state.filled + new_size, state.filled, new_size)
        status = "PARTIALLY_FILLED" if state.filled else "NEW"
        return [self._order(m, row, oid, state, status, "size_changed", "change_order_size_event", receive_ts)]

    def cancel_order(self, row: dict[str, Any], receive_ts: int) -> list[Emission]:
        m = self.market(row["market_id"])
        oid = _int(row["order_id"])
        if (m.market_id, oid) in self.takers:
            return self._cancel_taker(m, row, receive_ts)
        if (m.market_id, oid) not in self.orders and (m.market_id, oid) in self._orphan_taker_fills:
            self.defer_taker_cancel(row)
            return []
        state = self._open(m, oid, row)
        if self._in_order(m.market_id, oid, state, row):
            state.remaining = 0
            state.closed = True
        else:
            state = OrderState(state.side, state.price, state.initial, state.filled, 0)
        return [self._order(m, row, oid, state, "CANCELLED", f"cancelled:{row.get('reason')}", "cancel_order_event",
                            receive_ts)]

    def _in_order(self, market_id: int, oid: int, state: OrderState, row: dict[str, Any]) -> bool:
        """True (and the order's last key moves) when ``row`` is newer than the order's last applied event."""
        key = _key(row)
        if state.last_key is None or key > state.last_key:
            state.last_key = key
            return True
        if key == state.last_key:
            return True
        self.superseded += 1
        self._needs_restate((market_id, oid), key)
        return False

    def _needs_restate(self, order: tuple[int, int], key: tuple[int, int]) -> None:
        self.restate_needed[order] = max(self.restate_needed.get(order, key), key)

    def _known(self, m: MarketParams, oid: int) -> OrderState:
        state = self.orders.get((m.market_id, oid))
        if state is None:
            raise UnknownOrder(m.market_id, oid)
        return state

    def _open(self, m: MarketParams, oid: int, row: dict[str, Any]) -> OrderState:
        """The order of a change or cancel: known, and not closed by an older event (a closed order
        hears nothing newer; an older event is fine, it is applied out of order)."""
        state = self._known(m, oid)
        if state.closed and state.last_key is not None and _key(row) > state.last_key:
            raise UnknownOrder(m.market_id, oid)
        return state

    def seed_order(self, row: dict[str, Any], as_of: tuple[int, int] | None = None) -> None:
        """Remember an order from its PostgREST ``/limit_orders`` row (its state as of key ``as_of``)."""
        m = self.market(row["market_id"])
        filled, remaining = _int(row["total_filled"]), _int(row["remaining_size"])
        side = {"ask": "SELL", "sell": "SELL", "bid": "BUY", "buy": "BUY"}[row["direction"]]
        self._remember((m.market_id, _int(row["order_id"])),
                       OrderState(side, self._price(m, row["price"]), filled + remaining, filled, remaining,
                                  last_key=as_of, closed=row.get("order_status") != "open"))

    def restate(self, row: dict[str, Any], as_of: tuple[int, int], receive_ts: int) -> list[Emission]:
        """The order's venue state (a ``/limit_orders`` row read at key ``as_of``), after events applied out of
        order: remembered as the order's state and published as its latest ORDER record."""
        self.seed_order(row, as_of)
        (kind, kw), = self.updated_limit_order(row, receive_ts)
        acct, oid = kw["account"], kw["payload"]["order_id"]
        kw["channel"] = "reconcile"
        kw["payload"]["venue_status"] = f"restated:{row['order_status']}"
        cause = self.restate_needed.pop((_int(row["market_id"]), _int(row["order_id"])), None)
        kw["event_id"] = f"econia:{acct}:order:{oid}:restate:{as_of[0]}:{as_of[1]}" + (
            f":after:{cause[0]}:{cause[1]}" if cause is not None else "")
        return [(kind, kw)]

    def updated_limit_order(self, row: dict[str, Any], receive_ts: int) -> list[Emission]:
        """``aggregator.user_history`` row (no txn key): the order's whole state after an update."""
        m = self.market(row["market_id"])
        oid = _int(row["order_id"])
        filled, remaining = _int(row["total_filled"]), _int(row["remaining_size"])
        direction = row["direction"]
        side = {"ask": "SELL", "sell": "SELL", "bid": "BUY", "buy": "BUY"}[direction]
        status = {"open": "PARTIALLY_FILLED" if filled else "NEW", "closed": "FILLED",
                  "cancelled": "CANCELLED"}.get(row["order_status"], "UNKNOWN")
        acct = account_of(row["user"], row["custodian_id"])
        avg = row.get("average_execution_price")
        ts = iso_micros(row["last_updated_at"])
        payload = {"order_id": str(oid), "client_order_id": None, "side": side, "order_type": row["order_type"],
                   "status": status, "price": self._price(m, row["price"]), "size": m.size_text(filled + remaining),
                   "filled_size": m.size_text(filled), "remaining_size": m.size_text(remaining),
                   "average_price": None if avg is None else self._price(m, avg), "venue_status": row["order_status"]}
        return [("account", {"account": acct, "kind": "ORDER", "market": m.market, "venue_symbol": m.venue_symbol,
                             "exchange_ts": ts, "receive_ts": receive_ts, "channel": "updated_limit_order",
                             "event_id": f"econia:{acct}:order:{oid}:{ts}:{filled}:{remaining}",
                             "payload": payload})]

    def _order(self, m: MarketParams, row: dict[str, Any], oid: int, state: OrderState, status: str,
               venue_status: str, channel: str, receive_ts: int) -> Emission:
        acct = account_of(row["user"], row["custodian_id"])
        payload = {"order_id": str(oid), "client_order_id": None, "side": state.side, "order_type": "limit",
                   "status": status, "price": state.price, "size": m.size_text(state.initial),
                   "filled_size": m.size_text(state.filled), "remaining_size": m.size_text(state.remaining),
                   "average_price": None, "venue_status": venue_status}
        return ("account", {"account": acct, "kind": "ORDER", "market": m.market, "venue_symbol": m.venue_symbol,
                            "exchange_ts": iso_micros(row["time"]), "receive_ts": receive_ts,
                            "channel": channel,
                            "event_id": f"econia:{acct}:order:{_int(row['txn_version'])}:{_int(row['event_idx'])}",
                            "payload": payload})

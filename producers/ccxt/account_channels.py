"""Private channels (credentials set): balances, orders, fills and positions as AccountEvents."""

from __future__ import annotations

import logging
from typing import Any

from producers.ccxt import mapping
from producers.ccxt.host import Body, ChannelHost, TapOverflow, TapQueue, watch_and_drain
from producers.ccxt.symbols import normalize_market
from producers.core.backoff import Backoff
from producers.core.numbers import now_micros, stable_id

log = logging.getLogger(__name__)

class AccountChannels(ChannelHost):
    order_queue: TapQueue
    fill_queue: TapQueue

    def _account_market(self, symbol: Any) -> tuple[str, str]:
        market = self.exchange.markets.get(symbol) if symbol else None
        if market is None:
            return "*", str(symbol or "*")
        return normalize_market(market), str(market["id"])

    def _balance_body(self) -> Body:
        async def body(backoff: Backoff) -> None:
            last: dict[str, tuple[Any, Any, Any]] = {}
            while True:
                b = await self.exchange.watch_balance()
                self._got_data("balance", "balance", backoff)
                receive_ts = now_micros()
                exchange_ts = mapping.ms_to_micros(b.get("timestamp"), receive_ts)
                totals, free, used = b.get("total") or {}, b.get("free") or {}, b.get("used") or {}
                for asset, total in totals.items():
                    state = (total, free.get(asset), used.get(asset))
                    if last.get(asset) == state:
                        continue
                    try:
                        payload = mapping.balance_payload(asset, *state)
                        await self._emitter().account(self.settings.account(), kind="BALANCE", market="*",
                                                      venue_symbol=asset, exchange_ts=exchange_ts,
                                                      receive_ts=receive_ts, payload=payload, channel="balance")
                        last[asset] = state
                    except (ValueError, TypeError, KeyError) as exc:
                        self._malformed("balance", {asset: state}, exc)

        return body

    def _orders_body(self) -> Body:
        """Every order update ccxt parses (the tap's queue, not ccxt's ``ordersLimit`` ring), once per state."""
        last: dict[str, dict[str, Any]] = {}

        async def drain() -> None:
            receive_ts = now_micros()
            queue = self.order_queue.items
            while queue:
                o = queue.popleft()
                if isinstance(o, TapOverflow):
                    await self._after_account_overflow("ORDER", "orders", o, receive_ts)
                    continue
                try:
                    payload = mapping.order_payload(o)
                    if last.get(payload["order_id"]) == payload:
                        continue
                    market, venue_symbol = self._account_market(o.get("symbol"))
                    account = self.settings.account()
                    event_id = stable_id(self.venue, account, "order", payload["order_id"], payload["status"],
                                         payload["filled_size"])
                    await self._emitter().account(
                        account, kind="ORDER", market=market, venue_symbol=venue_symbol,
                        exchange_ts=mapping.ms_to_micros(o.get("lastUpdateTimestamp") or o.get("timestamp"),
                                                         receive_ts),
                        receive_ts=receive_ts, payload=payload, event_id=event_id, channel="orders")
                    last[payload["order_id"]] = payload
                except (ValueError, TypeError, KeyError) as exc:
                    self._malformed("orders", o.get("info", o), exc)

        async def body(backoff: Backoff) -> None:
            await watch_and_drain(self.exchange.watch_orders, self.order_queue, drain,
                                  lambda: self._got_data("orders", "orders", backoff))

        return body

    async def _after_account_overflow(self, kind: str, channel: str, lost: TapOverflow, receive_ts: int) -> None:
        """The tap refused ``lost.count`` orders or fills here (its queue was full while publishing blocked):
        an account gap marker stands in their place (ccxt offers no replay of private events)."""
        self.metrics.inc("tap_overflows", channel, lost.count)
        log.warning("%s: %d %s refused by a full tap queue (publishing blocked; limit %s): gap marker", self.venue,
                    lost.count, channel, self.order_queue.limit)
        to_ts = mapping.ms_to_micros(lost.last_ms, receive_ts)
        await self._emitter().account_gap(self.settings.account(), kind=kind, reason="tap-overflow",
                                          from_ts=min(mapping.ms_to_micros(lost.first_ms, receive_ts), to_ts),
                                          to_ts=to_ts, receive_ts=receive_ts, after_id=None,
                                          before_id=None, missing_count=lost.count, channel=channel)

    def _fills_body(self) -> Body:
        """Every fill ccxt parses (the tap's queue, not ccxt's ``tradesLimit`` ring), once."""
        seen: set[str] = set()

        async def drain() -> None:
            receive_ts = now_micros()
            queue = self.fill_queue.items
            while queue:
                t = queue.popleft()
                if isinstance(t, TapOverflow):
                    await self._after_account_overflow("FILL", "fills", t, receive_ts)
                    continue
                try:
                    payload = mapping.fill_payload(t)
                    if payload["fill_id"] in seen:
                        continue
                    market, venue_symbol = self._account_market(t.get("symbol"))
                    account = self.settings.account()
                    await self._emitter().account(
                        account, kind="FILL", market=market, venue_symbol=venue_symbol,
                        exchange_ts=mapping.ms_to_micros(t.get("timestamp"), receive_ts), receive_ts=receive_ts,
                        payload=payload, event_id=stable_id(self.venue, account, "fill", payload["fill_id"]),
                        channel="fills")
                    seen.add(payload["fill_id"])
                except (ValueError, TypeError, KeyError) as exc:
                    self._malformed("fills", t.get("info", t), exc)

        async def body(backoff: Backoff) -> None:
            await watch_and_drain(self.exchange.watch_my_trades, self.fill_queue, drain,
                                  lambda: self._got_data("fills", "fills", backoff))

        return body

    def _positions_body(self) -> Body:
        async def body(backoff: Backoff) -> None:
            last: dict[str, dict[str, Any]] = {}
            while True:
                positions = await self.exchange.watch_positions()
                self._got_data("positions", "positions", backoff)
                receive_ts = now_micros()
                for p in positions:
                    try:
                        payload = mapping.position_payload(p)
                        market, venue_symbol = self._account_market(p.get("symbol"))
                        if last.get(market) == payload:
                            continue
                        await self._emitter().account(
                            self.settings.account(), kind="POSITION", market=market, venue_symbol=venue_symbol,
                            exchange_ts=mapping.ms_to_micros(p.get("timestamp"), receive_ts), receive_ts=receive_ts,
                            payload=payload, channel="positions")
                        last[market] = payload
                    except (ValueError, TypeError, KeyError) as exc:
                        self._malformed("positions", p.get("info", p), exc)

        return body


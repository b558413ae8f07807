"""Coinbase Advanced Trade simulator: the REST calls ccxt's ``load_markets`` makes and the market-data WebSocket.

What ccxt.pro's coinbase client (4.5.90) uses, per venues.md section 5.2 and Coinbase's channel docs:

- REST (``https://api.coinbase.com``): ``GET /api/v3/brokerage/market/products`` (public; ``product_type=FUTURE``
  answers no products here), ``/v2/currencies``, ``/v2/currencies/crypto``, ``/v2/exchange-rates``,
  ``/api/v3/brokerage/time``.
- One WebSocket (``wss://advanced-trade-ws.coinbase.com``, here ``/ws``), no auth for public channels, one
  channel per ``{"type": "subscribe", "product_ids": [...], "channel": ...}`` message. Every message has the
  envelope ``{channel, client_id, timestamp, sequence_num, events}``; ``sequence_num`` counts the messages of
  the **connection**, across all channels (0, 1, 2...), so a gap says only that *some* message was lost.
- ``level2`` answers on channel ``l2_data``: an event ``snapshot`` on every subscribe, then ``update``s of
  ``{side: bid|offer, event_time, price_level, new_quantity}`` (absolute; ``"0"`` removes the level).
- ``market_trades``: a ``snapshot`` of the most recent trades (newest first) on subscribe, then ``update``s
  (newest first; ``side`` BUY/SELL, the taker's side here).
- ``ticker``: a ``snapshot`` on subscribe, an ``update`` after every step with a trade.
- ``heartbeats`` (no products): one message a second with ``heartbeat_counter``; it keeps every subscription
  of the connection open. Without it, a subscription with nothing sent for ``idle_close_s`` is closed
  *silently* ("most channels close within 60-90 seconds if no updates are sent"): the client just stops
  hearing about that product.
- ``subscriptions`` answers each (un)subscribe with the connection's current subscriptions. The docs do not
  say what a second subscribe to a subscribed (channel, product) does; this simulator takes the strict
  reading: acknowledged, no new snapshot (only a new subscription gets one).

Scenarios: ``gap_next(product)`` (the next ``l2_data`` update for the product is applied to the truth and uses
up a ``sequence_num`` but is never delivered), a quiet product (``step(only=[...])`` leaves the others idle,
so without heartbeats their subscriptions close), ``disconnect_all()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from simulators.binance.market import MarketModel, SimTrade, StepResult
from simulators.http import json_response, serve_app

log = logging.getLogger(__name__)

PUBLIC_CHANNELS = ("level2", "market_trades", "ticker", "heartbeats")
WIRE_NAME = {"level2": "l2_data"}  # the channel name messages carry, where it differs from the subscribed one


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    sequence_num: int = 0  # the next message's number; shared by every channel of this connection
    subscriptions: dict[tuple[str, str], float] = field(default_factory=dict)  # (channel, product) -> last send
    heartbeats: bool = False
    heartbeat_counter: int = 0


class CoinbaseSimulator:
    def __init__(self, markets: list[MarketModel], *, host: str = "127.0.0.1", port: int = 0,
                 idle_close_s: float = 75.0, heartbeat_interval: float = 1.0, trade_snapshot: int = 50) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.host, self.port = host, port
        self.idle_close_s = idle_close_s
        self.heartbeat_interval = heartbeat_interval
        self.trade_snapshot = trade_snapshot
        self._conns: list[_Conn] = []
        self._gaps: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._timers: list[asyncio.Task[None]] = []
        self.requests: defaultdict[str, int] = defaultdict(int)
        self.subscribes: defaultdict[tuple[str, str], int] = defaultdict(int)  # (channel, product) -> count
        self.idle_closed: list[tuple[str, str]] = []  # subscriptions closed for silence
        self.duplicate_subscribes = 0  # subscribes to a subscribed (channel, product): acknowledged, no snapshot
        self.withheld_sequence: list[int] = []  # sequence numbers used up by undelivered messages
        self.last_ticker: dict[str, dict[str, str]] = {}  # product -> the newest ticker sent (the truth)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/_sim/top", self._sim_top)
        app.router.add_get("/api/v3/brokerage/market/products", self._products)
        app.router.add_get("/api/v3/brokerage/time", self._time)
        app.router.add_get("/v2/currencies", self._fiat)
        app.router.add_get("/v2/currencies/crypto", self._crypto)
        app.router.add_get("/v2/exchange-rates", self._rates)
        app.router.add_get("/ws", self._ws)
        self._runner, self.port = await serve_app(app, self.port, self.host)
        self._timers = [asyncio.create_task(self._heartbeat_loop()), asyncio.create_task(self._idle_loop())]

    async def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        await self.disconnect_all()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    def _now_ms(self) -> int:
        return max((m.now_ms for m in self.markets.values()), default=0)

    # -- REST --------------------------------------------------------------------------------
    async def _products(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        products = []
        if request.query.get("product_type", "SPOT") == "SPOT":
            for m in self.markets.values():
                last = m.trades[-1].price if m.trades else m.px(m.mid)
                products.append({
                    "product_id": m.symbol, "price": last, "price_percentage_change_24h": "0",
                    "volume_24h": "0", "volume_percentage_change_24h": "0", "base_increment": m.sz(m.lot),
                    "quote_increment": m.px(m.tick), "quote_min_size": "1", "quote_max_size": "150000000",
                    "base_min_size": m.sz(m.lot), "base_max_size": "3400", "base_name": m.base,
                    "quote_name": m.quote, "watched": False, "is_disabled": False, "new": False, "status": "online",
                    "cancel_only": False, "limit_only": False, "post_only": False, "trading_disabled": False,
                    "auction_mode": False, "product_type": "SPOT", "quote_currency_id": m.quote,
                    "base_currency_id": m.base, "fcm_trading_session_details": None, "mid_market_price": "",
                    "alias": "", "alias_to": [], "base_display_symbol": m.base, "quote_display_symbol": m.quote,
                    "view_only": False, "price_increment": m.px(m.tick), "display_name": m.symbol,
                    "product_venue": "CBE"})
        return json_response({"products": products, "num_products": len(products)})

    async def _time(self, request: web.Request) -> web.Response:
        now = self._now_ms()
        return json_response({"iso": iso(now), "epochSeconds": str(now // 1000), "epochMillis": str(now)})

    async def _fiat(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        quotes = sorted({m.quote for m in self.markets.values()})
        return json_response({"data": [{"id": q, "name": q, "min_size": "0.01"} for q in quotes]})

    async def _crypto(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        bases = sorted({m.base for m in self.markets.values()})
        return json_response({"data": [{"asset_id": f"sim-{b}", "code": b, "name": b, "color": "#000000",
                                        "sort_index": str(i), "exponent": "8", "type": "crypto",
                                        "address_regex": ".*"} for i, b in enumerate(bases)]})

    async def _rates(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        return json_response({"data": {"currency": "USD", "rates": {}}})

    async def _sim_top(self, request: web.Request) -> web.Response:
        """Debug: the true top of book of ``market`` (a product id like BTC-USD), exact decimal text."""
        product = request.query.get("market", "")
        m = self.markets.get(product)
        if m is None:
            return json_response({"error": f"unknown market {product!r}"}, status=404)
        bid = m.sorted_bids(1)[0] if m.bids else None
        ask = m.sorted_asks(1)[0] if m.asks else None
        return json_response({"market": product, "best_bid": m.px(bid[0]) if bid else None,
                              "best_ask": m.px(ask[0]) if ask else None, "bid_size": m.sz(bid[1]) if bid else None,
                              "ask_size": m.sz(ask[1]) if ask else None})

    # -- WebSocket ---------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws)
        self._conns.append(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._command(conn, msg.data)
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
        return ws

    async def _send(self, conn: _Conn, channel: str, events: list[dict[str, Any]], *, deliver: bool = True) -> None:
        """One envelope; its ``sequence_num`` is used up even when it is not delivered (a lost message)."""
        seq = conn.sequence_num
        conn.sequence_num += 1
        if not deliver:
            self.withheld_sequence.append(seq)
            return
        payload = {"channel": channel, "client_id": "", "timestamp": iso(self._now_ms()), "sequence_num": seq,
                   "events": events}
        if not conn.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(orjson.dumps(payload).decode())

    async def _error(self, conn: _Conn, message: str) -> None:
        if not conn.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(orjson.dumps({"type": "error", "message": message}).decode())

    async def _command(self, conn: _Conn, text: str) -> None:
        try:
            cmd = orjson.loads(text)
            kind, channel = cmd["type"], cmd["channel"]
            products = list(cmd.get("product_ids") or [])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._error(conn, "Failed to parse request")
            return
        if channel not in PUBLIC_CHANNELS or kind not in ("subscribe", "unsubscribe"):
            await self._error(conn, f"Failed to subscribe: unknown channel or type {channel!r} {kind!r}")
            return
        unknown = [p for p in products if p not in self.markets]
        if unknown:
            await self._error(conn, f"Failed to subscribe: unknown product ids {unknown}")
            return
        loop_now = asyncio.get_running_loop().time()
        if channel == "heartbeats":
            conn.heartbeats = kind == "subscribe"
        elif kind == "subscribe":
            for p in products:
                if (channel, p) in conn.subscriptions:  # already subscribed: nothing new to send
                    self.duplicate_subscribes += 1
                    continue
                conn.subscriptions[(channel, p)] = loop_now
                self.subscribes[(channel, p)] += 1
                await self._snapshot(conn, channel, p)
        else:
            for p in products:
                conn.subscriptions.pop((channel, p), None)
        await self._send(conn, "subscriptions", [{"subscriptions": self._subscription_view(conn)}])

    def _subscription_view(self, conn: _Conn) -> dict[str, list[str]]:
        view: dict[str, list[str]] = defaultdict(list)
        for channel, product in conn.subscriptions:
            view[channel].append(product)
        if conn.heartbeats:
            view["heartbeats"] = []
        return dict(view)

    async def _snapshot(self, conn: _Conn, channel: str, product: str) -> None:
        m = self.markets[product]
        if channel == "level2":
            ts = iso(m.now_ms)
            updates = [{"side": "bid", "event_time": ts, "price_level": m.px(p), "new_quantity": m.sz(s)}
                       for p, s in m.sorted_bids()]
            updates += [{"side": "offer", "event_time": ts, "price_level": m.px(p), "new_quantity": m.sz(s)}
                        for p, s in m.sorted_asks()]
            await self._send(conn, "l2_data", [{"type": "snapshot", "product_id": product, "updates": updates}])
        elif channel == "market_trades" and m.trades:  # (a live product always has recent trades)
            recent = m.trades[-self.trade_snapshot:]
            await self._send(conn, "market_trades", [{"type": "snapshot",
                                                      "trades": [_trade(product, t) for t in reversed(recent)]}])
        elif channel == "ticker" and product in self.last_ticker:
            await self._send(conn, "ticker", [{"type": "snapshot", "tickers": [self.last_ticker[product]]}])

    def subscribers(self, channel: str, product: str) -> int:
        return sum((channel, product) in c.subscriptions for c in self._conns)

    def heartbeat_subscribers(self) -> int:
        return sum(c.heartbeats for c in self._conns)

    # -- timers: heartbeats and closing silent subscriptions -----------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            for conn in list(self._conns):
                if conn.heartbeats:
                    conn.heartbeat_counter += 1
                    now = datetime.now(UTC)
                    await self._send(conn, "heartbeats", [{
                        "current_time": now.strftime("%Y-%m-%d %H:%M:%S.%f000 +0000 UTC"),
                        "heartbeat_counter": conn.heartbeat_counter}])

    async def _idle_loop(self) -> None:
        while True:
            await asyncio.sleep(min(0.1, self.idle_close_s / 4))
            now = asyncio.get_running_loop().time()
            for conn in list(self._conns):
                if conn.heartbeats:
                    continue
                for key, last in list(conn.subscriptions.items()):
                    if now - last > self.idle_close_s:
                        del conn.subscriptions[key]  # silently: nothing tells the client
                        self.idle_closed.append(key)

    # -- scenarios ---------------------------------------------------------------------------
    def gap_next(self, product: str) -> None:
        """The next ``l2_data`` update of ``product`` is applied to the truth but never delivered."""
        self._gaps.add(product)

    async def disconnect_all(self, code: int = 1001) -> None:
        for conn in list(self._conns):
            await conn.ws.close(code=code, message=b"simulated disconnect")
        self._conns.clear()

    async def step(self, n_changes: int = 3, only: list[str] | None = None) -> None:
        """Advance the markets (``only``: just these products; the others stay quiet) and publish."""
        for product, m in self.markets.items():
            if only is None or product in only:
                await self._publish_step(product, m, m.step(n_changes))

    def _conns_for(self, channel: str, product: str) -> list[_Conn]:
        return [c for c in self._conns if (channel, product) in c.subscriptions]

    async def _publish_step(self, product: str, m: MarketModel, result: StepResult) -> None:
        now = asyncio.get_running_loop().time()
        if result.trades:
            events = [{"type": "update", "trades": [_trade(product, t) for t in reversed(result.trades)]}]
            for conn in self._conns_for("market_trades", product):
                conn.subscriptions[("market_trades", product)] = now
                await self._send(conn, "market_trades", events)
        if result.changes:
            latest: dict[tuple[str, str], str] = {}
            for c in result.changes:  # one entry per level, the last size wins
                latest[(c.side, c.price)] = c.size
            ts = iso(result.ts_ms)
            updates = [{"side": "bid" if side == "bid" else "offer", "event_time": ts, "price_level": price,
                        "new_quantity": size} for (side, price), size in latest.items()]
            deliver = product not in self._gaps
            self._gaps.discard(product)
            for conn in self._conns_for("level2", product):
                conn.subscriptions[("level2", product)] = now
                await self._send(conn, "l2_data", [{"type": "update", "product_id": product, "updates": updates}],
                                 deliver=deliver)
        if result.trades:
            self.last_ticker[product] = ticker = _ticker(product, m)
            for conn in self._conns_for("ticker", product):
                conn.subscriptions[("ticker", product)] = now
                await self._send(conn, "ticker", [{"type": "update", "tickers": [ticker]}])


def _trade(product: str, t: SimTrade) -> dict[str, str]:
    return {"trade_id": str(t.trade_id), "product_id": product, "price": t.price, "size": t.size,
            "side": t.taker_side.upper(), "time": iso(t.ts_ms)}


def _ticker(product: str, m: MarketModel) -> dict[str, str]:
    prices = [Decimal(t.price) for t in m.trades]
    (bid, bid_sz), (ask, ask_sz) = m.sorted_bids(1)[0], m.sorted_asks(1)[0]
    first, last = prices[0], prices[-1]
    change = (last - first) / first * 100
    return {"type": "ticker", "product_id": product, "price": m.trades[-1].price,
            "volume_24_h": m.sz(sum((Decimal(t.size) for t in m.trades), Decimal(0))),
            "low_24_h": m.px(min(prices)), "high_24_h": m.px(max(prices)), "low_52_w": m.px(min(prices)),
            "high_52_w": m.px(max(prices)), "price_percent_chg_24_h": f"{change:.8f}",
            "best_bid": m.px(bid), "best_bid_quantity": m.sz(bid_sz), "best_ask": m.px(ask),
            "best_ask_quantity": m.sz(ask_sz)}

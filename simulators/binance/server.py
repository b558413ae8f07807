"""Binance spot simulator: REST (exchangeInfo, depth snapshot) and WS streams on 127.0.0.1.

Speaks exactly what ccxt.pro's binance client (and a native client) uses:
- ``GET /api/v3/exchangeInfo``, ``GET /api/v3/depth?symbol=&limit=`` (``lastUpdateId``), ``/api/v3/ping``,
  ``/api/v3/time``; ``/fapi/v1/exchangeInfo`` and ``/dapi/v1/exchangeInfo`` answer no symbols; the signed
  ``/sapi/v1/...`` calls ccxt makes with keys answer ``[]``.
- WS on any ``/ws/<anything>`` path (ccxt numbers its sockets ``/ws/0``, ``/ws/1``...), or
  ``/ws/<stream>`` raw-stream style; combined streams (Binance docs, "WebSocket Streams": "Combined streams
  are accessed at /stream?streams=<streamName1>/<streamName2>/<streamName3>"; also ``/stream`` with
  SUBSCRIBE) deliver every event wrapped as ``{"stream":"<streamName>","data":<rawPayload>}``, the payload
  byte for byte what a raw-stream socket gets. ``{"method":"SUBSCRIBE","params":[...],"id":N}`` is acked with
  ``{"result":null,"id":N}``, duplicates included; UNSUBSCRIBE and LIST_SUBSCRIPTIONS too.
- Streams: ``<sym>@depth`` / ``<sym>@depth@100ms`` (diff depth with ``U``/``u``), ``<sym>@trade``,
  ``<sym>@aggTrade``, ``<sym>@miniTicker``, ``<sym>@ticker``, ``<sym>@kline_1m``.
- ``GET /api/v3/aggTrades?symbol=&fromId=&startTime=&endTime=&limit=`` (spot REST docs, "Compressed/Aggregate
  trades list"): ``fromId`` and both times inclusive, ``limit`` default 500, max 1000; none of ``fromId``/
  ``startTime``/``endTime``: the most recent; ``startTime``..``endTime`` at most one hour (-1127). Each
  simulated trade is its own aggregate (one taker order, one price): ``a`` numbers them per symbol, ``f`` =
  ``l`` = the trade id. The aggregate trades are the truth in ``self.agg_trades``.

WebSocket API ``/ws-api/v3``: ``userDataStream.subscribe.signature`` (the HMAC signature is checked against
the configured secret), then ``executionReport`` and ``outboundAccountPosition`` events driven by
``place_order`` / ``fill_order`` / ``cancel_order`` (truth in ``self.account``).

Scenarios (driven by the test or the CLI): normal stepping, ``gap_next()`` (one diff-depth event is not
delivered, so the next ``U`` skips), ``disconnect_all()`` (every socket closed), ``server_shutdown()``
(``serverShutdown`` event then close), ``drop_trades_next(symbol, n)`` (the next ``n`` trades are recorded
and served over REST but never sent on ``@trade``/``@aggTrade``), ``refuse_trade_history`` (``aggTrades``
answers HTTP 429 ``-1003`` with ``Retry-After``, as Binance does past the request-weight limit),
``burst(frames)`` (steps every market and sends depth + trade frames as fast as the sockets take them).
The :class:`MarketModel` keeps the true book, trades and candles.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import orjson
from aiohttp import WSMsgType, web

from simulators.binance.account import SimAccount, SimFill, SimOrder
from simulators.binance.market import MarketModel, SimCandle, SimTrade, StepResult
from simulators.http import json_response, serve_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AggTrade:
    agg_id: int
    trade: SimTrade

    def wire(self) -> dict[str, object]:
        t = self.trade
        return {"a": self.agg_id, "p": t.price, "q": t.size, "f": t.trade_id, "l": t.trade_id, "T": t.ts_ms,
                "m": t.taker_side == "sell", "M": True}


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    streams: set[str] = field(default_factory=set)
    combined: bool = False  # a /stream socket: events wrapped as {"stream": name, "data": payload}

    def frame(self, stream: str, text: str) -> str:
        return f'{{"stream":"{stream}","data":{text}}}' if self.combined else text


class BinanceSimulator:
    def __init__(self, markets: list[MarketModel], *, api_key: str = "sim-key", secret: str = "sim-secret",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.account = SimAccount()
        self.api_key, self.secret = api_key, secret
        self._user_streams: list[web.WebSocketResponse] = []
        self.user_subscribes = 0
        self.failed_signatures = 0
        self.host = host
        self.port = port
        self.update_ids: dict[str, int] = {m.symbol: 1_000_000 for m in markets}
        self._gaps: set[str] = set()
        self._conns: list[_Conn] = []
        self._runner: web.AppRunner | None = None
        self._last_candle: dict[str, tuple[int, int]] = {}  # symbol -> (start, trades) last sent
        self.requests: defaultdict[str, int] = defaultdict(int)  # path -> count (tests assert resyncs)
        self.subscribe_requests = 0
        self.dropped_depth_events = 0
        self.agg_trades: dict[str, list[AggTrade]] = {m.symbol: [] for m in markets}
        self._next_agg_id: dict[str, int] = {m.symbol: 5_000_000 + 100_000 * i for i, m in enumerate(markets)}
        self._drop_trades: dict[str, int] = {}
        self.dropped_trades: list[AggTrade] = []
        self.refuse_trade_history = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/_sim/top", self._sim_top)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/api/v3/aggTrades", self._agg_trades)
        app.router.add_get("/api/v3/ping", self._empty)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/fapi/v1/exchangeInfo", self._no_symbols)
        app.router.add_get("/dapi/v1/exchangeInfo", self._no_symbols)
        app.router.add_get("/sapi/{tail:.*}", self._empty_list)
        app.router.add_get("/ws-api/v3", self._ws_api)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/stream", self._ws)
        app.router.add_get("/ws/{tail:.*}", self._ws)
        self._runner, self.port = await serve_app(app, self.port, self.host)

    async def stop(self) -> None:
        await self.disconnect_all()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    # -- REST --------------------------------------------------------------------------------
    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        symbols = []
        for m in self.markets.values():
            symbols.append({
                "symbol": m.symbol, "status": "TRADING", "baseAsset": m.base, "baseAssetPrecision": m.size_decimals,
                "quoteAsset": m.quote, "quotePrecision": m.price_decimals, "quoteAssetPrecision": m.price_decimals,
                "baseCommissionPrecision": m.size_decimals, "quoteCommissionPrecision": m.price_decimals,
                "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True, "ocoAllowed": True,
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": m.px(m.tick), "maxPrice": "1000000.00",
                     "tickSize": m.px(m.tick)},
                    {"filterType": "LOT_SIZE", "minQty": m.sz(m.lot), "maxQty": "9000.00000000",
                     "stepSize": m.sz(m.lot)},
                ],
                "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "NONE",
                "allowedSelfTradePreventionModes": ["NONE"],
            })
        return json_response({"timezone": "UTC", "serverTime": self._now_ms(), "rateLimits": [], "exchangeFilters": [],
                      "symbols": symbols})

    async def _depth(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        symbol = request.query.get("symbol", "")
        m = self.markets.get(symbol)
        if m is None:
            return json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = int(request.query.get("limit", "100"))
        bids, asks = m.book_text(limit)
        return json_response({"lastUpdateId": self.update_ids[symbol], "bids": bids, "asks": asks})

    async def _agg_trades(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        if self.refuse_trade_history:
            body = {"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per 1 "
                    "MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."}
            return web.Response(body=orjson.dumps(body), status=429, content_type="application/json",
                                headers={"Retry-After": "1"})
        q = request.query
        symbol = q.get("symbol")
        if not symbol:
            return json_response({"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                  "or malformed."}, status=400)
        trades = self.agg_trades.get(symbol)
        if trades is None:
            return json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        try:
            limit = int(q.get("limit", "500"))
            from_id = int(q["fromId"]) if "fromId" in q else None
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return json_response({"code": -1100, "msg": "Illegal characters found in a parameter."}, status=400)
        if not 1 <= limit <= 1000:
            return json_response({"code": -1100, "msg": "Illegal characters found in parameter 'limit'; legal range "
                                  "is '1..1000'."}, status=400)
        if start is not None and end is not None and end - start > 3_600_000:
            return json_response({"code": -1127, "msg": "More than 1 hours between startTime and endTime."},
                                 status=400)
        if from_id is not None:
            i = bisect_left(trades, from_id, key=lambda a: a.agg_id)
            chosen = [a for a in trades[i:i + limit] if end is None or a.trade.ts_ms <= end]
        elif start is not None or end is not None:
            chosen = [a for a in trades if (start is None or a.trade.ts_ms >= start)
                      and (end is None or a.trade.ts_ms <= end)][:limit]
        else:
            chosen = trades[-limit:]
        return web.Response(body=orjson.dumps([a.wire() for a in chosen]), content_type="application/json")

    async def _sim_top(self, request: web.Request) -> web.Response:
        """Debug: the true top of book of ``market`` (a symbol like BTCUSDT), exact decimal text."""
        symbol = request.query.get("market", "")
        m = self.markets.get(symbol)
        if m is None:
            return json_response({"error": f"unknown market {symbol!r}"}, status=404)
        bid = m.sorted_bids(1)[0] if m.bids else None
        ask = m.sorted_asks(1)[0] if m.asks else None
        return json_response({"market": symbol, "best_bid": m.px(bid[0]) if bid else None,
                      "best_ask": m.px(ask[0]) if ask else None, "bid_size": m.sz(bid[1]) if bid else None,
                      "ask_size": m.sz(ask[1]) if ask else None})

    async def _empty(self, request: web.Request) -> web.Response:
        return json_response({})

    async def _empty_list(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        return json_response([])

    async def _no_symbols(self, request: web.Request) -> web.Response:
        return json_response({"timezone": "UTC", "serverTime": self._now_ms(), "rateLimits": [], "symbols": []})

    async def _time(self, request: web.Request) -> web.Response:
        return json_response({"serverTime": self._now_ms()})

    def _now_ms(self) -> int:
        return max((m.now_ms for m in self.markets.values()), default=0)

    # -- WebSocket ---------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, combined=request.path == "/stream")
        tail = request.match_info.get("tail", "")
        if "@" in tail:  # raw stream style: /ws/btcusdt@depth
            conn.streams.update(tail.split("/"))
        if conn.combined and request.query.get("streams"):  # combined: /stream?streams=a/b/c
            conn.streams.update(request.query["streams"].split("/"))
        self._conns.append(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._command(conn, msg.data)
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
        return ws

    async def _command(self, conn: _Conn, text: str) -> None:
        try:
            cmd = orjson.loads(text)
            method, params, req_id = cmd["method"], cmd.get("params", []), cmd.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await conn.ws.send_str('{"code":3,"msg":"Invalid JSON"}')
            return
        if method == "SUBSCRIBE":
            self.subscribe_requests += 1
            conn.streams.update(params)
            await conn.ws.send_str(orjson.dumps({"result": None, "id": req_id}).decode())
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
            await conn.ws.send_str(orjson.dumps({"result": None, "id": req_id}).decode())
        elif method == "LIST_SUBSCRIPTIONS":
            await conn.ws.send_str(orjson.dumps({"result": sorted(conn.streams), "id": req_id}).decode())
        else:
            await conn.ws.send_str(orjson.dumps({"code": 2, "msg": f"Invalid request: unknown variant {method}",
                                                 "id": req_id}).decode())

    # -- WebSocket API: user data stream ------------------------------------------------------
    async def _ws_api(self, request: web.Request) -> web.WebSocketResponse:
        """``userDataStream.subscribe.signature`` (HMAC-SHA256 over the sorted params), then account events
        wrapped as ``{"subscriptionId": 0, "event": {...}}``."""
        ws = web.WebSocketResponse(heartbeat=20.0, autoping=True)
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = orjson.loads(msg.data)
                    method, params, req_id = req["method"], req.get("params", {}), req.get("id")
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    await ws.send_str('{"status":400,"error":{"code":-1102,"msg":"Malformed request."}}')
                    continue
                if method == "userDataStream.subscribe.signature":
                    await self._user_subscribe(ws, params, req_id)
                elif method == "userDataStream.unsubscribe":
                    if ws in self._user_streams:
                        self._user_streams.remove(ws)
                    await ws.send_str(orjson.dumps({"id": req_id, "status": 200, "result": {}}).decode())
                else:
                    await ws.send_str(orjson.dumps({"id": req_id, "status": 400, "error": {
                        "code": -1100, "msg": f"Unknown method {method}"}}).decode())
        finally:
            if ws in self._user_streams:
                self._user_streams.remove(ws)
        return ws

    async def _user_subscribe(self, ws: web.WebSocketResponse, params: dict, req_id: object) -> None:
        query = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
        expected = hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        if params.get("apiKey") != self.api_key or not hmac.compare_digest(expected, str(params.get("signature"))):
            self.failed_signatures += 1
            await ws.send_str(orjson.dumps({"id": req_id, "status": 401, "error": {
                "code": -1022, "msg": "Signature for this request is not valid."}}).decode())
            return
        self.user_subscribes += 1
        self._user_streams.append(ws)
        await ws.send_str(orjson.dumps({"id": req_id, "status": 200, "result": {"subscriptionId": 0}}).decode())

    async def _user_event(self, event: dict) -> None:
        text = orjson.dumps({"subscriptionId": 0, "event": event}).decode()
        for ws in list(self._user_streams):
            if not ws.closed:
                await ws.send_str(text)

    def user_streams(self) -> int:
        return len(self._user_streams)

    async def place_order(self, symbol: str, side: str, px: str, sz: str) -> SimOrder:
        m = self.markets[symbol]
        order = self.account.place(symbol, side, Decimal(px), Decimal(sz), m.now_ms, base=m.base, quote=m.quote)
        await self._execution_report(order, "NEW", None)
        await self._account_position(order)
        return order

    async def fill_order(self, order_id: str, sz: str) -> SimFill:
        fill = self.account.fill(order_id, Decimal(sz), self.markets[self.account.orders[order_id].inst_id].now_ms)
        order = self.account.orders[order_id]
        await self._execution_report(order, "TRADE", fill)
        await self._account_position(order)
        return fill

    async def cancel_order(self, order_id: str) -> SimOrder:
        order = self.account.cancel(order_id, self.markets[self.account.orders[order_id].inst_id].now_ms)
        await self._execution_report(order, "CANCELED", None)
        await self._account_position(order)
        return order

    async def _execution_report(self, o: SimOrder, execution: str, fill: SimFill | None) -> None:
        m = self.markets[o.inst_id]
        status = {"live": "NEW", "partially_filled": "PARTIALLY_FILLED", "filled": "FILLED",
                  "canceled": "CANCELED"}[o.state]
        await self._user_event({
            "e": "executionReport", "E": o.u_time, "s": o.inst_id, "c": o.cl_ord_id, "S": o.side.upper(),
            "o": "LIMIT", "f": "GTC", "q": m.sz(o.sz), "p": m.px(o.px), "P": "0.00", "F": "0.00000000", "g": -1,
            "C": "", "x": execution, "X": status, "r": "NONE", "i": int(o.ord_id),
            "l": m.sz(fill.sz) if fill else m.sz(Decimal(0)), "z": m.sz(o.acc_fill_sz),
            "L": m.px(fill.px) if fill else m.px(Decimal(0)),
            "n": format(-fill.fee, "f") if fill else "0", "N": fill.fee_ccy if fill else None,
            "T": o.u_time, "t": int(fill.trade_id) if fill else -1, "I": int(o.ord_id) * 10, "w": o.state == "live",
            "m": True if fill else False, "M": False, "O": o.c_time,
            "Z": format(o.notional_filled, "f"), "Y": format(fill.sz * fill.px, "f") if fill else "0", "Q": "0"})

    async def _account_position(self, o: SimOrder) -> None:
        balances = [self.account.balances[c] for c in (o.base, o.quote) if c in self.account.balances]
        await self._user_event({"e": "outboundAccountPosition", "E": o.u_time, "u": o.u_time, "B": [
            {"a": b.ccy, "f": format(b.available, "f"), "l": format(b.frozen, "f")} for b in balances]})

    def subscribers(self, stream: str) -> int:
        return sum(1 for c in self._conns if stream in c.streams)

    async def _broadcast(self, stream: str, payload: bytes) -> None:
        text = payload.decode()
        for conn in list(self._conns):
            if stream in conn.streams and not conn.ws.closed:
                try:
                    await conn.ws.send_str(conn.frame(stream, text))
                except (ConnectionError, RuntimeError):
                    pass

    # -- scenarios ---------------------------------------------------------------------------
    def gap_next(self, symbol: str) -> None:
        """The next diff-depth event of ``symbol`` is applied to the truth but not delivered."""
        self._gaps.add(symbol)

    async def disconnect_all(self, code: int = 1001) -> None:
        for conn in list(self._conns):
            await conn.ws.close(code=code, message=b"simulated disconnect")
        self._conns.clear()

    async def inject_raw(self, stream: str, text: str) -> None:
        """Send ``text`` verbatim to the subscribers of ``stream`` (malformed-input scenarios)."""
        await self._broadcast(stream, text.encode())

    async def server_shutdown(self) -> None:
        event = orjson.dumps({"e": "serverShutdown", "E": self._now_ms()}).decode()
        for conn in list(self._conns):
            await conn.ws.send_str(event)
        await self.disconnect_all()

    async def step(self, n_changes: int = 3) -> None:
        """Advance every market one step and publish what happened on every stream."""
        for symbol, m in self.markets.items():
            result = m.step(n_changes)
            await self._publish_step(symbol, m, result)

    async def publish_changes(self, symbol: str, result: StepResult) -> None:
        await self._publish_step(symbol, self.markets[symbol], result)

    def drop_trades_next(self, symbol: str, n: int) -> None:
        """The next ``n`` trades of ``symbol`` happen (truth, REST) but are never sent on the trade streams."""
        self._drop_trades[symbol] = self._drop_trades.get(symbol, 0) + n

    async def burst(self, frames: int, n_changes: int = 3, trade_probability: float = 0.6) -> int:
        """Step the markets round robin and send only depth and trade frames, as fast as the sockets take
        them, until at least ``frames`` frames went out per subscriber; returns the frames sent."""
        sent = 0
        symbols = list(self.markets)
        while sent < frames:
            for symbol in symbols:
                m = self.markets[symbol]
                result = m.step(n_changes, trade_probability)
                sent += await self._publish_trades(symbol, result) + await self._publish_depth(symbol, result)
        return sent

    async def _publish_trades(self, symbol: str, result: StepResult) -> int:
        low = symbol.lower()
        sent = 0
        for t in result.trades:
            agg = AggTrade(self._next_agg_id[symbol], t)
            self._next_agg_id[symbol] += 1
            self.agg_trades[symbol].append(agg)
            if self._drop_trades.get(symbol):
                self._drop_trades[symbol] -= 1
                self.dropped_trades.append(agg)
                continue
            await self._broadcast(f"{low}@trade", orjson.dumps({
                "e": "trade", "E": t.ts_ms, "s": symbol, "t": t.trade_id, "p": t.price, "q": t.size,
                "T": t.ts_ms, "m": t.taker_side == "sell", "M": True}))
            await self._broadcast(f"{low}@aggTrade", orjson.dumps({"e": "aggTrade", "E": t.ts_ms, "s": symbol,
                                                                   **agg.wire()}))
            sent += 1
        return sent

    async def _publish_step(self, symbol: str, m: MarketModel, result: StepResult) -> None:
        await self._publish_trades(symbol, result)
        await self._publish_depth(symbol, result)
        await self._publish_klines(symbol, m, result.ts_ms)
        await self._publish_tickers(symbol, m, result.ts_ms)

    async def _publish_depth(self, symbol: str, result: StepResult) -> int:
        low = symbol.lower()
        if result.changes:
            first = self.update_ids[symbol] + 1
            self.update_ids[symbol] += len(result.changes)
            if symbol in self._gaps:
                self._gaps.discard(symbol)
                self.dropped_depth_events += 1
            else:
                bids = [[c.price, c.size] for c in result.changes if c.side == "bid"]
                asks = [[c.price, c.size] for c in result.changes if c.side == "ask"]
                frame = orjson.dumps({"e": "depthUpdate", "E": result.ts_ms, "s": symbol, "U": first,
                                      "u": self.update_ids[symbol], "b": bids, "a": asks})
                await self._broadcast(f"{low}@depth@100ms", frame)
                await self._broadcast(f"{low}@depth", frame)
                return 1
        return 0

    async def _publish_klines(self, symbol: str, m: MarketModel, ts_ms: int) -> None:
        stream = f"{symbol.lower()}@kline_1m"
        if not m.candles:
            return
        current = m.candles[-1]
        sent = self._last_candle.get(symbol)
        if sent is not None and sent[0] != current.start_ms:  # the previous candle is final now
            previous = m.candle_for(sent[0])
            if previous is not None:
                await self._broadcast(stream, self._kline(symbol, m, previous, ts_ms, closed=True))
        closed = current.start_ms + m.candle_ms <= ts_ms
        await self._broadcast(stream, self._kline(symbol, m, current, ts_ms, closed=closed))
        self._last_candle[symbol] = (current.start_ms, current.trades)

    def _kline(self, symbol: str, m: MarketModel, c: SimCandle, ts_ms: int, *, closed: bool) -> bytes:
        return orjson.dumps({"e": "kline", "E": ts_ms, "s": symbol, "k": {
            "t": c.start_ms, "T": c.start_ms + m.candle_ms - 1, "s": symbol, "i": "1m",
            "f": c.first_trade_id, "L": c.last_trade_id, "o": m.px(c.open), "c": m.px(c.close),
            "h": m.px(c.high), "l": m.px(c.low), "v": m.sz(c.volume), "n": c.trades, "x": closed,
            "q": f"{c.quote_volume:.{m.price_decimals + m.size_decimals}f}", "V": "0", "Q": "0", "B": "0"}})

    async def _publish_tickers(self, symbol: str, m: MarketModel, ts_ms: int) -> None:
        low = symbol.lower()
        if not m.trades:
            return
        last, first = m.trades[-1], m.trades[0]
        prices = [t.price for t in m.trades[-500:]]
        high = max(prices, key=Decimal)
        lowp = min(prices, key=Decimal)
        volume = m.sz(sum((Decimal(t.size) for t in m.trades), Decimal(0)))
        if self.subscribers(f"{low}@miniTicker"):
            await self._broadcast(f"{low}@miniTicker", orjson.dumps({
                "e": "24hrMiniTicker", "E": ts_ms, "s": symbol, "c": last.price, "o": first.price, "h": high,
                "l": lowp, "v": volume, "q": "0"}))
        if self.subscribers(f"{low}@ticker"):
            bid, ask = m.sorted_bids(1)[0], m.sorted_asks(1)[0]
            await self._broadcast(f"{low}@ticker", orjson.dumps({
                "e": "24hrTicker", "E": ts_ms, "s": symbol, "p": "0", "P": "0", "w": last.price, "x": first.price,
                "c": last.price, "Q": last.size, "b": m.px(bid[0]), "B": m.sz(bid[1]), "a": m.px(ask[0]),
                "A": m.sz(ask[1]), "o": first.price, "h": high, "l": lowp, "v": volume, "q": "0",
                "O": m.start_ms, "C": ts_ms, "F": first.trade_id, "L": last.trade_id, "n": len(m.trades)}))

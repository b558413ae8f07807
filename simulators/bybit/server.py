"""Bybit v5 simulator: REST instruments and the public linear WebSocket, what ccxt.pro 4.5.90 speaks.

ccxt's bybit client loads linear perpetuals over REST (``GET /v5/market/instruments-info?category=linear``,
once plainly and once with ``status=PreLaunch``; cursor pagination) and subscribes on
``/v5/public/linear`` with ``{"op":"subscribe","req_id":"N","args":["<topic>",...]}``. Per the Bybit v5
public WebSocket docs:

- acks ``{"success":true,"ret_msg":"","conn_id":..,"req_id":"N","op":"subscribe"}``; a topic already
  subscribed on the connection is refused (``"success":false,"ret_msg":"error:already subscribed,topic:.."``,
  nothing else is sent); ``unsubscribe`` is acknowledged the same way; ``{"op":"ping"}`` answered with
  ``"ret_msg":"pong"``.
- ``orderbook.<depth>.<symbol>`` (depth 1, 50, 200, 500): a ``snapshot`` on subscribe, then ``delta``
  messages (size ``"0"`` deletes; a level leaving the ``depth`` window is deleted the same way, so a client
  never truncates). ``data.u`` is the update id, consecutive per topic; ``u`` = 1 on a snapshot means the
  service restarted and the book must be overwritten. ``data.seq`` is the cross sequence (grows with every
  change of the book, comparable across depths).
- ``publicTrade.<symbol>``: arrays of ``{"T","s","S","v","p","L","i","BT","seq"}``; ``i`` is a UUID, not
  consecutive.
- ``tickers.<symbol>`` (linear): a full ``snapshot`` on subscribe, then ``delta`` messages carrying only the
  fields that changed (the client merges them).

Scenarios: ``skip_delta_next(symbol)`` (one delta is never delivered: the next ``u`` jumps),
``restart_service_next(symbol)`` (the next book message is a snapshot with ``u`` = 1, as after a Bybit
service restart), ``disconnect_all()``, ``accepting = False`` (an outage: sockets cannot be opened while the
market keeps trading; ``publicTrade`` has no replay and its ids say nothing about holes).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from simulators.binance.market import MarketModel, SimTrade
from simulators.http import json_response, serve_app

log = logging.getLogger(__name__)

BOOK_DEPTHS = (1, 50, 200, 500)
CONN_ID = "sim-bybit-0001"
FIRST_UPDATE_ID = 2_000_000  # a book's u before any restart (1 is what a restarted service starts from)


def trade_uuid(trade_id: int) -> str:
    """Bybit trade ids are UUIDs; the simulator derives one per trade number (deterministic, unique)."""
    return str(uuid.UUID(int=0x5B1B_0000_0000_4000_8000_0000_0000_0000 + trade_id))


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    topics: set[str] = field(default_factory=set)
    books: dict[str, tuple[dict[str, str], dict[str, str]]] = field(default_factory=dict)  # topic -> view


class BybitSimulator:
    """Markets are :class:`MarketModel` whose ``symbol`` is the Bybit id (``BTCUSDT``), linear perpetuals."""

    def __init__(self, markets: list[MarketModel], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.host, self.port = host, port
        self._conns: list[_Conn] = []
        self._runner: web.AppRunner | None = None
        self.update_ids: dict[str, int] = {}  # book topic -> last u sent
        self.cross_seq: dict[str, int] = {m.symbol: 10_000_000 for m in markets}
        self._skip: set[str] = set()
        self._restart: set[str] = set()
        self.requests: defaultdict[str, int] = defaultdict(int)
        self.book_snapshots: defaultdict[str, int] = defaultdict(int)  # symbol -> snapshots sent on subscribe
        self.refused: list[str] = []
        self.last_ticker: dict[str, dict[str, str]] = {}  # symbol -> the full ticker state last sent
        self.accepting = True  # False: WebSocket upgrades are refused (an outage; REST still answers)
        self.trades_sent: defaultdict[str, list[int]] = defaultdict(list)  # symbol -> trade numbers sent, in order

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/_sim/top", self._sim_top)
        app.router.add_get("/v5/market/instruments-info", self._instruments)
        app.router.add_get("/v5/market/time", self._time)
        app.router.add_get("/v5/public/linear", self._ws)
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
        return f"ws://{self.host}:{self.port}/v5/public/linear"

    def _now_ms(self) -> int:
        return max((m.now_ms for m in self.markets.values()), default=0)

    # -- REST --------------------------------------------------------------------------------
    async def _sim_top(self, request: web.Request) -> web.Response:
        """Debug: the true top of book of ``market`` (a Bybit id like BTCUSDT), exact decimal text."""
        m = self.markets.get(request.query.get("market", ""))
        if m is None:
            return json_response({"error": f"unknown market {request.query.get('market')!r}"}, status=404)
        (bid, bid_size), (ask, ask_size) = m.sorted_bids(1)[0], m.sorted_asks(1)[0]
        return json_response({"market": m.symbol, "best_bid": m.px(bid), "best_ask": m.px(ask),
                              "bid_size": m.sz(bid_size), "ask_size": m.sz(ask_size)})

    def _envelope(self, result: dict[str, Any]) -> web.Response:
        return json_response({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {},
                              "time": self._now_ms()})

    async def _instruments(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        q = request.query
        category = q.get("category", "")
        if category != "linear":
            return json_response({"retCode": 10001, "retMsg": "params error: category", "result": {},
                                  "retExtInfo": {}, "time": self._now_ms()})
        rows: list[dict[str, Any]] = []
        if q.get("status") != "PreLaunch" and "cursor" not in q:  # one page; a cursor asks for the next: none
            for m in self.markets.values():
                rows.append({
                    "symbol": m.symbol, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": m.base,
                    "quoteCoin": m.quote, "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "",
                    "priceScale": str(m.price_decimals),
                    "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                    "priceFilter": {"minPrice": m.px(m.tick), "maxPrice": "1999999.0", "tickSize": m.px(m.tick)},
                    "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": m.sz(m.lot), "qtyStep": m.sz(m.lot),
                                      "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000",
                                      "minNotionalValue": "5"},
                    "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": m.quote, "copyTrading": "both",
                    "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375", "isPreListing": False,
                    "preListingInfo": None})
        return self._envelope({"category": "linear", "list": rows, "nextPageCursor": ""})

    async def _time(self, request: web.Request) -> web.Response:
        now = self._now_ms()
        return self._envelope({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})

    # -- WebSocket ---------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        if not self.accepting:  # an outage: the socket cannot be opened (HTTP 503), the market moves on
            raise web.HTTPServiceUnavailable(text="simulated outage")
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

    async def _send(self, conn: _Conn, payload: Any) -> None:
        if not conn.ws.closed:
            try:
                await conn.ws.send_str(orjson.dumps(payload).decode())
            except (ConnectionError, RuntimeError):
                pass

    async def _ack(self, conn: _Conn, op: str, req_id: Any, error: str | None = None) -> None:
        body: dict[str, Any] = {"success": error is None, "ret_msg": error or ("pong" if op == "ping" else ""),
                                "conn_id": CONN_ID, "op": op}
        if req_id is not None:
            body["req_id"] = req_id
        if error is not None:
            self.refused.append(error)
        await self._send(conn, body)

    async def _command(self, conn: _Conn, text: str) -> None:
        try:
            cmd = json.loads(text)
            op = cmd["op"]
            args = cmd.get("args") or []
        except (json.JSONDecodeError, KeyError, TypeError):
            await self._send(conn, {"success": False, "ret_msg": f"error:request not json: {text[:100]}",
                                    "conn_id": CONN_ID, "op": ""})
            return
        req_id = cmd.get("req_id")
        if op == "ping":
            await self._ack(conn, "ping", req_id)
            return
        if op == "unsubscribe":
            missing = [t for t in args if t not in conn.topics]
            for topic in args:
                conn.topics.discard(topic)
                conn.books.pop(topic, None)
            await self._ack(conn, op, req_id, f"error:not subscribed,topic:{missing[0]}" if missing else None)
            return
        if op != "subscribe":
            await self._ack(conn, op, req_id, f"error:handler not found,op:{op}")
            return
        for topic in args:
            error = self._topic_error(topic)
            if error is None and topic in conn.topics:
                error = f"error:already subscribed,topic:{topic}"
            if error is not None:
                await self._ack(conn, op, req_id, error)
                return
        conn.topics.update(args)
        await self._ack(conn, op, req_id)
        for topic in args:
            kind, _, symbol = topic.rpartition(".")
            if kind.startswith("orderbook."):
                self.book_snapshots[symbol] += 1
                await self._send_book_snapshot(conn, topic, self.update_ids.setdefault(topic, FIRST_UPDATE_ID))
            elif kind == "tickers":
                await self._send_ticker_snapshot(conn, symbol)

    def _topic_error(self, topic: str) -> str | None:
        parts = topic.split(".")
        if parts[-1] not in self.markets:
            return f"error:topic:{topic} not found"
        if parts[0] == "orderbook" and (len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) not in BOOK_DEPTHS):
            return f"error:topic:{topic} not found"
        if parts[0] not in ("orderbook", "publicTrade", "tickers") or (parts[0] != "orderbook" and len(parts) != 2):
            return f"error:topic:{topic} not found"
        return None

    def subscribers(self, topic: str) -> int:
        return sum(1 for c in self._conns if topic in c.topics)

    def _subscribed(self, topic: str) -> list[_Conn]:
        return [c for c in self._conns if topic in c.topics]

    # -- book --------------------------------------------------------------------------------
    def true_book(self, symbol: str, depth: int) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        m = self.markets[symbol]
        return dict(m.sorted_bids(depth)), dict(m.sorted_asks(depth))

    def _window(self, m: MarketModel, depth: int) -> tuple[dict[str, str], dict[str, str]]:
        return ({m.px(p): m.sz(q) for p, q in m.sorted_bids(depth)},
                {m.px(p): m.sz(q) for p, q in m.sorted_asks(depth)})

    async def _send_book_snapshot(self, conn: _Conn, topic: str, u: int) -> None:
        symbol = topic.rsplit(".", 1)[1]
        m = self.markets[symbol]
        bids, asks = self._window(m, int(topic.split(".")[1]))
        conn.books[topic] = (dict(bids), dict(asks))
        self.update_ids[topic] = u
        await self._send(conn, {"topic": topic, "type": "snapshot", "ts": m.now_ms, "data": {
            "s": symbol, "b": [[p, q] for p, q in bids.items()], "a": [[p, q] for p, q in asks.items()],
            "u": u, "seq": self.cross_seq[symbol]}, "cts": m.now_ms})

    @staticmethod
    def _diff(old: dict[str, str], new: dict[str, str], zero: str) -> list[list[str]]:
        out = [[p, zero] for p in old if p not in new]
        out += [[p, q] for p, q in new.items() if old.get(p) != q]
        return out

    # -- scenarios ---------------------------------------------------------------------------
    def skip_delta_next(self, symbol: str) -> None:
        """The next book delta of ``symbol`` is never delivered (its ``u`` is used up: the next one jumps)."""
        self._skip.add(symbol)

    def restart_service_next(self, symbol: str) -> None:
        """The next book message of ``symbol`` is a snapshot with ``u`` = 1 (a Bybit service restart)."""
        self._restart.add(symbol)

    async def disconnect_all(self, code: int = 1001) -> None:
        for conn in list(self._conns):
            await conn.ws.close(code=code, message=b"simulated disconnect")
        self._conns.clear()

    async def step(self, n_changes: int = 3) -> None:
        for symbol, m in self.markets.items():
            result = m.step(n_changes)
            if result.changes:
                self.cross_seq[symbol] += len(result.changes)
            await self._publish_trades(symbol, m, result.trades)
            await self._publish_book(symbol, m)
            await self._publish_ticker(symbol, m)

    async def _publish_trades(self, symbol: str, m: MarketModel, trades: list[SimTrade]) -> None:
        if not trades:
            return
        topic = f"publicTrade.{symbol}"
        payload = {"topic": topic, "type": "snapshot", "ts": m.now_ms, "data": [{
            "T": t.ts_ms, "s": symbol, "S": "Buy" if t.taker_side == "buy" else "Sell", "v": t.size, "p": t.price,
            "L": "ZeroPlusTick", "i": trade_uuid(t.trade_id), "BT": False, "RPI": False,
            "seq": self.cross_seq[symbol]} for t in trades]}
        conns = self._subscribed(topic)
        for conn in conns:
            await self._send(conn, payload)
        if conns:
            self.trades_sent[symbol].extend(t.trade_id for t in trades)

    async def _publish_book(self, symbol: str, m: MarketModel) -> None:
        restart = symbol in self._restart
        skip = symbol in self._skip and not restart
        for topic in {t for c in self._conns for t in c.topics if t.startswith("orderbook.") and t.endswith(symbol)}:
            conns = self._subscribed(topic)
            if restart:
                for conn in conns:
                    await self._send_book_snapshot(conn, topic, 1)
                continue
            depth = int(topic.split(".")[1])
            bids, asks = self._window(m, depth)
            sent = False
            for conn in conns:
                old_bids, old_asks = conn.books[topic]
                b, a = self._diff(old_bids, bids, m.sz(Decimal(0))), self._diff(old_asks, asks, m.sz(Decimal(0)))
                conn.books[topic] = (dict(bids), dict(asks))
                if not (b or a):
                    continue
                if not sent:
                    self.update_ids[topic] += 1
                    sent = True
                if skip:
                    continue
                await self._send(conn, {"topic": topic, "type": "delta", "ts": m.now_ms, "data": {
                    "s": symbol, "b": b, "a": a, "u": self.update_ids[topic], "seq": self.cross_seq[symbol]},
                    "cts": m.now_ms})
            if sent and skip:
                self._skip.discard(symbol)
        if restart:
            self._restart.discard(symbol)

    # -- ticker ------------------------------------------------------------------------------
    def _ticker(self, m: MarketModel) -> dict[str, str]:
        (bid, bid_size), (ask, ask_size) = m.sorted_bids(1)[0], m.sorted_asks(1)[0]
        trades = m.trades
        last = Decimal(trades[-1].price) if trades else (bid + ask) / 2
        first = Decimal(trades[0].price) if trades else last
        prices = [Decimal(t.price) for t in trades] or [last]
        volume = sum((Decimal(t.size) for t in trades), Decimal(0))
        turnover = sum((Decimal(t.price) * Decimal(t.size) for t in trades), Decimal(0))
        mid = (bid + ask) / 2
        mark = mid.quantize(m.tick)
        index = (mid - m.tick * 3).quantize(m.tick)  # the index trails the book a little
        pct = ((last - first) / first).quantize(Decimal("0.000001")) if first else Decimal(0)
        return {"symbol": m.symbol, "tickDirection": "ZeroPlusTick", "price24hPcnt": f"{pct:f}",
                "lastPrice": m.px(last), "prevPrice24h": m.px(first), "highPrice24h": m.px(max(prices)),
                "lowPrice24h": m.px(min(prices)), "prevPrice1h": m.px(first), "markPrice": m.px(mark),
                "indexPrice": m.px(index), "openInterest": "1000.000", "openInterestValue": "30000000.00",
                "turnover24h": f"{turnover:f}", "volume24h": m.sz(volume), "nextFundingTime": "1767254400000",
                "fundingRate": "0.0001", "bid1Price": m.px(bid), "bid1Size": m.sz(bid_size), "ask1Price": m.px(ask),
                "ask1Size": m.sz(ask_size)}

    async def _send_ticker_snapshot(self, conn: _Conn, symbol: str) -> None:
        m = self.markets[symbol]
        ticker = self._ticker(m)
        self.last_ticker[symbol] = ticker
        await self._send(conn, {"topic": f"tickers.{symbol}", "type": "snapshot", "data": ticker,
                                "cs": self.cross_seq[symbol], "ts": m.now_ms})

    async def _publish_ticker(self, symbol: str, m: MarketModel) -> None:
        topic = f"tickers.{symbol}"
        conns = self._subscribed(topic)
        if not conns:
            return
        ticker = self._ticker(m)
        before = self.last_ticker.get(symbol, {})
        changed = {k: v for k, v in ticker.items() if before.get(k) != v}
        self.last_ticker[symbol] = ticker
        if set(changed) <= {"symbol"}:
            return
        delta = {"symbol": symbol, **changed}
        for conn in conns:
            await self._send(conn, {"topic": topic, "type": "delta", "data": delta, "cs": self.cross_seq[symbol],
                                    "ts": m.now_ms})

"""Kraken spot simulator: REST asset pairs and the public WebSocket v2, what ccxt.pro 4.5.90 speaks.

ccxt's kraken client loads markets over REST (``GET /0/public/Assets``, ``GET /0/public/AssetPairs``) and
subscribes on the **v2** public socket (``urls.api.ws.publicV2``, ``wss://ws.kraken.com/v2``) with
``{"method":"subscribe","params":{"channel":..,"symbol":["BTC/USD"],..},"req_id":N}``. Per the Kraken v2
docs (venues.md section 5.3):

- a ``status`` frame when the socket opens; an ack per symbol ``{"method":"subscribe","result":{..},
  "success":true,"req_id":N}``; ``{"method":"ping"}`` answered by ``{"method":"pong"}``; a second
  subscribe to the same channel/symbol is refused with ``"error":"Already subscribed"`` (no data), an
  unsupported ``depth`` with ``"Subscription depth not supported"``; ``unsubscribe`` is acknowledged.
- ``book`` (depth 10, 25, 100, 500 or 1000): a ``snapshot`` of the top ``depth`` levels, then ``update``
  messages carrying what changed *within the subscribed depth*: levels that enter the scope, changed sizes,
  ``qty 0`` for deleted levels; a level pushed out of scope by an insert is **not** sent (the client
  truncates). Every message carries ``checksum``: unsigned CRC32 over the top 10 asks (low to high) then the
  top 10 bids (high to low), each ``price`` then ``qty`` with the ``.`` removed and leading zeros stripped,
  from the wire text.
- ``trade`` (``trade_id`` consecutive per pair, no snapshot unless asked) and ``ticker`` (a snapshot on
  subscribe, then an update on every trade); REST ``GET /0/public/Trades?pair=&since=`` replays trades by
  time (``since`` a nanosecond cursor, ``last`` the next one).
- Prices and quantities are JSON **numbers** written with the pair's fixed decimals (``30000.0``,
  ``0.50000000``): the trailing zeros are part of the wire text the checksum is computed from.

Scenarios: ``wrong_checksum_next(symbol)`` (one update's checksum is off by one, its content right),
``lose_update_next(symbol)`` (one step also changes the 5th best bid, and its update is never sent:
only the next update's checksum shows it; trades hit the best level, so they do not heal it), ``disconnect_all()``,
``accepting = False`` (an outage: sockets cannot be opened while the market keeps trading).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from simulators.binance.market import MarketModel, StepResult
from simulators.http import json_response, serve_app

log = logging.getLogger(__name__)

BOOK_DEPTHS = (10, 25, 100, 500, 1000)
CONNECTION_ID = 15113583034416118705  # larger than 2**53, like Kraken's
LOST_LEVEL_RANK = 4  # the lost update changes the 5th best bid: inside the checksum's top 10, away from trades


class Num(str):
    """A JSON number written exactly as this text (fixed decimals, trailing zeros kept)."""


def encode(value: Any) -> str:
    """JSON text where :class:`Num` values are bare number tokens (what Kraken sends)."""
    if isinstance(value, Num):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)


def checksum_token(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def kraken_checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """Unsigned CRC32 of the top 10 asks (low to high) then top 10 bids (high to low), wire text."""
    parts = [checksum_token(p) + checksum_token(q) for p, q in asks[:10]]
    parts += [checksum_token(p) + checksum_token(q) for p, q in bids[:10]]
    return zlib.crc32("".join(parts).encode())


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


@dataclass
class _BookView:
    """What one subscription has been told about one book: the top ``depth`` levels (wire text)."""

    depth: int
    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    channels: set[tuple[str, str]] = field(default_factory=set)  # (channel, symbol)
    books: dict[str, _BookView] = field(default_factory=dict)


@dataclass(frozen=True)
class KrakenPair:
    """REST identity of a market: ``BTC/USD`` is ``XXBTZUSD`` (altname ``XBTUSD``, v1 wsname ``XBT/USD``)."""

    pair_id: str
    altname: str
    wsname: str
    base_id: str
    quote_id: str


def default_pair(model: MarketModel) -> KrakenPair:
    aliases = {"BTC": "XBT"}
    base = aliases.get(model.base, model.base)
    base_id = f"X{base}" if len(base) == 3 else base
    quote_id = f"Z{model.quote}" if model.quote in ("USD", "EUR", "GBP", "JPY", "CAD") else model.quote
    return KrakenPair(f"{base_id}{quote_id}", f"{base}{model.quote}", f"{base}/{model.quote}", base_id, quote_id)


class KrakenSimulator:
    """Markets are :class:`MarketModel` whose ``symbol`` is the v2 symbol (``BTC/USD``)."""

    def __init__(self, markets: list[MarketModel], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.pairs = {m.symbol: default_pair(m) for m in markets}
        self.host, self.port = host, port
        self._conns: list[_Conn] = []
        self._runner: web.AppRunner | None = None
        self._wrong_checksum: set[str] = set()
        self._lose_update: set[str] = set()
        self.requests: defaultdict[str, int] = defaultdict(int)
        self.book_subscribes: defaultdict[str, int] = defaultdict(int)  # snapshots sent per symbol
        self.refused: list[str] = []  # errors sent back to subscribe/unsubscribe requests
        self.last_ticker: dict[str, dict[str, str]] = {}  # symbol -> the last ticker sent (wire text)
        self.accepting = True  # False: WebSocket upgrades are refused (an outage; REST still answers)
        self.trades_sent: defaultdict[str, set[int]] = defaultdict(set)  # symbol -> trade ids sent on a socket

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/_sim/top", self._sim_top)
        app.router.add_get("/0/public/Assets", self._assets)
        app.router.add_get("/0/public/AssetPairs", self._asset_pairs)
        app.router.add_get("/0/public/Time", self._time)
        app.router.add_get("/0/public/Trades", self._trades)
        app.router.add_get("/v2", self._ws)
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
        return f"ws://{self.host}:{self.port}/v2"

    # -- REST --------------------------------------------------------------------------------
    async def _sim_top(self, request: web.Request) -> web.Response:
        """Debug: the true top of book of ``market`` (a v2 symbol like BTC/USD), exact decimal text."""
        symbol = request.query.get("market", "")
        m = self.markets.get(symbol)
        if m is None:
            return json_response({"error": f"unknown market {symbol!r}"}, status=404)
        (bid, bid_size), (ask, ask_size) = m.sorted_bids(1)[0], m.sorted_asks(1)[0]
        return json_response({"market": symbol, "best_bid": m.px(bid), "best_ask": m.px(ask),
                              "bid_size": m.sz(bid_size), "ask_size": m.sz(ask_size)})

    async def _assets(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        result: dict[str, Any] = {}
        for m in self.markets.values():
            pair = self.pairs[m.symbol]
            result[pair.base_id] = {"aclass": "currency", "altname": pair.wsname.split("/")[0], "decimals": 10,
                                    "display_decimals": 5, "collateral_value": 1, "status": "enabled"}
            result[pair.quote_id] = {"aclass": "currency", "altname": pair.quote_id, "decimals": 4,
                                     "display_decimals": 2, "collateral_value": 1, "status": "enabled"}
        return json_response({"error": [], "result": result})

    async def _asset_pairs(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        result = {}
        for m in self.markets.values():
            pair = self.pairs[m.symbol]
            result[pair.pair_id] = {
                "altname": pair.altname, "wsname": pair.wsname, "aclass_base": "currency", "base": pair.base_id,
                "aclass_quote": "currency", "quote": pair.quote_id, "lot": "unit", "cost_decimals": 5,
                "pair_decimals": m.price_decimals, "lot_decimals": m.size_decimals, "lot_multiplier": 1,
                "leverage_buy": [], "leverage_sell": [], "fees": [[0, 0.26]], "fees_maker": [[0, 0.16]],
                "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40, "ordermin": m.sz(m.lot),
                "costmin": "0.5", "tick_size": m.px(m.tick), "status": "online"}
        return json_response({"error": [], "result": result})

    async def _trades(self, request: web.Request) -> web.Response:
        """``GET /0/public/Trades?pair=&since=&count=``: trades after ``since`` (seconds, or a nanosecond
        cursor), oldest first, at most ``count`` (default and max 1000); rows ``[price, volume, time, side,
        type, misc, trade_id]`` with prices padded to 5 decimals as in Kraken's REST example; ``last`` is the
        nanosecond cursor of the last row."""
        self.requests[request.path] += 1
        q = request.query
        m = next((m for s, m in self.markets.items() if self.pairs[s].pair_id == q.get("pair")
                  or self.pairs[s].altname == q.get("pair")), None)
        if m is None:
            return json_response({"error": ["EQuery:Unknown asset pair"]})
        try:
            since = int(q.get("since", "0") or "0")
            count = min(int(q.get("count", "1000")), 1000)
        except ValueError:
            return json_response({"error": ["EGeneral:Invalid arguments"]})
        since_ns = since * 1_000_000_000 if since < 10**12 else since
        rows = [t for t in m.trades if t.ts_ms * 1_000_000 > since_ns][:count]
        last = rows[-1].ts_ms * 1_000_000 if rows else since_ns
        pair = self.pairs[m.symbol].pair_id
        return json_response({"error": [], "result": {pair: [
            [f"{Decimal(t.price):.5f}", t.size, t.ts_ms / 1000, t.taker_side[0], "m", "", t.trade_id] for t in rows],
            "last": str(last)}})

    async def _time(self, request: web.Request) -> web.Response:
        now = max((m.now_ms for m in self.markets.values()), default=0)
        return json_response({"error": [], "result": {"unixtime": now // 1000, "rfc1123": ""}})

    # -- WebSocket ---------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        if not self.accepting:  # an outage: the socket cannot be opened (HTTP 503), the market moves on
            raise web.HTTPServiceUnavailable(text="simulated outage")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws)
        self._conns.append(conn)
        await self._send(conn, {"channel": "status", "type": "update", "data": [{
            "version": "2.0.10", "system": "online", "api_version": "v2", "connection_id": CONNECTION_ID}]})
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
                await conn.ws.send_str(encode(payload))
            except (ConnectionError, RuntimeError):
                pass

    def _now_iso(self) -> str:
        return _iso(max((m.now_ms for m in self.markets.values()), default=0))

    async def _reply(self, conn: _Conn, method: str, req_id: Any, *, result: dict | None = None,
                     error: str | None = None, symbol: str | None = None) -> None:
        body: dict[str, Any] = {"method": method}
        if error is None:
            body.update({"result": result or {}, "success": True})
        else:
            body.update({"error": error, "success": False})
            if symbol is not None:
                body["symbol"] = symbol
            self.refused.append(error)
        body.update({"time_in": self._now_iso(), "time_out": self._now_iso()})
        if req_id is not None:
            body["req_id"] = req_id
        await self._send(conn, body)

    async def _command(self, conn: _Conn, text: str) -> None:
        try:
            cmd = json.loads(text)
            method = cmd["method"]
            params = cmd.get("params") or {}
        except (json.JSONDecodeError, KeyError, TypeError):
            await self._send(conn, {"error": "Malformed request", "success": False, "time_in": self._now_iso(),
                                    "time_out": self._now_iso()})
            return
        req_id = cmd.get("req_id")
        if method == "ping":
            await self._send(conn, {"method": "pong", "req_id": req_id, "time_in": self._now_iso(),
                                    "time_out": self._now_iso()})
            return
        channel = params.get("channel", "")
        symbols = params.get("symbol") or []
        if method not in ("subscribe", "unsubscribe") or channel not in ("book", "trade", "ticker"):
            await self._reply(conn, method, req_id, error=f"Channel {channel!r} not supported in this simulator")
            return
        depth = params.get("depth", 10)
        if channel == "book" and depth not in BOOK_DEPTHS:
            await self._reply(conn, method, req_id, error="Subscription depth not supported")
            return
        for symbol in symbols:
            if symbol not in self.markets:
                await self._reply(conn, method, req_id, error="Currency pair not supported", symbol=symbol)
                continue
            key = (channel, symbol)
            result: dict[str, Any] = {"channel": channel, "symbol": symbol}
            if channel == "book":
                result["depth"] = depth
            if method == "unsubscribe":
                if key not in conn.channels:
                    await self._reply(conn, method, req_id, error="Subscription Not Found", symbol=symbol)
                    continue
                conn.channels.discard(key)
                conn.books.pop(symbol, None)
                await self._reply(conn, method, req_id, result=result)
                continue
            if key in conn.channels:
                await self._reply(conn, method, req_id, error="Already subscribed", symbol=symbol)
                continue
            conn.channels.add(key)
            snapshot = bool(params.get("snapshot", channel != "trade"))
            result["snapshot"] = snapshot
            await self._reply(conn, method, req_id, result=result)
            if channel == "book":
                conn.books[symbol] = _BookView(depth)
                if snapshot:
                    await self._send_book_snapshot(conn, symbol)
            elif channel == "ticker" and snapshot:
                await self._send_ticker(conn, symbol, "snapshot")

    def subscribers(self, channel: str, symbol: str) -> int:
        return sum(1 for c in self._conns if (channel, symbol) in c.channels)

    def _subscribed(self, channel: str, symbol: str) -> list[_Conn]:
        return [c for c in self._conns if (channel, symbol) in c.channels]

    # -- book --------------------------------------------------------------------------------
    def true_book(self, symbol: str, depth: int) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """The top ``depth`` levels of the true book (what a subscriber at that depth must hold)."""
        m = self.markets[symbol]
        return dict(m.sorted_bids(depth)), dict(m.sorted_asks(depth))

    def _checksum(self, m: MarketModel) -> int:
        bids, asks = m.book_text(10)
        return kraken_checksum([(p, q) for p, q in bids], [(p, q) for p, q in asks])

    async def _send_book_snapshot(self, conn: _Conn, symbol: str) -> None:
        m = self.markets[symbol]
        view = conn.books[symbol]
        bids, asks = m.book_text(view.depth)
        view.bids, view.asks = {p: q for p, q in bids}, {p: q for p, q in asks}
        self.book_subscribes[symbol] += 1
        await self._send(conn, {"channel": "book", "type": "snapshot", "data": [{
            "symbol": symbol, "bids": [{"price": Num(p), "qty": Num(q)} for p, q in bids],
            "asks": [{"price": Num(p), "qty": Num(q)} for p, q in asks], "checksum": self._checksum(m),
            "timestamp": _iso(m.now_ms)}]})

    def _view_diff(self, m: MarketModel, view: _BookView) -> tuple[list[dict], list[dict]]:
        """What changed within ``view``'s depth; updates ``view`` to the new top levels."""
        out: list[list[dict]] = []
        for top, known, truth in ((m.sorted_bids(view.depth), view.bids, m.bids),
                                  (m.sorted_asks(view.depth), view.asks, m.asks)):
            new = {m.px(p): m.sz(q) for p, q in top}
            levels = []
            for price in known:
                if price not in new and Decimal(price) not in truth:  # deleted (pushed out: not sent)
                    levels.append({"price": Num(price), "qty": Num(m.sz(Decimal(0)))})
            for price, qty in new.items():
                if known.get(price) != qty:
                    levels.append({"price": Num(price), "qty": Num(qty)})
            known.clear()
            known.update(new)
            out.append(levels)
        return out[0], out[1]

    # -- scenarios ---------------------------------------------------------------------------
    def wrong_checksum_next(self, symbol: str) -> None:
        """The next book update carries a checksum that does not match (its levels are right)."""
        self._wrong_checksum.add(symbol)

    def lose_update_next(self, symbol: str) -> None:
        """The next step also changes the 5th best bid, and its book update is never sent: subscribers' views
        move on as if it had been, so only the next update's checksum (of the true book) shows the loss."""
        self._lose_update.add(symbol)

    async def disconnect_all(self, code: int = 1001) -> None:
        for conn in list(self._conns):
            await conn.ws.close(code=code, message=b"simulated disconnect")
        self._conns.clear()

    async def step(self, n_changes: int = 3) -> None:
        for symbol, m in self.markets.items():
            result = m.step(n_changes)
            lose = symbol in self._lose_update
            if lose:
                self._lose_update.discard(symbol)
                result.changes.append(m.change_level("bid", LOST_LEVEL_RANK))
            await self._publish_step(symbol, m, result, lose)

    async def _publish_step(self, symbol: str, m: MarketModel, result: StepResult, lose: bool) -> None:
        for t in result.trades:
            payload = {"channel": "trade", "type": "update", "data": [{
                "symbol": symbol, "side": t.taker_side, "price": Num(t.price), "qty": Num(t.size),
                "ord_type": "market", "trade_id": t.trade_id, "timestamp": _iso(t.ts_ms)}]}
            for conn in self._subscribed("trade", symbol):
                await self._send(conn, payload)
                self.trades_sent[symbol].add(t.trade_id)
        if result.changes:
            true_checksum = self._checksum(m)
            for conn in self._subscribed("book", symbol):
                bids, asks = self._view_diff(m, conn.books[symbol])
                if lose or not (bids or asks):  # nothing changed within this subscription's depth
                    continue
                checksum = true_checksum
                if symbol in self._wrong_checksum:
                    self._wrong_checksum.discard(symbol)
                    checksum = (checksum + 1) % (1 << 32)
                await self._send(conn, {"channel": "book", "type": "update", "data": [{
                    "symbol": symbol, "bids": bids, "asks": asks, "checksum": checksum,
                    "timestamp": _iso(result.ts_ms)}]})
        if result.trades:
            for conn in self._subscribed("ticker", symbol):
                await self._send_ticker(conn, symbol, "update")

    def _ticker(self, m: MarketModel) -> dict[str, str]:
        (bid, bid_qty), (ask, ask_qty) = m.sorted_bids(1)[0], m.sorted_asks(1)[0]
        trades = m.trades
        last = Decimal(trades[-1].price) if trades else m.mid
        first = Decimal(trades[0].price) if trades else m.mid
        volume = sum((Decimal(t.size) for t in trades), Decimal(0))
        notional = sum((Decimal(t.price) * Decimal(t.size) for t in trades), Decimal(0))
        vwap = notional / volume if volume else last
        change = last - first
        pct = (change / first * 100) if first else Decimal(0)
        prices = [Decimal(t.price) for t in trades] or [last]
        return {"bid": m.px(bid), "bid_qty": m.sz(bid_qty), "ask": m.px(ask), "ask_qty": m.sz(ask_qty),
                "last": m.px(last), "volume": m.sz(volume), "vwap": m.px(vwap.quantize(m.tick)),
                "low": m.px(min(prices)), "high": m.px(max(prices)), "change": m.px(change),
                "change_pct": f"{pct:.2f}"}

    async def _send_ticker(self, conn: _Conn, symbol: str, kind: str) -> None:
        m = self.markets[symbol]
        ticker = self._ticker(m)
        self.last_ticker[symbol] = ticker
        await self._send(conn, {"channel": "ticker", "type": kind, "data": [
            {"symbol": symbol, **{k: Num(v) for k, v in ticker.items()}}]})

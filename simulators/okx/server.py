"""OKX v5 simulator: REST instruments and the public/business/private WebSockets on 127.0.0.1.

What ccxt.pro's okx client (and a native client) uses, per venues.md section 5.4:
- ``GET /api/v5/public/instruments?instType=SPOT``, ``/api/v5/public/time``, ``/api/v5/asset/currencies``.
- ``GET /api/v5/market/trades?instId=&limit=`` (the most recent, newest first, limit <= 500, default 100) and
  ``GET /api/v5/market/history-trades?instId=&after=&before=&limit=`` (``type`` 1, tradeId pagination:
  ``after`` = records older than that tradeId, ``before`` = newer; newest first; limit <= 100, default 100).
- ``/ws/v5/public``: ``books`` (snapshot on subscribe, then updates chained by ``prevSeqId`` -> ``seqId`` and
  a **signed** CRC32 over the top 25 levels interleaved bid:ask, from the wire text), ``trades``,
  ``tickers``; an ``unsubscribe`` op; the text ``ping`` answered ``pong``.
- ``/ws/v5/business``: ``candle1m`` (``[ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm]``).
- ``/ws/v5/private``: ``login`` (HMAC-SHA256 of ``ts+'GET'+'/users/self/verify'``, checked against the
  configured secret), then ``account`` and ``orders`` channels.

Scenarios: ``gap_next()`` (one book update is not delivered: the next ``prevSeqId`` does not chain),
``restart_sequence_next()`` (``seqId`` starts again lower, as after OKX maintenance),
``corrupt_next()`` (one update is delivered without its top-of-book change but with the checksum of the
true book, which only a checksum check can catch), ``disconnect_all()``, ``drop_trades_next(inst_id, n)``
(the next ``n`` trades are in the truth and REST but never sent on ``trades``), ``refuse_trade_history``
(both trade endpoints answer HTTP 429 ``{"code":"50011","msg":"Too Many Requests"}``, OKX's rate limit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import orjson
from aiohttp import WSMsgType, web

from simulators.binance.account import SimAccount, SimFill, SimOrder
from simulators.binance.market import LevelChange, MarketModel, SimTrade, StepResult
from simulators.http import json_response, serve_app

log = logging.getLogger(__name__)


def okx_checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """Signed CRC32 of the first 25 levels per side, interleaved bid, ask (price:size), wire text."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    kind: str  # public | business | private
    channels: set[tuple[str, str]] = field(default_factory=set)  # (channel, instId or instType)
    logged_in: bool = False


class OkxSimulator:
    def __init__(self, markets: list[MarketModel], *, api_key: str = "sim-key", secret: str = "sim-secret",
                 passphrase: str = "sim-pass", host: str = "127.0.0.1", port: int = 0) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.account = SimAccount()
        self.api_key, self.secret, self.passphrase = api_key, secret, passphrase
        self.host, self.port = host, port
        self.seq_ids: dict[str, int] = {m.symbol: 5_000 for m in markets}
        self._gaps: set[str] = set()
        self._corrupt: set[str] = set()
        self._restart: set[str] = set()
        self._conns: list[_Conn] = []
        self._runner: web.AppRunner | None = None
        self._last_candle: dict[str, int] = {}
        self.requests: defaultdict[str, int] = defaultdict(int)
        self.book_subscribes = 0
        self.logins = 0
        self.failed_logins = 0
        self._drop_trades: dict[str, int] = {}
        self.dropped_trades: list[SimTrade] = []
        self.refuse_trade_history = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/_sim/top", self._sim_top)
        app.router.add_get("/api/v5/public/instruments", self._instruments)
        app.router.add_get("/api/v5/public/time", self._time)
        app.router.add_get("/api/v5/asset/currencies", self._currencies)
        app.router.add_get("/api/v5/market/trades", self._trades)
        app.router.add_get("/api/v5/market/history-trades", self._history_trades)
        app.router.add_get("/ws/v5/{kind}", self._ws)
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
        return f"ws://{self.host}:{self.port}/ws/v5"

    # -- REST --------------------------------------------------------------------------------
    async def _instruments(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        inst_type = request.query.get("instType", "SPOT")
        data = []
        if inst_type == "SPOT":
            for m in self.markets.values():
                data.append({
                    "instType": "SPOT", "instId": m.symbol, "uly": "", "instFamily": "", "baseCcy": m.base,
                    "quoteCcy": m.quote, "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "",
                    "stk": "", "listTime": "1606468572000", "expTime": "", "lever": "", "tickSz": m.px(m.tick),
                    "lotSz": m.sz(m.lot), "minSz": m.sz(m.lot), "ctType": "", "alias": "", "state": "live",
                    "maxLmtSz": "9999999999", "maxMktSz": "1000000", "maxTwapSz": "", "maxIcebergSz": "",
                    "maxTriggerSz": "", "maxStopSz": "", "ruleType": "normal"})
        return json_response({"code": "0", "msg": "", "data": data})

    async def _sim_top(self, request: web.Request) -> web.Response:
        """Debug: the true top of book of ``market`` (an instId like BTC-USDT), exact decimal text."""
        inst_id = request.query.get("market", "")
        m = self.markets.get(inst_id)
        if m is None:
            return json_response({"error": f"unknown market {inst_id!r}"}, status=404)
        bid = m.sorted_bids(1)[0] if m.bids else None
        ask = m.sorted_asks(1)[0] if m.asks else None
        return json_response({"market": inst_id, "best_bid": m.px(bid[0]) if bid else None,
                      "best_ask": m.px(ask[0]) if ask else None, "bid_size": m.sz(bid[1]) if bid else None,
                      "ask_size": m.sz(ask[1]) if ask else None})

    async def _trades(self, request: web.Request) -> web.Response:
        return await self._trade_page(request, max_limit=500, paginated=False)

    async def _history_trades(self, request: web.Request) -> web.Response:
        return await self._trade_page(request, max_limit=100, paginated=True)

    async def _trade_page(self, request: web.Request, *, max_limit: int, paginated: bool) -> web.Response:
        self.requests[request.path] += 1
        if self.refuse_trade_history:
            return json_response({"code": "50011", "msg": "Too Many Requests"}, status=429)
        q = request.query
        m = self.markets.get(q.get("instId", ""))
        if m is None:
            return json_response({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        try:
            limit = min(int(q.get("limit", "100")), max_limit)
            after = int(q["after"]) if paginated and q.get("after") else None
            before = int(q["before"]) if paginated and q.get("before") else None
        except ValueError:
            return json_response({"code": "50014", "msg": "Parameter limit/after/before error", "data": []})
        chosen = [t for t in m.trades if (after is None or t.trade_id < after) and (before is None or t.trade_id > before)]
        chosen = chosen[-limit:] if limit > 0 else []
        data = [{"instId": m.symbol, "side": t.taker_side, "sz": t.size, "px": t.price, "source": "0",
                 "tradeId": str(t.trade_id), "ts": str(t.ts_ms)} for t in reversed(chosen)]
        return json_response({"code": "0", "msg": "", "data": data})

    def drop_trades_next(self, inst_id: str, n: int) -> None:
        self._drop_trades[inst_id] = self._drop_trades.get(inst_id, 0) + n

    async def _time(self, request: web.Request) -> web.Response:
        return json_response({"code": "0", "msg": "", "data": [{"ts": str(self._now_ms())}]})

    async def _currencies(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        return json_response({"code": "0", "msg": "", "data": []})

    def _now_ms(self) -> int:
        return max((m.now_ms for m in self.markets.values()), default=0)

    # -- WebSocket ---------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        kind = request.match_info["kind"]
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, kind)
        self._conns.append(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if msg.data == "ping":
                    await ws.send_str("pong")
                    continue
                await self._command(conn, msg.data)
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
        return ws

    async def _send(self, conn: _Conn, payload: object) -> None:
        if not conn.ws.closed:
            try:
                await conn.ws.send_str(orjson.dumps(payload).decode())
            except (ConnectionError, RuntimeError):
                pass

    async def _command(self, conn: _Conn, text: str) -> None:
        try:
            cmd = orjson.loads(text)
            op, args = cmd["op"], cmd.get("args", [])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._send(conn, {"event": "error", "code": "60012", "msg": f"Invalid request: {text}"})
            return
        req_id = cmd.get("id")
        if op == "login":
            await self._login(conn, args[0] if args else {}, req_id)
            return
        for arg in args:
            channel = arg.get("channel", "")
            target = arg.get("instId") or arg.get("instType") or ""
            if op == "subscribe":
                if conn.kind == "private" and not conn.logged_in:
                    await self._send(conn, {"event": "error", "code": "60011", "msg": "Please log in"})
                    continue
                conn.channels.add((channel, target))
                ack = {"event": "subscribe", "arg": arg, "connId": "sim0001"}
                if req_id is not None:
                    ack["id"] = req_id
                await self._send(conn, ack)
                if channel == "books" and target in self.markets:
                    self.book_subscribes += 1
                    await self._send_snapshot(conn, target)
                if channel == "account":
                    await self._push_account(only=conn)
            elif op == "unsubscribe":
                conn.channels.discard((channel, target))
                await self._send(conn, {"event": "unsubscribe", "arg": arg, "connId": "sim0001"})

    async def _login(self, conn: _Conn, arg: dict, req_id: object) -> None:
        expected = base64.b64encode(hmac.new(self.secret.encode(),
                                             f"{arg.get('timestamp', '')}GET/users/self/verify".encode(),
                                             hashlib.sha256).digest()).decode()
        if arg.get("apiKey") == self.api_key and arg.get("passphrase") == self.passphrase \
                and hmac.compare_digest(expected, str(arg.get("sign", ""))):
            conn.logged_in = True
            self.logins += 1
            await self._send(conn, {"event": "login", "code": "0", "msg": "", "connId": "sim0001"})
        else:
            self.failed_logins += 1
            await self._send(conn, {"event": "error", "code": "60009", "msg": "Login failed.", "connId": "sim0001"})

    def _subscribed(self, channel: str, target: str) -> list[_Conn]:
        return [c for c in self._conns if (channel, target) in c.channels]

    async def _send_snapshot(self, conn: _Conn, inst_id: str) -> None:
        m = self.markets[inst_id]
        bids, asks = m.book_text(400)
        self.seq_ids[inst_id] += 1
        await self._send(conn, {"arg": {"channel": "books", "instId": inst_id}, "action": "snapshot", "data": [{
            "asks": [[p, s, "0", "1"] for p, s in asks], "bids": [[p, s, "0", "1"] for p, s in bids],
            "ts": str(m.now_ms), "checksum": okx_checksum(bids, asks), "prevSeqId": -1,
            "seqId": self.seq_ids[inst_id]}]})

    # -- scenarios ---------------------------------------------------------------------------
    def gap_next(self, inst_id: str) -> None:
        """The next book update is applied to the truth but never delivered (prevSeqId will not chain)."""
        self._gaps.add(inst_id)

    def corrupt_next(self, inst_id: str) -> None:
        """The next step changes the best bid but the update omits it; the checksum is the true book's."""
        self._corrupt.add(inst_id)

    def restart_sequence_next(self, inst_id: str) -> None:
        """Like OKX after maintenance: the next update's seqId is smaller than its prevSeqId."""
        self._restart.add(inst_id)

    async def disconnect_all(self, code: int = 1001) -> None:
        for conn in list(self._conns):
            await conn.ws.close(code=code, message=b"simulated disconnect")
        self._conns.clear()

    def subscribers(self, channel: str, target: str) -> int:
        return len(self._subscribed(channel, target))

    async def step(self, n_changes: int = 3) -> None:
        for inst_id, m in self.markets.items():
            result = m.step(n_changes)
            hidden: list[LevelChange] = []
            if inst_id in self._corrupt:
                self._corrupt.discard(inst_id)
                hidden.append(m.top_change("bid"))
            await self._publish_step(inst_id, m, result, hidden)

    async def _publish_step(self, inst_id: str, m: MarketModel, result: StepResult,
                            hidden: list[LevelChange]) -> None:
        for t in result.trades:
            if self._drop_trades.get(inst_id):
                self._drop_trades[inst_id] -= 1
                self.dropped_trades.append(t)
                continue
            payload = {"arg": {"channel": "trades", "instId": inst_id}, "data": [{
                "instId": inst_id, "tradeId": str(t.trade_id), "px": t.price, "sz": t.size, "side": t.taker_side,
                "ts": str(t.ts_ms), "count": "1"}]}
            for conn in self._subscribed("trades", inst_id):
                await self._send(conn, payload)
        if result.changes or hidden:
            prev = self.seq_ids[inst_id]
            self.seq_ids[inst_id] = prev + 1
            if inst_id in self._restart:
                self._restart.discard(inst_id)
                self.seq_ids[inst_id] = 10
            if inst_id in self._gaps:
                self._gaps.discard(inst_id)
            else:
                bids_text, asks_text = m.book_text(25)
                latest: dict[tuple[str, str], str] = {}
                for c in result.changes:  # one entry per level, last size wins (as OKX aggregates)
                    latest[(c.side, c.price)] = c.size
                for c in hidden:
                    latest.pop((c.side, c.price), None)
                payload = {"arg": {"channel": "books", "instId": inst_id}, "action": "update", "data": [{
                    "asks": [[p, s, "0", "0" if Decimal(s) == 0 else "1"] for (side, p), s in latest.items()
                             if side == "ask"],
                    "bids": [[p, s, "0", "0" if Decimal(s) == 0 else "1"] for (side, p), s in latest.items()
                             if side == "bid"],
                    "ts": str(result.ts_ms), "checksum": okx_checksum(bids_text, asks_text),
                    "prevSeqId": prev, "seqId": self.seq_ids[inst_id]}]}
                for conn in self._subscribed("books", inst_id):
                    await self._send(conn, payload)
        await self._publish_candles(inst_id, m, result.ts_ms)
        await self._publish_ticker(inst_id, m, result.ts_ms)

    async def _publish_candles(self, inst_id: str, m: MarketModel, ts_ms: int) -> None:
        if not m.candles:
            return
        conns = self._subscribed("candle1m", inst_id)
        current = m.candles[-1]
        sent = self._last_candle.get(inst_id)
        rows = []
        if sent is not None and sent != current.start_ms:
            previous = m.candle_for(sent)
            if previous is not None:
                rows.append((previous, True))
        rows.append((current, current.start_ms + m.candle_ms <= ts_ms))
        self._last_candle[inst_id] = current.start_ms
        for candle, confirmed in rows:
            payload = {"arg": {"channel": "candle1m", "instId": inst_id}, "data": [[
                str(candle.start_ms), m.px(candle.open), m.px(candle.high), m.px(candle.low), m.px(candle.close),
                m.sz(candle.volume), m.sz(candle.volume), f"{candle.quote_volume:.{m.price_decimals + m.size_decimals}f}",
                "1" if confirmed else "0"]]}
            for conn in conns:
                await self._send(conn, payload)

    async def _publish_ticker(self, inst_id: str, m: MarketModel, ts_ms: int) -> None:
        conns = self._subscribed("tickers", inst_id)
        if not conns or not m.trades:
            return
        last = m.trades[-1]
        (bid, bid_sz), (ask, ask_sz) = m.sorted_bids(1)[0], m.sorted_asks(1)[0]
        volume = m.sz(sum((Decimal(t.size) for t in m.trades), Decimal(0)))
        payload = {"arg": {"channel": "tickers", "instId": inst_id}, "data": [{
            "instType": "SPOT", "instId": inst_id, "last": last.price, "lastSz": last.size, "askPx": m.px(ask),
            "askSz": m.sz(ask_sz), "bidPx": m.px(bid), "bidSz": m.sz(bid_sz), "open24h": m.trades[0].price,
            "high24h": max((t.price for t in m.trades), key=Decimal), "low24h": min((t.price for t in m.trades), key=Decimal),
            "sodUtc0": m.trades[0].price, "sodUtc8": m.trades[0].price, "volCcy24h": "0", "vol24h": volume,
            "ts": str(ts_ms)}]}
        for conn in conns:
            await self._send(conn, payload)

    # -- private activity ------------------------------------------------------------------------
    async def place_order(self, inst_id: str, side: str, px: str, sz: str) -> SimOrder:
        order = self.account.place(inst_id, side, Decimal(px), Decimal(sz), self._now_ms())
        await self._push_order(order, None)
        await self._push_account()
        return order

    async def fill_order(self, ord_id: str, sz: str) -> SimFill:
        fill = self.account.fill(ord_id, Decimal(sz), self._now_ms())
        await self._push_order(self.account.orders[ord_id], fill)
        await self._push_account()
        return fill

    async def cancel_order(self, ord_id: str) -> SimOrder:
        order = self.account.cancel(ord_id, self._now_ms())
        await self._push_order(order, None)
        await self._push_account()
        return order

    async def _push_order(self, o: SimOrder, fill: SimFill | None) -> None:
        m = self.markets[o.inst_id]
        avg = f"{o.notional_filled / o.acc_fill_sz:.{m.price_decimals}f}" if o.acc_fill_sz else ""
        row = {"instType": "SPOT", "instId": o.inst_id, "ordId": o.ord_id, "clOrdId": o.cl_ord_id, "tag": "",
               "px": m.px(o.px), "sz": m.sz(o.sz), "notionalUsd": "", "ordType": "limit", "side": o.side,
               "posSide": "net", "tdMode": "cash", "tgtCcy": "", "fillPx": "", "tradeId": "", "fillSz": "0",
               "fillTime": "", "fillFee": "0", "fillFeeCcy": "", "execType": "", "accFillSz": m.sz(o.acc_fill_sz),
               "fillNotionalUsd": "", "avgPx": avg, "state": o.state, "lever": "0", "feeCcy": "",
               "fee": f"{o.fee:.{m.size_decimals + m.price_decimals}f}", "rebateCcy": "", "rebate": "0", "pnl": "0",
               "category": "normal", "uTime": str(o.u_time), "cTime": str(o.c_time), "reqId": "", "amendResult": "",
               "code": "0", "msg": "", "reduceOnly": "false"}
        if fill is not None:
            row.update({"fillPx": m.px(fill.px), "tradeId": fill.trade_id, "fillSz": m.sz(fill.sz),
                        "fillTime": str(fill.ts), "fillFee": f"{fill.fee:.{m.size_decimals + m.price_decimals}f}",
                        "fillFeeCcy": fill.fee_ccy, "feeCcy": fill.fee_ccy, "execType": "M"})
        for conn in self._conns:
            for channel, target in conn.channels:
                if channel == "orders" and target in ("ANY", "SPOT", o.inst_id):
                    await self._send(conn, {"arg": {"channel": "orders", "instType": target,
                                                    "uid": self.account.uid}, "data": [row]})
                    break

    async def _push_account(self, only: _Conn | None = None) -> None:
        ts = str(self._now_ms())
        details = [{"ccy": b.ccy, "eq": _text(b.cash), "cashBal": _text(b.cash), "availBal": _text(b.available),
                    "frozenBal": _text(b.frozen), "ordFrozen": _text(b.frozen), "uTime": ts}
                   for b in self.account.balances.values()]
        payload = {"arg": {"channel": "account", "uid": self.account.uid}, "data": [{
            "uTime": ts, "totalEq": "0", "adjEq": "", "details": details}]}
        for conn in [only] if only is not None else self._subscribed("account", ""):
            await self._send(conn, payload)


def _text(value: Decimal) -> str:
    return format(value, "f")

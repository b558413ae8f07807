"""EconiaSimulator: the DSS v1 pair on 127.0.0.1: a postgres-websockets server and a PostgREST API.

WebSocket (diogob/postgres-websockets 0.11, see venues.md section 3):
- ``/<JWT>`` (channels claim required) or ``/<channel>/<JWT>``; HS256 with the shared secret, ``mode`` claim
  required; a bad token rejects the upgrade with HTTP 400 and the reason as body ("Token expired",
  "Missing mode", "No allowed channels", "Error: ...").
- at the token's ``exp`` the socket is closed with 3001 "JWT expired"; WebSocket ping frames every
  ``ping_interval`` seconds; anything the client sends is ignored (read mode).
- one text frame per notification: ``{"channel": X, "payload": row}`` (bare JSON integers, u128 order ids).

REST (PostgREST over the DSS tables): ``/fill_events``, ``/place_limit_order_events``,
``/change_order_size_events``, ``/cancel_order_events``, ``/market_registration_events``, ``/limit_orders``,
``/markets``; ``col=op.value`` filters, ``order``, ``limit``, ``offset``; at most ``max_rows`` rows per reply.

Faults: ``disconnect_all()`` (abrupt), ``accepting = False`` (venue away: upgrades get 503),
``send_malformed()``, and the DSS's own ways of losing order (all on a healthy socket):

- ``reorder_probability``: each transaction's notifications are held back with this probability and sent
  after the NEXT transaction's (out of order across transactions), or after ``reorder_max_delay`` seconds
  when no transaction follows; ``hold_next_txn(seconds)`` holds the next one for a fixed time (longer than
  a consumer's reorder window: a "late" transaction);
- ``drop_probability`` / ``drop_next_txns(n)`` / ``drop_next_on_channel(channel, n)``: notifications silently never sent (the rows stay in the
  tables, as a lost ``pg_notify`` leaves them); ``dropped`` lists ``(channel, txn_version, event_idx)``;
- ``close_all(3001, "JWT expired")``: the server's token-expiry close, whatever the token's ``exp``.

Truth: ``exchange.fills``, ``exchange.orders`` (``status``), ``exchange.taker_orders`` (market orders and
swaps: asked size, taker fills, cancel reason) and ``exchange.tables``. Never imports producer
code.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

import jwt
from aiohttp import WSMsgType, web

from simulators.econia.exchange import ASK, BID, TABLE_OF_CHANNEL, EconiaExchange, Row
from simulators.econia.markets import DEFAULT_MARKETS, EconiaMarket
from simulators.econia.postgrest import QueryError, query
from simulators.http import serve_app

DEV_SECRET = "econia_0000000000000000000000000"
MALFORMED_FRAMES = (
    '{"channel": "fill_event", "payload": {"txn_version": 1, "event_idx"',
    "\x00\x01 binary-ish garbage",
    '{"channel": "fill_event", "payload": {"txn_version": "abc", "event_idx": 0}}',
    '{"channel": "place_limit_order_event", "payload": null}',
)


class TokenRejected(ValueError):
    pass


def mint_token(secret: str, channels: list[str] | None, *, mode: str = "r", ttl: float | None = None) -> str:
    """A token as an operator would issue it (test helper; the producer mints its own)."""
    claims: dict[str, object] = {"mode": mode}
    if channels is not None:
        claims["channels"] = channels
    if ttl is not None:
        claims["exp"] = int(time.time() + ttl)
    return jwt.encode(claims, secret, algorithm="HS256")


def validate(token: str, secret: str, path_channel: str | None) -> tuple[set[str], float | None]:
    """postgres-websockets' checks; returns (allowed channels, exp) or raises TokenRejected(message)."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": []})
    except jwt.ExpiredSignatureError as exc:
        raise TokenRejected("Token expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"Error: {type(exc).__name__}: {exc}") from exc
    if claims.get("mode") not in ("r", "w", "rw"):
        raise TokenRejected("Missing mode")
    claimed = claims.get("channels")
    if path_channel is not None:
        if isinstance(claimed, list) and path_channel not in claimed:
            raise TokenRejected("No allowed channels")
        allowed = {path_channel}
    elif isinstance(claimed, list) and claimed:
        allowed = {str(c) for c in claimed}
    else:
        raise TokenRejected("No allowed channels")
    exp = claims.get("exp")
    return allowed, float(exp) if exp is not None else None


@dataclass(eq=False)
class _Held:
    txn: int
    frames: list[tuple[str, str]]  # (channel, text)
    after_txns: int | None  # released once this many later transactions were sent (None: by timer only)
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    channels: set[str]
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


class EconiaSimulator:
    def __init__(self, markets: tuple[EconiaMarket, ...] = DEFAULT_MARKETS, *, port: int = 0,
                 secret: str = DEV_SECRET, ping_interval: float = 30.0, max_rows: int = 100,
                 activity_interval: float | None = None, seed: int = 11) -> None:
        self.port = port
        self.secret = secret
        self.ping_interval = ping_interval
        self.max_rows = max_rows
        self.activity_interval = activity_interval
        self.accepting = True
        self.stats: Counter[str] = Counter()
        self.rejections: list[str] = []
        self.exchange = EconiaExchange(markets, self._notify, seed=seed)
        self._clients: set[_Client] = set()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # faults: out-of-order delivery across transactions, silent drops
        self.reorder_probability = 0.0
        self.reorder_max_delay = 0.2
        self.drop_probability = 0.0
        self.dropped: list[tuple[str, int, int]] = []
        self.held_txns: list[int] = []  # transactions delivered after a later one
        self._fault_rng = random.Random(seed + 1)
        self._current_txn: int | None = None
        self._held: list[_Held] = []
        self._hold_next: float | None = None
        self._drop_next = 0
        self._drop_txns: set[int] = set()
        self._drop_channel: Counter[str] = Counter()
        for m in markets:
            self.exchange.register_market(m)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/_sim/top", self._sim_top)  # before the /{token} catch-alls
        app.router.add_get("/markets", self._markets)
        for table in (*TABLE_OF_CHANNEL.values(), "limit_orders"):
            app.router.add_get(f"/{table}", self._table)
        app.router.add_get("/{token}", self._ws)
        app.router.add_get("/{channel}/{token}", self._ws)
        self._runner, self.port = await serve_app(app, self.port)
        if self.activity_interval:
            self._tasks.append(asyncio.create_task(self._activity_loop(self.activity_interval)))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.disconnect_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EconiaSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _activity_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.exchange.random_activity()

    # -- REST ------------------------------------------------------------------------------
    async def _markets(self, request: web.Request) -> web.Response:
        regs = {r["market_id"]: r for r in self.exchange.tables["market_registration_events"]}
        rows = [m.markets_row(regs[m.market_id]["txn_version"], regs[m.market_id]["time"])
                for m in self.exchange.markets if m.market_id in regs]
        return self._rows(rows, request)

    async def _sim_top(self, request: web.Request) -> web.Response:
        """Debug: top of the true book (resting orders with size > 0) of ``market`` (a market id as text),
        ticks and lots converted to human decimal text with the market's tick/lot sizes and coin decimals."""
        text = request.query.get("market", "")
        m = next((m for m in self.exchange.markets if text.isdigit() and m.market_id == int(text)), None)
        if m is None:
            return web.json_response({"error": f"unknown market {text!r}"}, status=404)
        levels: dict[bool, dict[int, int]] = {ASK: {}, BID: {}}
        for o in self.exchange.resting.get(m.market_id, []):
            if o.size > 0:
                levels[o.side][o.price] = levels[o.side].get(o.price, 0) + o.size
        bid = max(levels[BID]) if levels[BID] else None
        ask = min(levels[ASK]) if levels[ASK] else None

        def price(ticks: int) -> str:  # quote per whole base unit (ticks are per lot); exact unless it cannot be
            with localcontext() as ctx:
                ctx.prec = 60
                value = Decimal(ticks * m.tick_size * 10**m.base_decimals) / Decimal(m.lot_size * 10**m.quote_decimals)
            return format(value, "f")

        def size(lots: int) -> str:
            return format(Decimal(lots * m.lot_size).scaleb(-m.base_decimals), "f")

        return web.json_response({
            "market": str(m.market_id), "best_bid": price(bid) if bid is not None else None,
            "best_ask": price(ask) if ask is not None else None,
            "bid_size": size(levels[BID][bid]) if bid is not None else None,
            "ask_size": size(levels[ASK][ask]) if ask is not None else None})

    async def _table(self, request: web.Request) -> web.Response:
        table = request.path.strip("/")
        rows = list(self.exchange.limit_orders.values()) if table == "limit_orders" else self.exchange.tables[table]
        self.stats[f"rest_{table}"] += 1
        return self._rows(rows, request)

    def _rows(self, rows: list[Row], request: web.Request) -> web.Response:
        try:
            out = query(rows, request.query, max_rows=self.max_rows)
        except (QueryError, ValueError) as exc:
            return web.json_response({"code": "42703", "message": str(exc)}, status=400)
        return web.Response(text=json.dumps(out), content_type="application/json")

    # -- WebSocket -------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if not self.accepting:
            return web.Response(status=503, text="Service Unavailable")
        try:
            channels, exp = validate(request.match_info["token"], self.secret, request.match_info.get("channel"))
        except TokenRejected as exc:
            self.rejections.append(str(exc))
            self.stats["rejected"] += 1
            return web.Response(status=400, text=str(exc))
        ws = web.WebSocketResponse(heartbeat=self.ping_interval, autoping=True)
        await ws.prepare(request)
        client = _Client(ws, request.transport, channels)
        self._clients.add(client)
        self.stats["connections"] += 1
        tasks = [asyncio.create_task(self._writer(client))]
        if exp is not None:
            tasks.append(asyncio.create_task(self._expire(client, exp)))
        try:
            async for msg in ws:  # read-only mode: whatever the client sends is ignored
                if msg.type == WSMsgType.TEXT:
                    self.stats["client_messages_ignored"] += 1
        finally:
            self._clients.discard(client)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return ws

    async def _writer(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            try:
                await client.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
            self.stats["frames_sent"] += 1

    async def _expire(self, client: _Client, exp: float) -> None:
        await asyncio.sleep(max(exp - time.time(), 0))
        self.stats["expired_closes"] += 1
        await client.ws.close(code=3001, message=b"JWT expired")

    def _notify(self, channel: str, row: Row) -> None:
        text = json.dumps({"channel": channel, "payload": row})
        txn = row.get("txn_version") if channel in TABLE_OF_CHANNEL else None
        if txn is None:
            self._deliver(channel, text)
            return
        if txn != self._current_txn:
            self._next_txn(txn)
        drop = self._drop_channel[channel] > 0
        if drop:
            self._drop_channel[channel] -= 1
        if drop or txn in self._drop_txns or (self.drop_probability and self._fault_rng.random() < self.drop_probability):
            self.dropped.append((channel, txn, row["event_idx"]))
            self.stats["dropped_notifications"] += 1
            return
        held = self._held[-1] if self._held else None
        if held is not None and held.txn == txn:
            held.frames.append((channel, text))
            return
        self._deliver(channel, text)

    def _next_txn(self, txn: int) -> None:
        """A new transaction starts notifying: release held ones that waited long enough, maybe hold this one."""
        finished = self._current_txn
        self._current_txn = txn
        for held in list(self._held):
            if held.after_txns is not None and held.txn != finished:
                held.after_txns -= 1
                if held.after_txns <= 0:
                    self._release(held)
        if self._drop_next > 0:
            self._drop_next -= 1
            self._drop_txns.add(txn)
            return
        if self._hold_next is not None:
            held = _Held(txn, [], None)
            held.timer = asyncio.get_running_loop().call_later(self._hold_next, self._release, held)
            self._hold_next = None
        elif self.reorder_probability and self._fault_rng.random() < self.reorder_probability:
            held = _Held(txn, [], 1)
            held.timer = asyncio.get_running_loop().call_later(self.reorder_max_delay, self._release, held)
        else:
            return
        self._held.append(held)
        self.held_txns.append(txn)

    def _release(self, held: _Held) -> None:
        if held not in self._held:
            return
        self._held.remove(held)
        if held.timer is not None:
            held.timer.cancel()
        for channel, text in held.frames:
            self._deliver(channel, text)
        if held.frames:
            self.stats["reordered_txns"] += 1

    def _deliver(self, channel: str, text: str) -> None:
        for client in list(self._clients):
            if channel in client.channels:
                client.queue.put_nowait(text)
                self.stats[f"notified_{channel}"] += 1

    # -- faults ----------------------------------------------------------------------------
    def connected(self) -> int:
        return len(self._clients)

    def disconnect_all(self) -> int:
        n = 0
        for client in list(self._clients):
            if client.transport is not None:
                client.transport.abort()  # type: ignore[attr-defined]
            self._clients.discard(client)
            n += 1
        self.stats["disconnects"] += n
        return n

    def hold_next_txn(self, seconds: float) -> None:
        """Deliver the next transaction's notifications ``seconds`` late (after whatever follows it)."""
        self._hold_next = seconds

    def drop_next_txns(self, n: int) -> None:
        """Silently drop every notification of the next ``n`` transactions (the socket stays up)."""
        self._drop_next = n

    def drop_next_on_channel(self, channel: str, n: int = 1) -> None:
        """Silently drop the next ``n`` notifications on ``channel`` (the rest of their transaction is sent)."""
        self._drop_channel[channel] += n

    def flush_held(self) -> None:
        for held in list(self._held):
            self._release(held)

    async def close_all(self, code: int = 3001, reason: str = "JWT expired") -> int:
        """Close every socket the way postgres-websockets does at a token's exp."""
        clients = list(self._clients)
        for client in clients:
            self.stats["expired_closes"] += 1
            await client.ws.close(code=code, message=reason.encode())
        return len(clients)

    def send_malformed(self, count: int = 1) -> int:
        sent = 0
        for i in range(count):
            for client in list(self._clients):
                client.queue.put_nowait(MALFORMED_FRAMES[i % len(MALFORMED_FRAMES)])
                sent += 1
        self.stats["malformed_sent"] += sent
        return sent

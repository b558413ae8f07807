"""RabbitXSimulator: a Centrifugo-protocol WebSocket server (``/ws``) + REST (``/markets/orderbook``,
``/markets/trades``, ``POST /jwt``) on 127.0.0.1, driven by tests step by step, keeping the true book, trades and account.

Driving it::

    sim = RabbitXSimulator(SimConfig(...)); await sim.start()
    token = sim.issue_token()                       # or POST /jwt with the refresh token
    await sim.wait_subscribed("orderbook:BTC-USD")
    sim.generate(500)                               # book/trade/market/account changes, pushed
    sim.gap("BTC-USD"); sim.trade_gap("BTC-USD", 3); sim.duplicate_next("BTC-USD"); sim.reorder_next("BTC-USD")
    sim.malformed_next(); sim.disconnect_all(); sim.silence(3.0)
    await sim.drain()                               # everything queued was written
    sim.markets["BTC-USD"].true_book(); sim.markets["BTC-USD"].trades; sim.account

REST trades (``rabbitx-docs`` ``public-endpoints/trades.md``; the reference client calls ``/markets/trades``,
the doc page says ``/trades``: both are served): ``market_id``, ``p_limit`` (default 100, max 1000),
``p_page`` (from 0), ``p_order`` (``DESC`` default, or ``ASC``); rows have the WebSocket trade fields. Only the
last ``SimConfig.rest_trade_history`` trades per market are retained (older pages are empty), and the
``trade:`` subscribe reply holds the last ``SimConfig.recent_trades``. The simulator does not offer
Centrifugo history recovery (no ``offset``/``epoch``; RabbitX does not document it either).

``firehose(rate, seconds)`` is the benchmarks' high-rate mode (book deltas, one message per frame by
default; ``rate=0`` = as fast as the client reads).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from simulators.http import serve_app
from simulators.rabbitx import wire
from simulators.rabbitx.account import TrueAccount
from simulators.rabbitx.market import TrueMarket
from simulators.rabbitx.session import Session
from simulators.rabbitx.tokens import TokenAuthority

DEFAULT_MARKETS: dict[str, tuple[str, str]] = {"BTC-USD": ("65000", "0.5"), "ETH-USD": ("3400", "0.1")}


@dataclass
class SimConfig:
    markets: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(DEFAULT_MARKETS))  # mid, tick
    profile_id: str = "13579"
    refresh_token: str = "sim-refresh-token"
    token_ttl: float = 48 * 3600.0
    ping_interval: float = 25.0
    pong_timeout: float = 8.0
    batch_max: int = 8
    numeric_ratio: float = 0.0  # share of book pushes whose levels are JSON numbers
    max_queue: int = 200_000
    recent_trades: int = 500  # trades in a trade: subscribe reply
    rest_trade_history: int = 10_000  # trades per market GET /markets/trades can still return
    rest_latency: float = 0.0  # seconds each REST trades page takes to answer
    seed: int = 1
    weights: dict[str, float] = field(default_factory=lambda: {"book": 0.6, "trade": 0.2, "market": 0.1,
                                                               "account": 0.1})


class RabbitXSimulator:
    def __init__(self, config: SimConfig | None = None, *, port: int = 0) -> None:
        self.config = config or SimConfig()
        self.port = port
        self.rng = random.Random(self.config.seed)
        self.tokens = TokenAuthority(ttl=self.config.token_ttl)
        self.markets = {m: TrueMarket(m, Decimal(mid), Decimal(tick), self.rng,
                                           recent_trades=self.config.recent_trades)
                        for m, (mid, tick) in self.config.markets.items()}
        self.account = TrueAccount(self.config.profile_id, {m: Decimal(mid) for m, (mid, _) in
                                                            self.config.markets.items()}, self.rng)
        self.sessions: list[Session] = []
        self.stats: Counter[str] = Counter()
        self.command_ids: list[Any] = []  # every command id clients sent, in order (ids must be unique)
        self.silent_until = 0.0
        self._gap: Counter[str] = Counter()
        self._trade_gap: Counter[str] = Counter()
        self._dup: set[str] = set()
        self._hold: dict[str, str | None] = {}
        self._malformed = 0
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/markets/orderbook", self._rest_orderbook)
        app.router.add_get("/markets/trades", self._rest_trades)
        app.router.add_get("/trades", self._rest_trades)
        app.router.add_post("/jwt", self._rest_jwt)
        app.router.add_get("/_sim/top", self._sim_top)
        self._runner, self.port = await serve_app(app, self.port)

    async def stop(self) -> None:
        for s in list(self.sessions):
            s.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def issue_token(self, ttl: float | None = None) -> str:
        return self.tokens.issue(self.config.profile_id, ttl=ttl)

    # -- HTTP ------------------------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = Session(self, ws, request)
        self.sessions.append(session)
        self.stats["connections"] += 1
        try:
            await session.run()
        finally:
            self.sessions.remove(session)
        return ws

    async def _rest_orderbook(self, request: web.Request) -> web.Response:
        market = self.markets.get(request.query.get("market_id", ""))
        if market is None:
            return web.json_response({"success": False, "error": "market not found", "result": []}, status=400)
        self.stats["rest_snapshots"] += 1
        limit = min(int(request.query.get("p_limit", "100")), 1000)
        return web.json_response({"success": True, "error": "", "result": [market.snapshot_data(limit)]})

    async def _rest_trades(self, request: web.Request) -> web.Response:
        q = request.query
        market = self.markets.get(q.get("market_id", ""))
        if market is None:
            return web.json_response({"success": False, "error": "market not found", "result": []}, status=400)
        try:
            limit = min(max(int(q.get("p_limit", "100")), 1), 1000)
            page = max(int(q.get("p_page", "0")), 0)
        except ValueError:
            return web.json_response({"success": False, "error": "bad pagination", "result": []}, status=400)
        order = q.get("p_order", "DESC").upper()
        if order not in ("ASC", "DESC"):
            return web.json_response({"success": False, "error": "bad p_order", "result": []}, status=400)
        if self.config.rest_latency > 0:
            await asyncio.sleep(self.config.rest_latency)
        self.stats["rest_trade_pages"] += 1
        rows = market.trade_history(self.config.rest_trade_history, limit, page, ascending=order == "ASC")
        return web.json_response({"success": True, "error": "", "result": rows})

    async def _sim_top(self, request: web.Request) -> web.Response:
        """Debug: the true top of book of ``market`` (a market id like BTC-USD), exact decimal text."""
        market_id = request.query.get("market", "")
        market = self.markets.get(market_id)
        if market is None:
            return web.json_response({"error": f"unknown market {market_id!r}"}, status=404)
        bid = max(market.bids) if market.bids else None
        ask = min(market.asks) if market.asks else None
        return web.json_response({
            "market": market_id, "best_bid": format(bid, "f") if bid is not None else None,
            "best_ask": format(ask, "f") if ask is not None else None,
            "bid_size": format(market.bids[bid], "f") if bid is not None else None,
            "ask_size": format(market.asks[ask], "f") if ask is not None else None})

    async def _rest_jwt(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("refresh_token") != self.config.refresh_token:
            return web.json_response({"success": False, "error": "invalid refresh token", "result": []}, status=401)
        self.stats["jwt_issued"] += 1
        return web.json_response({"success": True, "error": "",
                                  "result": [{"jwt": self.issue_token(), "refresh_token": self.config.refresh_token}]})

    # -- channels --------------------------------------------------------------------------------------
    def channel_snapshot(self, channel: str, profile_id: str) -> Any:
        """Subscribe-reply data, or a Centrifugo error code."""
        if channel.startswith("account@"):
            return self.account.snapshot() if channel[8:] == profile_id else 103
        kind, _, market_id = channel.partition(":")
        market = self.markets.get(market_id)
        if market is None:
            return 102
        if kind == "orderbook":
            return market.snapshot_data()
        if kind == "trade":
            return list(market.recent)
        if kind == "market":
            return dict(market.info)
        return 102

    def subscribers(self, channel: str) -> list[Session]:
        return [s for s in self.sessions if channel in s.subs]

    async def wait_subscribed(self, *channels: str, timeout: float = 10.0, count: int = 1) -> None:
        async with asyncio.timeout(timeout):
            while not all(len(self.subscribers(c)) >= count for c in channels):
                await asyncio.sleep(0.01)

    def _broadcast(self, channel: str, line: str) -> None:
        for s in self.sessions:
            if channel in s.subs:
                if self._malformed:
                    s.send('{"push":{"channel":"' + channel + '","pub":{"data":{"market_id":')
                s.send(line)
        if self._malformed:
            self._malformed -= 1
            self.stats["malformed_sent"] += 1

    # -- generation ----------------------------------------------------------------------------------------
    def generate(self, n: int) -> None:
        kinds = list(self.config.weights)
        weights = [self.config.weights[k] for k in kinds]
        names = sorted(self.markets)
        for _ in range(n):
            kind = self.rng.choices(kinds, weights)[0]
            if kind == "account":
                self._broadcast(f"account@{self.config.profile_id}", wire.push(
                    f"account@{self.config.profile_id}", self.account.change()))
                continue
            market = self.markets[self.rng.choice(names)]
            if kind == "book":
                self.book_step(market)
            elif kind == "trade":
                t = market.trade()
                if self._trade_gap[market.market_id] > 0:  # traded (truth, REST history) but never pushed
                    self._trade_gap[market.market_id] -= 1
                    self.stats["trades_withheld"] += 1
                    continue
                self._broadcast(f"trade:{market.market_id}", wire.push(f"trade:{market.market_id}", [t]))
            else:
                self._broadcast(f"market:{market.market_id}", wire.push(f"market:{market.market_id}",
                                                                        market.info_change()))

    def book_step(self, market: TrueMarket, ts: int | None = None) -> None:
        bids, asks = market.book_change()
        m = market.market_id
        if self._gap[m] > 0:
            self._gap[m] -= 1
            self.stats["gaps_injected"] += 1
            return
        numeric = self.config.numeric_ratio > 0 and self.rng.random() < self.config.numeric_ratio
        line = wire.book_push(m, bids, asks, market.sequence, market.now() if ts is None else ts, numeric)
        channel = f"orderbook:{m}"
        if m in self._hold:
            held = self._hold[m]
            if held is None:  # hold this one, send it after the next
                self._hold[m] = line
                return
            del self._hold[m]
            self._broadcast(channel, line)
            self._broadcast(channel, held)
            self.stats["reordered"] += 1
            return
        self._broadcast(channel, line)
        if m in self._dup:
            self._dup.discard(m)
            self._broadcast(channel, line)
            self.stats["duplicated"] += 1

    # -- faults ----------------------------------------------------------------------------------------
    def gap(self, market: str, n: int = 1) -> None:
        """The next ``n`` book changes of ``market`` happen but are not pushed."""
        self._gap[market] += n

    def trade_gap(self, market: str, n: int = 1) -> None:
        """The next ``n`` trades of ``market`` happen (truth, REST history) but are not pushed."""
        self._trade_gap[market] += n

    def duplicate_next(self, market: str) -> None:
        self._dup.add(market)

    def reorder_next(self, market: str) -> None:
        """The next book change is pushed after the one following it."""
        self._hold[market] = None

    def malformed_next(self, n: int = 1) -> None:
        """A truncated JSON line precedes the next ``n`` pushes (same frame when batching)."""
        self._malformed += n

    def disconnect_all(self) -> int:
        """Abort every connection (no close frame); returns how many."""
        sessions = list(self.sessions)
        for s in sessions:
            s.abort()
        self.stats["aborted"] += len(sessions)
        return len(sessions)

    def server_unsubscribe(self, channel: str, code: int = 2500, reason: str = "insufficient state") -> int:
        """Unsubscribe every client from ``channel`` with a server push (codes >= 2500 ask to resubscribe)."""
        sessions = self.subscribers(channel)
        for s in sessions:
            s.subs.discard(channel)
            s.send(wire.dumps({"push": {"channel": channel, "unsubscribe": {"code": code, "reason": reason}}}))
        self.stats["server_unsubscribes"] += len(sessions)
        return len(sessions)

    def ping_now(self) -> None:
        """A ``{}`` ping to every client, queued ahead of the next pushes (same frame when batching)."""
        for s in self.sessions:
            s.ping()

    def silence(self, seconds: float) -> None:
        """Send nothing (no data, no pings) for ``seconds``; connections stay open."""
        self.silent_until = time.monotonic() + seconds

    async def drain(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while any(s.queued for s in self.sessions):
                await asyncio.sleep(0.01)

    # -- high-rate mode ----------------------------------------------------------------------------------
    async def firehose(self, rate: float, seconds: float, market_id: str | None = None,
                       low_water: int = 2000) -> int:
        """Book deltas at ``rate`` messages/s (0 = as fast as the client takes them) for ``seconds``.

        Each message is stamped with the wall-clock µs at generation (the latency probe). Returns the
        number of messages generated.
        """
        market = self.markets[market_id or sorted(self.markets)[0]]
        sent = 0
        t0 = time.monotonic()
        end = t0 + seconds
        while (now := time.monotonic()) < end:
            if rate > 0:
                due = int((now - t0) * rate) - sent
                for _ in range(due):
                    self.book_step(market, time.time_ns() // 1000)
                sent += max(due, 0)
                await asyncio.sleep(0.0005)
            else:
                if any(s.queued > low_water for s in self.sessions):
                    await asyncio.sleep(0.0005)
                    continue
                ts = time.time_ns() // 1000
                for _ in range(low_water):
                    self.book_step(market, ts)
                sent += low_water
                await asyncio.sleep(0)
        return sent

"""DriftSimulator: a DLOB-server look-alike on 127.0.0.1 (WebSocket ``/ws`` and REST ``/l2``).

Behaviour copied from drift-labs/dlob-server (see venues.md section 2):
- subscribe/unsubscribe messages (case-insensitive type/marketType/channel, market upper-cased), the ack
  ``{"message": "Subscribe received for channel: ..."}``, ``{"channel":..,"error":"Error subscribing to channel"}``
  for an unknown market, close 1003 when ``channel`` is missing, invalid JSON silently ignored;
- grouped orderbook channel ``orderbook_{type}_{idx}_grouped_1``: a full top-20 snapshot every
  ``book_interval`` seconds, numeric levels in integer precision, monotonic ``slot``; no immediate snapshot
  on subscribe (the grouped channel has no cached last message);
- ``trades_{type}_{idx}``: one FillEvent per fill with human floats;
- ``{"channel":"heartbeat"}`` every ``heartbeat_interval`` seconds per connection;
- back-pressure: a send is skipped while the connection's buffered bytes are >= ``max_buffered`` and every
  ``overflow_check_interval`` seconds a connection still above it is closed with 1008 "Buffer overflow".

Faults for tests are methods (``disconnect_all``, ``send_malformed``, ``send_stale_book``,
``duplicate_last_trade``) and attributes (``heartbeat_enabled``, ``messages_per_frame``, ``accepting``).
``firehose()`` is the high-rate mode for benchmarks. The simulator never imports producer code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from simulators.drift import wire
from simulators.drift.markets import DEFAULT_MARKETS, DriftMarket
from simulators.drift.truth import BookState, FillTruth, MarketModel, price_text, units_to_text
from simulators.http import serve_app

log = logging.getLogger(__name__)

MALFORMED_FRAMES: tuple[str, ...] = (
    '{"channel":"orderbook_perp_0_grouped_1","data":"{\\"bids\\":[{\\"size\\":1',  # truncated outer JSON
    "not json at all",
    '{"channel":"%(book)s","data":"{\\"bids\\":[oops]}"}',  # inner data is not JSON
    '{"channel":"%(book)s","data":"{\\"marketName\\":\\"%(name)s\\",\\"slot\\":\\"x\\"}"}',  # fields missing/wrong
    '{"channel":"%(trades)s","data":"{\\"txSig\\":\\"abc\\",\\"fillRecordId\\":1}"}',  # fill without amounts
)


_CLOSE_OVERFLOW = "\x00close-overflow"


@dataclass
class _Outgoing:
    text: str
    fill: FillTruth | None = None
    droppable: bool = True


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    subs: set[str] = field(default_factory=set)
    queue: deque[_Outgoing] = field(default_factory=deque)
    queued_bytes: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def buffered_amount(self) -> int:
        size = 0
        if self.transport is not None and hasattr(self.transport, "get_write_buffer_size"):
            size = self.transport.get_write_buffer_size()  # type: ignore[attr-defined]
        return self.queued_bytes + size


class DriftSimulator:
    def __init__(self, markets: tuple[DriftMarket, ...] = DEFAULT_MARKETS, *, port: int = 0,
                 book_interval: float = 0.4, trade_interval: float = 0.2, heartbeat_interval: float = 5.0,
                 max_buffered: int = 300_000, overflow_check_interval: float = 10.0, compress: bool = True,
                 seed: int = 7) -> None:
        self.markets = markets
        self.port = port
        self.book_interval = book_interval
        self.trade_interval = trade_interval
        self.heartbeat_interval = heartbeat_interval
        self.max_buffered = max_buffered
        self.overflow_check_interval = overflow_check_interval
        self.compress = compress
        self.rng = random.Random(seed)
        self.models = {m.name: MarketModel(m, random.Random(seed + i)) for i, m in enumerate(markets)}
        # scenario switches
        self.heartbeat_enabled = True
        self.publishing = True
        self.accepting = True
        self.messages_per_frame = 1
        # truth
        self.books: dict[str, BookState] = {}
        self.history: dict[str, deque[BookState]] = {m.name: deque(maxlen=8) for m in markets}
        self.fills: dict[tuple[str, int], FillTruth] = {}
        self.delivered: dict[tuple[str, int], FillTruth] = {}
        self.last_fill: dict[str, FillTruth] = {}
        self.stats: Counter[str] = Counter()
        self._conns: set[_Connection] = set()
        self._record_id = 1
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, publish: bool = True) -> None:
        app = web.Application()
        app.router.add_get("/_sim/top", self._sim_top)
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_get("/l2", self._l2_handler)
        self._runner, self.port = await serve_app(app, self.port)
        for m in self.markets:  # a first book exists for REST before the first publish
            self._publish_book(m, send=False)
        self._tasks.append(asyncio.create_task(self._overflow_loop()))
        if publish:
            self._tasks.append(asyncio.create_task(self._book_loop()))
            self._tasks.append(asyncio.create_task(self._trade_loop()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.disconnect_all(graceful=False)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DriftSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- HTTP ------------------------------------------------------------------------------
    async def _l2_handler(self, request: web.Request) -> web.Response:
        name = request.query.get("marketName", "").upper()
        depth = int(request.query.get("depth", "10"))
        book = self.books.get(name)
        if book is None:
            return web.json_response({"error": f"unknown market {name}"}, status=400)
        self.stats["rest_l2"] += 1
        return web.json_response(wire.rest_l2(book, depth))

    async def _sim_top(self, request: web.Request) -> web.Response:
        """Debug: top of the last published true book of ``market`` (``SOL-PERP``, ``SOL``), human decimal text."""
        name = request.query.get("market", "").upper()
        book = self.books.get(name)
        if book is None:
            return web.json_response({"error": f"unknown market {name!r}"}, status=404)
        exp = book.market.base_precision_exp
        bid = max(book.bids, key=lambda lv: lv[0]) if book.bids else None  # custom books may be unsorted
        ask = min(book.asks, key=lambda lv: lv[0]) if book.asks else None
        return web.json_response({
            "market": name, "best_bid": price_text(bid[0]) if bid else None,
            "best_ask": price_text(ask[0]) if ask else None,
            "bid_size": units_to_text(bid[1], exp) if bid else None,
            "ask_size": units_to_text(ask[1], exp) if ask else None})

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        if not self.accepting:
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(compress=self.compress, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = _Connection(ws, request.transport)
        self._conns.add(conn)
        self.stats["connections"] += 1
        tasks = [asyncio.create_task(self._writer(conn)), asyncio.create_task(self._heartbeat(conn))]
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_client_message(conn, msg.data)
        finally:
            conn.closed = True
            self._conns.discard(conn)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # like Node's ws: what is already in the socket (the close frame included) still reaches a slow
        # reader before the socket is destroyed (bounded wait)
        for _ in range(200):
            if conn.transport is None or conn.transport.is_closing() or not conn.buffered_amount():
                break
            await asyncio.sleep(0.05)
        return ws

    async def _on_client_message(self, conn: _Connection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self.stats["client_invalid_json"] += 1
            return  # the real server ignores it
        if not isinstance(msg, dict) or "type" not in msg:
            return
        kind = str(msg["type"]).lower()
        channel = msg.get("channel")
        if not channel:
            await conn.ws.close(code=1003, message=b'{"error":"Error subscribing to channel"}')
            return
        channel = str(channel).lower()
        market_type = str(msg.get("marketType", "")).lower()
        name = str(msg.get("market", "")).upper()
        market = next((m for m in self.markets if m.name == name and m.market_type == market_type), None)
        if market is None or channel not in ("orderbook", "trades") or kind not in ("subscribe", "unsubscribe"):
            self._enqueue(conn, _Outgoing(wire.subscribe_error(channel), droppable=False))
            self.stats["subscribe_errors"] += 1
            return
        redis_channel = market.book_channel if channel == "orderbook" else market.trades_channel
        if kind == "subscribe":
            conn.subs.add(redis_channel)
            self.stats["subscribes"] += 1
            self._enqueue(conn, _Outgoing(wire.subscribe_ack(channel, name, market_type), droppable=False))
        else:
            conn.subs.discard(redis_channel)
            self.stats["unsubscribes"] += 1
            self._enqueue(conn, _Outgoing(wire.unsubscribe_ack(channel, name, market_type), droppable=False))

    # -- sending ---------------------------------------------------------------------------
    def _enqueue(self, conn: _Connection, out: _Outgoing) -> bool:
        if conn.closed:
            return False
        if out.droppable and conn.buffered_amount() >= self.max_buffered:
            self.stats["dropped_backpressure"] += 1
            return False
        conn.queue.append(out)
        conn.queued_bytes += len(out.text)
        conn.wake.set()
        return True

    async def _writer(self, conn: _Connection) -> None:
        while True:
            if not conn.queue:
                conn.wake.clear()
                await conn.wake.wait()
                continue
            if conn.queue[0].text is _CLOSE_OVERFLOW:
                await self._close(conn, 1008, b"Buffer overflow")
                return
            batch = [conn.queue.popleft()]
            while conn.queue and len(batch) < self.messages_per_frame and conn.queue[0].text is not _CLOSE_OVERFLOW:
                batch.append(conn.queue.popleft())
            text = "\n".join(o.text for o in batch)
            conn.queued_bytes -= sum(len(o.text) for o in batch)
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                conn.closed = True
                return
            self.stats["frames_sent"] += 1
            for o in batch:
                if o.fill is not None:
                    self.delivered[(o.fill.tx_sig, o.fill.fill_record_id)] = o.fill

    def _broadcast(self, channel: str, out: _Outgoing) -> int:
        n = 0
        for conn in list(self._conns):
            if channel in conn.subs and self._enqueue(conn, out):
                n += 1
        return n

    async def _heartbeat(self, conn: _Connection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if self.heartbeat_enabled:
                self._enqueue(conn, _Outgoing(wire.HEARTBEAT, droppable=False))
                self.stats["heartbeats"] += 1

    async def _overflow_loop(self) -> None:
        while True:
            await asyncio.sleep(self.overflow_check_interval)
            for conn in list(self._conns):
                if conn.buffered_amount() > self.max_buffered and not conn.closed:
                    self.stats["overflow_closes"] += 1
                    conn.closed = True  # nothing more is queued; the writer sends the close after the backlog
                    conn.queue.append(_Outgoing(_CLOSE_OVERFLOW, droppable=False))
                    conn.wake.set()

    @staticmethod
    async def _close(conn: _Connection, code: int, reason: bytes) -> None:
        try:
            await asyncio.wait_for(conn.ws.close(code=code, message=reason), 10.0)
        except (TimeoutError, ConnectionError, RuntimeError):
            if conn.transport is not None:
                conn.transport.abort()  # type: ignore[attr-defined]

    # -- the market ------------------------------------------------------------------------
    def _publish_book(self, market: DriftMarket, *, send: bool = True) -> BookState:
        book = self.models[market.name].next_book(int(time.time() * 1000))
        self.books[market.name] = book
        self.history[market.name].append(book)
        if send:
            self.stats["books_sent"] += self._broadcast(market.book_channel, _Outgoing(wire.grouped_book_message(book)))
        return book

    def _publish_fill(self, market: DriftMarket) -> FillTruth:
        rid = self._record_id
        self._record_id += 1
        sig = "".join(self.rng.choice("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz") for _ in range(64))
        fill = self.models[market.name].next_fill(rid, int(time.time()), sig)
        self.fills[(fill.tx_sig, fill.fill_record_id)] = fill
        self.last_fill[market.name] = fill
        self.stats["fills_sent"] += self._broadcast(market.trades_channel,
                                                    _Outgoing(wire.fill_event_message(fill), fill=fill))
        return fill

    async def _book_loop(self) -> None:
        while True:
            await asyncio.sleep(self.book_interval)
            if self.publishing:
                for m in self.markets:
                    self._publish_book(m)

    async def _trade_loop(self) -> None:
        while True:
            await asyncio.sleep(self.trade_interval * (0.5 + self.rng.random()))
            if self.publishing:
                self._publish_fill(self.rng.choice(self.markets))

    # -- faults ----------------------------------------------------------------------------
    def subscribers(self) -> int:
        return sum(1 for c in self._conns if c.subs)

    def disconnect_all(self, *, graceful: bool = False) -> int:
        """Abrupt disconnect: the TCP connection is dropped without a close frame (client sees 1006)."""
        n = 0
        for conn in list(self._conns):
            conn.closed = True
            n += 1
            if graceful:
                asyncio.create_task(self._close(conn, 1001, b"going away"))
            elif conn.transport is not None:
                conn.transport.abort()  # type: ignore[attr-defined]
        self.stats["disconnects"] += n
        return n

    def send_malformed(self, count: int = 1) -> int:
        """Malformed frames to every subscribed connection; returns frames sent (per connection counted)."""
        m = self.markets[0]
        sent = 0
        for i in range(count):
            text = MALFORMED_FRAMES[i % len(MALFORMED_FRAMES)] % {
                "book": m.book_channel, "trades": m.trades_channel, "name": m.name}
            for conn in list(self._conns):
                if conn.subs and self._enqueue(conn, _Outgoing(text, droppable=False)):
                    sent += 1
        self.stats["malformed_sent"] += sent
        return sent

    def send_stale_book(self, market: DriftMarket) -> int:
        """Re-send an older snapshot (slot regression); the true book does not change."""
        older = self.history[market.name][0]
        assert older.slot < self.books[market.name].slot
        n = self._broadcast(market.book_channel, _Outgoing(wire.grouped_book_message(older), droppable=False))
        self.stats["stale_books_sent"] += n
        return n

    def duplicate_last_trade(self, market: DriftMarket) -> int:
        fill = self.last_fill[market.name]
        n = self._broadcast(market.trades_channel, _Outgoing(wire.fill_event_message(fill), fill=fill,
                                                             droppable=False))
        self.stats["duplicate_fills_sent"] += n
        return n

    def publish_custom_book(self, market: DriftMarket, bids: list[tuple[int, int]],
                            asks: list[tuple[int, int]]) -> BookState:
        """Publish a book with chosen levels (edge values); it becomes the true book."""
        model = self.models[market.name]
        model.slot += 1
        book = BookState(market, model.slot, list(bids), list(asks), int(time.time() * 1000))
        self.books[market.name] = book
        self.history[market.name].append(book)
        self.stats["books_sent"] += self._broadcast(market.book_channel, _Outgoing(wire.grouped_book_message(book)))
        return book

    def publish_now(self, market: DriftMarket, *, fills: int = 0) -> BookState:
        for _ in range(fills):
            self._publish_fill(market)
        return self._publish_book(market)

    # -- high-rate mode ----------------------------------------------------------------------
    async def firehose(self, rate: float, seconds: float, *, variants: int = 256) -> int:
        """Send grouped book snapshots at ``rate`` frames/s (0 = as fast as the readers drain them) for ``seconds``.

        Frames are pre-rendered with a slot placeholder so the simulator stays cheap; slots carry the send
        time in microseconds (strictly increasing) so a consumer can measure frame-to-ack latency.
        Returns the frames handed to connections.
        """
        templates: list[tuple[DriftMarket, str, str]] = []
        marker = 987654321987
        for i in range(variants):
            m = self.markets[i % len(self.markets)]
            book = self.models[m.name].next_book(int(time.time() * 1000))
            book.slot = marker
            text = wire.grouped_book_message(book)
            pre, post = text.split(str(marker), 1)
            templates.append((m, pre, post))
        sent = 0
        last_slot = 0
        t0 = time.monotonic()
        end = t0 + seconds
        chunk = 64
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if rate > 0:
                due = int((now - t0) * rate) - sent
                if due <= 0:
                    await asyncio.sleep(min(0.001, end - now))
                    continue
                n = min(due, chunk)
            else:  # as fast as the readers take them: never queue what the back-pressure rule would drop
                if any(c.subs and c.buffered_amount() > self.max_buffered // 4 for c in self._conns):
                    await asyncio.sleep(0.0002)
                    continue
                n = 16
            for _ in range(n):
                m, pre, post = templates[sent % len(templates)]
                slot = max(time.time_ns() // 1000, last_slot + 1)
                last_slot = slot
                self._broadcast(m.book_channel, _Outgoing(pre + str(slot) + post))
                sent += 1
            await asyncio.sleep(0)
        self.stats["firehose_frames"] += sent
        return sent


async def serve_forever(sim: DriftSimulator) -> None:
    await sim.start()
    log.info("drift simulator on %s (REST %s)", sim.ws_url, sim.rest_url)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await sim.stop()

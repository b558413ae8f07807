"""RabbitXFeed: RabbitX's Centrifugo WebSocket -> marketpipe topics.

Protocol decisions (venues.md §1, §7):

- Every command gets a fresh numeric id from one counter that never restarts (the reference client
  reuses id 1 and loses its first snapshot); replies are matched by id, messages without id are pushes.
- ``connect`` carries the JWT. Error 109 (expired) -> renew through ``POST /jwt`` and reconnect; close
  3005 (expired while connected) -> renew, reconnect; close 35xx (3500 invalid token...) -> stop with a
  clear error. With ``expires``/``ttl`` in the connect reply, a ``refresh`` command with a new JWT is
  sent after ``token_refresh_fraction`` of the ttl, so the connection never expires in normal operation.
- Subscribe replies carry the initial data (``subscribe.data``): it is handled in the reader, in order,
  before any later push of that channel.
- ``{}`` is the server's ping: answered with ``{}`` at once; the other lines of the same frame are still
  processed (the reference client drops them).
- ``orderbook:<m>``: snapshot (bids ascending!) and absolute-size deltas through ``BookSynchronizer``;
  ``sequence`` must grow by exactly 1: a gap publishes RESET and resyncs by unsubscribe + subscribe (or a
  REST ``/markets/orderbook`` snapshot with ``book_resync=rest``); older/equal sequences are dropped.
- ``trade:<m>``: arrays of trades, through one ``TradeTape`` per market (``trades.py``): ids are
  ``<m>-<n>`` with consecutive ``n``, so duplicates (the subscribe reply repeats recent trades) are
  dropped by number and a hole (live, or found after a reconnect by comparing the resubscribe reply with
  the last trade published) is filled from the REST trade history (``GET /markets/trades``, newest
  first, ``trade_recovery_max_pages`` pages of ``trade_recovery_page_limit``) before the trade that
  revealed it; what the history no longer holds gets one gap marker per hole. Recovery runs in a filler
  task per market while the reader goes on reading; the market's later trades wait behind it, so
  recovered trades are published before them. Centrifugo's own
  history recovery (``recover``/``offset``/``epoch``) is not used: RabbitX does not document it and its
  subscribe replies carry no ``offset``/``epoch``; with it a reconnect would still need the REST walk
  for anything older than the channel history.
- ``market:<m>`` and ``account@<profile>``: table diffs merged into full state (empty = unchanged, key
  spellings unified) before normalizing to Ticker / AccountEvent.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import aiohttp

from producers.core.book import BookSynchronizer
from producers.core.errors import InexactNumber, ReconnectRequested, TerminalFeedError
from producers.core.feed import Feed
from producers.core.numbers import loads_exact, now_micros, to_micros
from producers.core.resume import newest_trades
from producers.rabbitx import protocol
from producers.rabbitx.account import AccountTracker
from producers.rabbitx.auth import TokenSource
from producers.rabbitx.normalize import merge_partial, ticker_fields
from producers.rabbitx.settings import RabbitXSettings
from producers.rabbitx.trade_history import HistoryWindow, trades_between
from producers.rabbitx.trades import TradeTape
from schemas.topics import market_key

log = logging.getLogger(__name__)


class RabbitXFeed(Feed):
    venue = "rabbitx"

    def __init__(self, settings: RabbitXSettings | None = None, **kw: Any) -> None:
        settings = settings or RabbitXSettings()
        super().__init__(settings, **kw)
        self.settings: RabbitXSettings = settings
        self.tokens = TokenSource(settings)
        self.channels = protocol.channels_for(settings.markets, settings.account_id)
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], str | None]] = {}
        self._refresh_task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.books: dict[str, BookSynchronizer] = {}
        self.market_state: dict[str, dict[str, Any]] = {}
        self.tapes: dict[str, TradeTape] = {}
        self._routes: dict[str, tuple[Any, str]] = {}  # channel -> (handler, symbol)
        self.account = (AccountTracker(settings.account_id, settings.settlement_asset)
                        if settings.account_id else None)
        self.refreshes = 0

    def market(self, venue_symbol: str) -> str:
        return venue_symbol.upper() + self.settings.market_suffix

    # -- lifecycle -------------------------------------------------------------------------------------
    async def on_start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        assert self.emitter is not None
        for m in self.settings.markets:
            self.books[m] = BookSynchronizer(
                self.venue, self.market(m), m, publish=self.emitter.book_sink(self.market(m), f"orderbook:{m}"),
                metrics=self.metrics,
                resync=self._resync_book, channel=f"orderbook:{m}", buffer_max=self.settings.book_buffer_max)
            self.tapes[m] = TradeTape(m, self.market(m), self.emitter, self.metrics, self._recover_trades,
                                      dedup_window=self.settings.trade_dedup_window,
                                      held_max=self.settings.trade_held_max)
        await self._resume_tapes()

    async def _resume_tapes(self) -> None:
        """Each trade tape starts from its market's newest trade in Kafka (see producers.core.resume)."""
        if not self.settings.trade_resume_scan_max or self.publisher is None or self.registry is None:
            return
        keys = {market_key(self.venue, self.market(m)): m for m in self.tapes}
        try:
            newest = await newest_trades(self.settings, self.registry, self.publisher, list(keys),
                                         scan_max=self.settings.trade_resume_scan_max)
        except Exception as exc:  # Kafka or the registry away at start: go on as a first start would, loudly
            self.metrics.inc("resume_failed", "trade")
            log.warning("rabbitx: could not read the newest trades back from Kafka (%s: %s): trades made while "
                        "the producer was away can be neither recovered nor marked", type(exc).__name__, exc)
            return
        for key, event in newest.items():
            tape = self.tapes[keys[key]]
            if tape.resume(event):
                log.info("rabbitx: %s resumes after %s (newest in Kafka)", tape.market, tape.last_id)

    async def on_stop(self) -> None:
        self._cancel_refresh()
        for tape in self.tapes.values():
            await tape.close(self.settings.trade_fill_stop_timeout)
        for sync in self.books.values():
            await sync.close()
        if self._http is not None:
            await self._http.close()

    async def before_connect(self) -> None:
        assert self._http is not None
        await self.tokens.get(self._http)  # renews first when missing or known to be expired

    async def on_open(self) -> None:
        assert self._http is not None
        token = await self.tokens.get(self._http)
        reply = await self._request({"connect": {"token": token, "name": "marketpipe"}})
        err = protocol.error_of(reply)
        if err is not None:
            code, message = err
            if code == protocol.TOKEN_EXPIRED:
                self.tokens.invalidate()
                if not self.tokens.can_renew:
                    raise TerminalFeedError("rabbitx: connect refused: token expired (109) and no refresh "
                                            "token is configured to renew it")
                raise ReconnectRequested("token-expired")
            if code in protocol.TEMPORARY_REPLY_ERRORS:
                raise ReconnectRequested(f"connect-{code}")
            raise TerminalFeedError(f"rabbitx: connect refused with error {code} ({message})")
        info = reply.get("connect") or {}
        if info.get("expires") and info.get("ttl") is not None and self.settings.token_refresh_fraction is not None:
            self._schedule_refresh(float(info["ttl"]))
        replies = await asyncio.gather(*(self._request({"subscribe": {"channel": ch, "name": "marketpipe"}},
                                                       channel=ch) for ch in self.channels))
        for ch, r in zip(self.channels, replies, strict=True):
            err = protocol.error_of(r)
            if err is not None and err[0] in protocol.TEMPORARY_REPLY_ERRORS:
                raise ReconnectRequested(f"subscribe-{err[0]}")
            if err is not None and err[0] != protocol.ALREADY_SUBSCRIBED:
                raise TerminalFeedError(f"rabbitx: subscribe to {ch} refused with error {err[0]} ({err[1]})")
        self.mark_ready()

    async def on_disconnect(self, reason: str) -> None:
        self._cancel_refresh()
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(ReconnectRequested(f"disconnected ({reason})"))
                fut.exception()  # retrieved: nobody may be waiting any more
        self._pending.clear()
        for sync in self.books.values():
            await sync.reset("reconnect")

    async def on_closed(self, code: int | None, reason: str) -> None:
        if code == protocol.CONNECTION_EXPIRED:
            log.info("rabbitx: connection expired (3005): renewing the JWT before reconnecting")
            self.tokens.invalidate()

    def close_is_terminal(self, code: int | None, reason: str) -> bool:
        return protocol.is_terminal_close(code)

    # -- commands --------------------------------------------------------------------------------------
    async def _request(self, body: dict[str, Any], channel: str | None = None) -> dict[str, Any]:
        cmd_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = (fut, channel)
        await self.send({"id": cmd_id, **body})
        return await fut

    def _schedule_refresh(self, ttl: float) -> None:
        self._cancel_refresh()
        self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_after(ttl))

    def _cancel_refresh(self) -> None:
        if self._refresh_task is not None and self._refresh_task is not asyncio.current_task():
            self._refresh_task.cancel()
        self._refresh_task = None

    async def _refresh_after(self, ttl: float) -> None:
        fraction = self.settings.token_refresh_fraction or 0.75
        await asyncio.sleep(max(0.0, ttl * fraction))
        if not self.tokens.can_renew:
            log.warning("rabbitx: JWT expires in %.0fs and cannot be renewed (no refresh token)", ttl * (1 - fraction))
            return
        try:
            assert self._http is not None
            token = await self.tokens.renew(self._http)
            reply = await self._request({"refresh": {"token": token}})
        except (ReconnectRequested, asyncio.CancelledError):
            return
        except Exception as exc:  # the server will close with 3005; the reconnect renews again
            log.warning("rabbitx: token refresh failed: %r", exc)
            return
        err = protocol.error_of(reply)
        if err is not None:
            log.warning("rabbitx: refresh refused with %s; reconnecting with a new token", err)
            self.tokens.invalidate()
            if self.ws is not None:
                await self.ws.close()
            return
        self.refreshes += 1
        info = reply.get("refresh") or {}
        if info.get("expires") and info.get("ttl") is not None:
            self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_after(float(info["ttl"])))

    # -- messages --------------------------------------------------------------------------------------
    def channel_of(self, msg: Any) -> str:
        if not msg:
            return "ping"
        push = msg.get("push")
        if push is not None:
            return push.get("channel") or "-"
        pending = self._pending.get(msg.get("id"))  # type: ignore[arg-type]
        return (pending[1] or "control") if pending else "control"

    async def on_message(self, msg: Any, receive_ts: int) -> None:
        if not msg:  # {} = server ping: answer at once, then go on with the rest of the frame
            self.metrics.inc("heartbeats", "ping")
            await self.send({})
            return
        push = msg.get("push")
        if push is not None:
            channel = push["channel"]
            pub = push.get("pub")
            if pub is not None:
                route = self._routes.get(channel) or self._route(channel)
                await route[0](route[1], pub["data"], receive_ts, False)
            elif "unsubscribe" in push:
                await self._server_unsubscribed(channel, push["unsubscribe"] or {})
            return
        cmd_id = msg.get("id")
        if cmd_id is None:
            raise ValueError("message is neither a push nor a reply")
        pending = self._pending.get(cmd_id)
        if pending is None:
            raise ValueError(f"reply to unknown command id {cmd_id}")
        if pending[1] is not None and "subscribe" in msg:
            if not pending[0].done():
                # on_open learns the subscription is confirmed now: handling the data may take long (a trade
                # hole walks the REST history; a blocked publisher waits for Kafka) and must not count
                # against subscribe_timeout, or a big hole would reconnect before it is ever filled. The
                # entry stays pending until the data is handled (an inexact number re-reads this reply).
                pending[0].set_result(msg)
            try:
                await self._dispatch(pending[1], (msg["subscribe"] or {}).get("data"), receive_ts, snapshot=True)
            except InexactNumber:
                raise  # re-read exactly; the reply is resolved on that pass
            except Exception:
                self._resolve(cmd_id, msg)
                await self._bad_snapshot(pending[1])
                raise
        self._resolve(cmd_id, msg)

    async def _bad_snapshot(self, channel: str) -> None:
        """A malformed subscribe reply: a book without its snapshot must be fetched again."""
        kind, _, symbol = channel.partition(":")
        if kind == "orderbook" and symbol in self.books:
            await self.books[symbol].invalidate("bad-snapshot")

    def _resolve(self, cmd_id: int, msg: dict[str, Any]) -> None:
        pending = self._pending.pop(cmd_id, None)
        if pending is not None and not pending[0].done():
            pending[0].set_result(msg)

    async def _server_unsubscribed(self, channel: str, info: dict[str, Any]) -> None:
        code = int(info.get("code", 0))
        log.warning("rabbitx: server unsubscribed %s (%s %s)", channel, code, info.get("reason"))
        if channel.startswith("orderbook:") and channel[10:] in self.books:
            await self.books[channel[10:]].reset("unsubscribed")
        if code >= 2500:
            asyncio.get_running_loop().create_task(self._resubscribe(channel))

    async def _resubscribe(self, channel: str) -> None:
        try:
            await self._request({"subscribe": {"channel": channel, "name": "marketpipe"}}, channel=channel)
        except ReconnectRequested:
            pass

    async def _dispatch(self, channel: str, data: Any, receive_ts: int, *, snapshot: bool) -> None:
        route = self._routes.get(channel)
        if route is None:
            route = self._route(channel)
        await route[0](route[1], data, receive_ts, snapshot)

    def _route(self, channel: str) -> tuple[Any, str]:
        kind, _, symbol = channel.partition(":")
        if kind == "orderbook" and symbol in self.books:
            route: tuple[Any, str] = (self._on_book, symbol)
        elif kind == "trade" and symbol in self.tapes:
            route = (self._on_trades, symbol)
        elif kind == "market" and symbol in self.settings.markets:
            route = (self._on_market, symbol)
        elif channel.startswith("account@") and self.account is not None:
            route = (self._on_account, channel)
        else:
            raise ValueError(f"unexpected channel {channel!r}")
        self._routes[channel] = route
        return route

    async def _on_book(self, symbol: str, data: dict[str, Any], receive_ts: int, snapshot: bool) -> None:
        """``{"market_id":"BTC-USD","bids":[["64999.5","1.2"],...],"asks":[...],"sequence":9097270,
        "timestamp":1677226216475971}``; same shape for the snapshot (sides ascending) and the deltas."""
        sync = self.books[symbol]
        seq = data["sequence"]
        if type(seq) is not int:
            seq = int(seq)
        ts = data.get("timestamp")
        exchange_ts = receive_ts if ts is None else to_micros(ts)
        if snapshot:
            await sync.snapshot(data.get("bids") or [], data.get("asks") or [], sequence=seq,
                                exchange_ts=exchange_ts, receive_ts=receive_ts, reason="resubscribe")
        else:
            await sync.delta(data.get("bids") or [], data.get("asks") or [], sequence=seq,
                             exchange_ts=exchange_ts, receive_ts=receive_ts)

    async def _resync_book(self, sync: BookSynchronizer, reason: str) -> None:
        symbol = sync.venue_symbol
        if self.settings.book_resync == "rest" and self.settings.rest_url and self._http is not None:
            url = f"{self.settings.rest_url}/markets/orderbook"
            params = {"market_id": symbol, "p_limit": str(self.settings.rest_snapshot_depth)}
            async with self._http.get(url, params=params) as resp:
                resp.raise_for_status()
                data = loads_exact(await resp.read())["result"][0]
            await sync.snapshot(data.get("bids") or [], data.get("asks") or [], sequence=int(data["sequence"]),
                                exchange_ts=to_micros(data["timestamp"]), receive_ts=now_micros(), reason=reason)
            return
        if not self.connected:
            return  # the resubscribe after the reconnect brings a snapshot
        channel = f"orderbook:{symbol}"
        try:
            await self._request({"unsubscribe": {"channel": channel}})
            reply = await self._request({"subscribe": {"channel": channel, "name": "marketpipe"}}, channel=channel)
        except ReconnectRequested:
            return  # connection lost meanwhile: the reconnect resubscribes
        err = protocol.error_of(reply)
        if err is not None:
            raise RuntimeError(f"resubscribe {channel} refused: {err}")

    async def _on_trades(self, symbol: str, data: Any, receive_ts: int, snapshot: bool = False) -> None:
        """``[{"id":"ETH-USD-13230788","liquidation":false,"market_id":"ETH-USD","price":"1751.5",
        "size":"0.061","taker_side":"short","timestamp":1677222281960306}, ...]``"""
        await self.tapes[symbol].accept(data if isinstance(data, list) else [data], receive_ts)

    async def _recover_trades(self, symbol: str, after: int, before: int) -> HistoryWindow:
        """The REST trade history between two trade numbers of ``symbol`` (a ``TradeTape`` hole)."""
        if not self.settings.rest_url or self._http is None:
            raise RuntimeError("no REST url configured: trades cannot be recovered")
        return await trades_between(self._http, self.settings.rest_url, symbol, after, before,
                                    page_limit=self.settings.trade_recovery_page_limit,
                                    max_pages=self.settings.trade_recovery_max_pages,
                                    path=self.settings.trade_history_path)

    async def _on_market(self, symbol: str, data: dict[str, Any], receive_ts: int, snapshot: bool) -> None:
        """Snapshot: the full market object; pushes: only the changed fields (merged, empty = unchanged)."""
        assert self.emitter is not None
        state = {} if snapshot else dict(self.market_state.get(symbol, {}))
        merge_partial(state, data)
        fields = ticker_fields(state)
        ts = state.get("last_update_time")
        await self.emitter.ticker(self.market(symbol), symbol, exchange_ts=to_micros(ts) if ts else receive_ts,
                                  receive_ts=receive_ts, channel=f"market:{symbol}", **fields)
        self.market_state[symbol] = state

    async def _on_account(self, channel: str, data: dict[str, Any], receive_ts: int, snapshot: bool) -> None:
        assert self.emitter is not None and self.account is not None
        for change in self.account.apply(data, snapshot=snapshot):
            market = "*" if change.market == "*" else self.market(change.market)
            event_id = f"{self.venue}:{self.account.profile_id}:{change.event_id}" if change.event_id else None
            await self.emitter.account(self.account.profile_id, kind=change.kind, market=market,
                                       venue_symbol=change.market, exchange_ts=change.exchange_ts or receive_ts,
                                       receive_ts=receive_ts, payload=change.payload, event_id=event_id,
                                       channel=channel)
            self.account.mark_published(change)

"""EconiaFeed: Econia DSS (postgres-websockets + PostgREST) -> Trades and AccountEvents in Kafka.

Protocol (venues.md section 3) and what it forced:
- No subscribe messages: an HS256 JWT in the URL path carries ``mode`` and ``channels``; a bad token is an
  HTTP 400 on the upgrade (terminal: reconnecting cannot fix it), and the server closes with 3001
  "JWT expired" at ``exp`` (we mint a fresh token and reconnect; with a pre-issued token that is terminal).
- One frame per notification, ``{"channel", "payload": row}``; bare JSON integers: u128 order ids do not fit
  orjson's 64-bit integers (it returns floats), so such frames are re-parsed with ``json`` (exact ints), ISO times, ``true`` = ASK, prices in ticks per lot and sizes in lots (converted with each
  market's ``/markets`` parameters).
- Fills arrive twice (maker and taker handles): see ``normalize``.
- No snapshots, no sequence numbers, no replay: after every reconnect the gap is backfilled from PostgREST
  by ``(txn_version, event_idx)``. While a backfill runs, live notifications are buffered and replayed
  after it; a window of recently processed keys makes the overlap free of duplicates.
- No book channel: L2 books are derived from the order events (``book.EconiaBooks``), from a baseline of
  open orders read at a known event key; the backfill keeps them exact through reconnects.
- postgres-websockets sends only WS pings and quiet markets send nothing, so the frame watchdog is off by
  default (the client's WS pings find dead connections).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import aiohttp
import jwt
from websockets.exceptions import InvalidStatus

from producers.core.errors import InexactNumber, TerminalFeedError
from producers.core.feed import Feed
from producers.core.numbers import now_micros
from producers.econia.book import EconiaBooks
from producers.econia.normalize import EconiaNormalizer, UnknownMarket, UnknownOrder, iso_micros
from producers.econia.rest import TABLES, DssRest, Key
from producers.econia.settings import EconiaSettings
from producers.econia.units import MarketParams

log = logging.getLogger(__name__)
Live = tuple[str, dict[str, Any], int]
BOOK_CHANNELS = {"place_limit_order_event", "change_order_size_event", "cancel_order_event", "fill_event"}


class KeyWindow:
    """The last ``size`` event keys seen (set + FIFO)."""

    def __init__(self, size: int) -> None:
        self._set: set[Key] = set()
        self._fifo: deque[Key] = deque()
        self._size = size

    def __contains__(self, key: Key) -> bool:
        return key in self._set

    def add(self, key: Key) -> None:
        if key in self._set:
            return
        self._set.add(key)
        self._fifo.append(key)
        if len(self._fifo) > self._size:
            self._set.discard(self._fifo.popleft())


def event_key(row: dict[str, Any]) -> Key:
    txn, idx = row.get("txn_version"), row.get("event_idx")
    if type(txn) is not int or type(idx) is not int:
        raise ValueError(f"row without integer txn_version/event_idx: {txn!r}/{idx!r}")
    return txn, idx


class EconiaFeed(Feed):
    venue = "econia"

    def __init__(self, settings: EconiaSettings | None = None, **kwargs: Any) -> None:
        settings = settings or EconiaSettings()
        super().__init__(settings, **kwargs)
        self.settings: EconiaSettings = settings
        unknown = set(settings.econia_channels) - set(TABLES) - {"updated_limit_order"}
        if unknown:
            raise ValueError(f"econia: unsupported channels {sorted(unknown)}")
        self.normalizer = EconiaNormalizer({})
        self._handlers = {
            "fill_event": self.normalizer.fill,
            "place_limit_order_event": self.normalizer.place_limit_order,
            "change_order_size_event": self.normalizer.change_order_size,
            "cancel_order_event": self.normalizer.cancel_order,
            "updated_limit_order": self.normalizer.updated_limit_order,
        }
        self._market_filter = settings.market_ids()
        self._seen = KeyWindow(settings.econia_dedup_window)
        start = settings.econia_start_txn_version
        self._floor: Key | None = None if start is None else (start, 2**62)  # backfill only after this
        self._cursor: Key | None = self._floor  # highest key processed
        self._live: list[Live] | None = None  # buffer while a backfill runs
        self._live_overflow = False
        self._catch_up_task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.rest: DssRest | None = None
        self.books: EconiaBooks | None = None
        self.backfills = 0
        self.backfilled = 0  # events recovered from REST (missed live)
        self.tokens_minted = 0

    # -- connection ------------------------------------------------------------------------------
    def url(self) -> str:
        return f"{self.settings.ws_url.rstrip('/')}/{self._token()}"

    def _token(self) -> str:
        s = self.settings
        if s.econia_jwt_secret is not None:
            claims: dict[str, Any] = {"mode": "r", "channels": list(s.econia_channels)}
            if s.econia_token_ttl is not None:
                claims["exp"] = int(time.time() + s.econia_token_ttl)
            self.tokens_minted += 1
            return jwt.encode(claims, s.econia_jwt_secret.get_secret_value(), algorithm="HS256")
        if s.api_token is not None:
            return s.api_token.get_secret_value()
        raise TerminalFeedError("econia: no credentials: set MARKETPIPE_ECONIA_JWT_SECRET (the DSS PGWS_JWT_SECRET) "
                                "or MARKETPIPE_API_TOKEN (a pre-issued token with mode and channels claims)")

    def connect_error_is_terminal(self, exc: BaseException) -> bool:
        if isinstance(exc, InvalidStatus) and exc.response.status_code == 400:
            body = bytes(exc.response.body or b"").decode("utf-8", "replace").strip()
            raise TerminalFeedError(f"econia refused the token (HTTP 400 {body!r}): check the JWT secret or token, "
                                    f"its 'mode' claim and its 'channels' claim {self.settings.econia_channels}")
        return False

    def close_is_terminal(self, code: int | None, reason: str) -> bool:
        return code == 3001 and self.settings.econia_jwt_secret is None  # a pre-issued token cannot be renewed

    async def on_closed(self, code: int | None, reason: str) -> None:
        if code == 3001:
            log.info("econia: token expired (%s); reconnecting with a fresh one", reason)

    async def on_start(self) -> None:
        s = self.settings
        if not s.rest_url:
            raise TerminalFeedError("econia: MARKETPIPE_REST_URL (DSS PostgREST) is required for market "
                                    "parameters and gap backfill")
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        self.rest = DssRest(s.rest_url, self._http, page=s.econia_backfill_page)
        await self._refresh_markets()
        if s.econia_book:
            if BOOK_CHANNELS <= set(s.econia_channels):
                assert self.emitter is not None
                self.books = EconiaBooks(self.venue, self.emitter.book, self.metrics)
            else:
                log.warning("econia: books disabled: they need the channels %s", sorted(BOOK_CHANNELS))

    async def on_stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def on_open(self) -> None:
        self._live = []
        self._live_overflow = False
        self._catch_up_task = asyncio.create_task(self._catch_up(), name="econia-backfill")

    async def on_disconnect(self, reason: str) -> None:
        if self._catch_up_task is not None:
            self._catch_up_task.cancel()
            await asyncio.gather(self._catch_up_task, return_exceptions=True)
            self._catch_up_task = None
        self._live = None  # whatever was buffered is re-read from REST after the reconnect

    def channel_of(self, msg: Any) -> str:
        return msg.get("channel") or "-"

    # -- messages --------------------------------------------------------------------------------
    async def on_message(self, msg: Any, receive_ts: int) -> None:
        channel, row = msg["channel"], msg["payload"]
        if not isinstance(row, dict):
            raise ValueError(f"{channel}: payload is not a row: {row!r}")
        for value in row.values():
            if type(value) is float:  # orjson turns integers beyond 64 bits (u128 order ids) into floats:
                raise InexactNumber(f"{channel}: {value!r}")  # the core re-parses the line exactly
        if channel != "updated_limit_order":
            event_key(row)
        if self._live is not None:
            if len(self._live) >= self.settings.econia_live_buffer_max:
                self._live.clear()  # REST has them: the catch-up loop runs the backfill again
                self._live_overflow = True
            else:
                self._live.append((channel, row, receive_ts))
            return
        await self._process(channel, row, receive_ts)

    async def _process(self, channel: str, row: dict[str, Any], receive_ts: int, *, backfill: bool = False) -> None:
        key = None if channel == "updated_limit_order" else event_key(row)
        if key is not None:
            if key in self._seen or (backfill and self._floor is not None and key <= self._floor):
                self.metrics.inc("stale", channel)
                return
            self._seen.add(key)  # before handling: a row that fails is counted once, not again on backfill
            if self._cursor is None or key > self._cursor:
                self._cursor = key
        if channel == "market_registration_event":
            await self._refresh_markets()
            params = self.normalizer.markets.get(row.get("market_id"))  # type: ignore[arg-type]
            if self.books is not None and key is not None and params is not None and self.books.covers(key) \
                    and (not self._market_filter or params.market_id in self._market_filter):
                await self.books.new_market(params, key, receive_ts)
            return
        handler = self._handlers.get(channel)
        if handler is None:
            raise ValueError(f"notification on unexpected channel {channel!r}")
        if self._market_filter and row.get("market_id") not in self._market_filter:
            return
        try:
            emissions = handler(row, receive_ts)
        except UnknownMarket:
            await self._refresh_markets()
            emissions = handler(row, receive_ts)
        except UnknownOrder as exc:
            assert self.rest is not None
            order = await self.rest.limit_order(exc.market_id, exc.order_id)
            if order is None:
                raise
            self.normalizer.seed_order(order)
            emissions = handler(row, receive_ts)
        assert self.emitter is not None
        for kind, kw in emissions:
            if kind == "trade":
                await self.emitter.trade(**kw)
            else:
                await self.emitter.account(**kw)
        if self.books is not None and key is not None and emissions and self.books.covers(key):
            await self._book_event(channel, row, key, receive_ts)
        if backfill:
            self.backfilled += 1
            self.metrics.inc("gaps", channel)  # an event the live stream lost, recovered from REST

    async def _book_event(self, channel: str, row: dict[str, Any], key: Key, receive_ts: int) -> None:
        assert self.books is not None
        m = self.normalizer.market(row["market_id"])
        ts = iso_micros(row["time"])
        apply = {"place_limit_order_event": self.books.place, "change_order_size_event": self.books.change,
                 "cancel_order_event": self.books.cancel, "fill_event": self.books.fill}[channel]
        await apply(m, row, key, ts, receive_ts)

    async def _process_counted(self, channel: str, row: dict[str, Any], receive_ts: int, *, backfill: bool) -> None:
        try:
            await self._process(channel, row, receive_ts, backfill=backfill)
        except (ValueError, KeyError, TypeError, LookupError) as exc:
            self.metrics.inc("parse_errors", channel)
            log.warning("econia: skipped %s row (%s: %s): %.200s", channel, type(exc).__name__, exc, row)

    # -- backfill --------------------------------------------------------------------------------
    async def _catch_up(self) -> None:
        """Backfill from REST, then replay what arrived live meanwhile; then mark the feed ready."""
        delay = 0.2
        while True:
            try:
                await self._backfill()
                break
            except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as exc:
                log.warning("econia: backfill failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        while True:
            assert self._live is not None
            if self._live_overflow:
                self._live_overflow = False
                await self._backfill()
                continue
            if not self._live:
                self._live = None
                break
            batch, self._live = self._live, []
            for channel, row, receive_ts in batch:
                await self._process_counted(channel, row, receive_ts, backfill=False)
        self.mark_ready()

    async def _backfill(self) -> None:
        assert self.rest is not None
        channels = [c for c in self.settings.econia_channels if c in TABLES]
        if self.books is not None and self.books.floor is None:
            head = await self._book_baseline(channels)
            if self._cursor is None:
                self._floor = self._cursor = head
                log.info("econia: starting live after txn_version %s (books from open orders)", head[0])
                return
        if self._cursor is None:  # first start, live from now: remember where "now" is
            self._floor = self._cursor = await self._head(channels)
            log.info("econia: starting live after txn_version %s", self._floor[0])
            return
        since = self._cursor[0]
        tables = await asyncio.gather(*(self.rest.rows_from(c, since, self._market_filter or None) for c in channels))
        rows = sorted(((event_key(r), c, r) for c, rs in zip(channels, tables, strict=True) for r in rs),
                      key=lambda t: t[0])
        self.backfills += 1
        self.metrics.inc("resyncs", "backfill")
        now = now_micros()
        for _, channel, row in rows:
            await self._process_counted(channel, row, now, backfill=True)
        log.info("econia: backfill from txn_version %d: %d rows read, %d recovered so far", since, len(rows),
                 self.backfilled)

    async def _head(self, channels: list[str]) -> Key:
        assert self.rest is not None
        heads = [h for h in await asyncio.gather(*(self.rest.head(c) for c in channels)) if h is not None]
        return max(heads, default=(0, -1))

    async def _book_baseline(self, channels: list[str]) -> Key:
        """Open orders read between two equal head keys (consistent with that key) -> SNAPSHOT per market."""
        assert self.rest is not None and self.books is not None
        for _ in range(10):
            before = await self._head(channels)
            orders = await self.rest.open_orders(self._market_filter or None)
            after = await self._head(channels)
            if before == after:
                break
        else:
            raise RuntimeError("econia: the order tables kept moving while reading open orders")
        for row in orders:
            if row.get("market_id") in self.normalizer.markets:
                self.normalizer.seed_order(row)
        markets = {mid: p for mid, p in self.normalizer.markets.items()
                   if not self._market_filter or mid in self._market_filter}
        await self.books.snapshot(markets, orders, before, now_micros())
        return before

    async def _refresh_markets(self) -> None:
        assert self.rest is not None
        for row in await self.rest.markets():
            try:
                params = MarketParams.from_row(row)
            except (KeyError, ValueError) as exc:
                log.warning("econia: unusable /markets row (%s): %.200s", exc, row)
                continue
            self.normalizer.markets[params.market_id] = params

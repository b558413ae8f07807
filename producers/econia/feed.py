"""EconiaFeed: Econia DSS (postgres-websockets + PostgREST) -> Trades, AccountEvents and L2 books in Kafka.

Protocol (venues.md section 3) and what it forced:
- No subscribe messages: an HS256 JWT in the URL path carries ``mode`` and ``channels``; a bad token is an
  HTTP 400 on the upgrade (terminal: reconnecting cannot fix it). The server closes with 3001 "JWT expired";
  with the DSS secret we mint a fresh token and reconnect; with a pre-issued token we reconnect with it
  while its ``exp`` is still ahead (or it has none), and stop with a clear error only once it is really
  past its ``exp`` (nothing can mint a new one).
- One frame per notification, ``{"channel", "payload": row}``; bare JSON integers: u128 order ids do not fit
  orjson's 64-bit integers (it returns floats), so such frames are re-parsed with ``json`` (exact ints), ISO
  times, ``true`` = ASK, prices in ticks per lot and sizes in lots (converted with each market's
  ``/markets`` parameters). Fills arrive twice (maker and taker handles): see ``normalize``.
- **Venue order.** Notifications carry no sequence and may arrive out of ``(txn_version, event_idx)``
  order across transactions. Every event waits in a ``ReorderBuffer`` (at most ``econia_reorder_seconds``
  after it arrived, at most ``econia_reorder_events`` events) and is applied and published in key order,
  whole transactions at a time; the derived books publish one DELTA per market and transaction.
- **Nothing lost silently.** Notifications are fire-and-forget (a lost one is never re-sent, even on a
  healthy socket), so every ``econia_reconcile_seconds`` (and after every reconnect) the feed reads the
  event tables from PostgREST over a trailing window (from the key published ``econia_reconcile_lookback``
  seconds ago, or the last reconciled head if older), deduplicated by ``(txn_version, event_idx)``. A lost
  notification is applied by the first reconcile that starts after its commit: at most
  ``econia_reconcile_seconds`` + two reconcile durations (+ the reorder window when it is newer than what
  was published) after it was committed. Until then the derived book may miss it: that is the one window in
  which a published level can be wrong (the venue gives no sequence to notice the loss sooner). Rows newer than what
  was published join the reorder buffer; everything up to the REST head read before the reconcile is
  complete and is released at once.
- **Late events** (older than what was already published: delayed beyond the window, or recovered by a
  reconcile) are still published once (trades and FILLs are per fill; an ORDER record as it was), then:
  the book applies them in place where its per-order model allows (``EconiaBooks.apply``: an order's level
  share depends only on that order's events) and publishes a correction DELTA; where it does not (the
  order already left the book, or newer events of it were applied), the market is resynchronized
  (RESET at once, then SNAPSHOT from ``/limit_orders`` read between two equal REST heads), and every order that got
  an event older than its last applied one is restated from its ``/limit_orders`` row (a final ORDER
  record with the venue's state). The derived books are checked after every transaction: a model error
  (unknown order, negative level) or a crossed result resynchronizes the market instead of publishing.
- **Taker orders** (``place_market_order_event``, ``place_swap_order_event``) are keyed event tables like the
  others: ordered, deduplicated, reconciled; ORDER records per place / taker fill / cancel (see
  ``normalize``). A ``cancel_order_event`` of a taker order (its unfilled rest) never touches the book.
- ``recognized_market_event`` (keyed, reconciled): counted, logged, its lot/tick sizes checked against
  ``/markets`` (reloaded when the market is new or they differ).
- **``updated_limit_order`` is not on by default** (accepted when listed in ``econia_channels``). Its payload is
  the ``aggregator.user_history`` row after an UPDATE: it has no ``(txn_version, event_idx)``, so it cannot
  join the venue order or the dedup window; the aggregator writes it in batches behind the event tables, so it
  can arrive after newer keyed events and move a consumer's view of the order backwards; PostgREST keeps only
  each order's current row (``/orders``), so a lost notification's intermediate state cannot be backfilled,
  and a backfill by diffing current rows would give different records depending on when it ran (no stable
  ``event_id``). Every change it reports is already published from the keyed events, so turning it on would
  publish each change twice under two ids. ``new_limit_order``/``new_market_order``/``new_swap_order``:
  their triggers were dropped by the 2023-11-11 ``optimizations`` migration; if a token lists them (an older
  DSS) their rows are counted and logged, not published (no fill state; the keyed place events carry it).
- postgres-websockets sends only WS pings and quiet markets send nothing, so the frame watchdog is off by
  default (the client's WS pings find dead connections).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jwt
from websockets.exceptions import InvalidStatus

from producers.core.book import BookSynchronizer
from producers.core.errors import InexactNumber, TerminalFeedError
from producers.core.feed import Feed
from producers.core.numbers import now_micros
from producers.econia.book import EconiaBooks
from producers.econia.normalize import EconiaNormalizer, UnknownMarket, UnknownOrder, iso_micros
from producers.econia.reorder import ReorderBuffer
from producers.econia.rest import STATE_CHANNELS, TABLES, DssRest, Key
from producers.econia.settings import EconiaSettings
from producers.econia.units import MarketParams

log = logging.getLogger(__name__)
BOOK_CHANNELS = {"place_limit_order_event", "change_order_size_event", "cancel_order_event", "fill_event"}


class KeyWindow:
    """The last ``size`` event keys seen (set + FIFO)."""

    def __init__(self, size: int) -> None:
        self._set: set[Key] = set()
        self._fifo: deque[Key] = deque()
        self._size = size

    def __contains__(self, key: Key) -> bool:
        return key in self._set

    def discard(self, key: Key) -> None:
        self._set.discard(key)  # its FIFO slot stays and expires harmlessly

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


def token_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWT (read without checking the signature: only the server can), or None."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) else None


Event = tuple[str, dict[str, Any], int]  # channel, row, receive_ts


class EconiaFeed(Feed):
    venue = "econia"

    def __init__(self, settings: EconiaSettings | None = None, **kwargs: Any) -> None:
        settings = settings or EconiaSettings()
        super().__init__(settings, **kwargs)
        self.settings: EconiaSettings = settings
        unknown = set(settings.econia_channels) - set(TABLES) - STATE_CHANNELS
        if unknown:
            raise ValueError(f"econia: unsupported channels {sorted(unknown)}")
        self.normalizer = EconiaNormalizer({})
        self._handlers = {
            "fill_event": self.normalizer.fill,
            "place_limit_order_event": self.normalizer.place_limit_order,
            "change_order_size_event": self.normalizer.change_order_size,
            "cancel_order_event": self.normalizer.cancel_order,
            "place_market_order_event": self.normalizer.place_market_order,
            "place_swap_order_event": self.normalizer.place_swap_order,
            "updated_limit_order": self.normalizer.updated_limit_order,
        }
        self._market_filter = settings.market_ids()
        self._seen = KeyWindow(settings.econia_dedup_window)
        start = settings.econia_start_txn_version
        self._floor: Key | None = None if start is None else (start, 2**62)  # nothing at or below is published
        self._cursor: Key | None = None  # highest key applied
        self._reorder = ReorderBuffer(settings.econia_reorder_seconds, settings.econia_reorder_events)
        self._lock = asyncio.Lock()  # one writer of the ordered stream at a time
        self._synced = False  # baseline read and caught up since the last (re)connect: time releases allowed
        self._marks: deque[tuple[float, int]] = deque()  # (monotonic, published txn) for the trailing window
        self._catch_up_task: asyncio.Task[None] | None = None
        self._repair_after = 0.0  # after a failed REST repair, not before this (monotonic)
        self._covered_through: int | None = None  # head txn of the last successful reconcile
        self._loops: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self.rest: DssRest | None = None
        self.books: EconiaBooks | None = None
        self.backfills = 0  # reconciles run (timer + reconnect)
        self.backfilled = 0  # events recovered from REST (never seen live when read)
        self.late_events = 0  # events applied after a higher key was published
        self.book_resyncs = 0  # markets resynchronized (RESET + SNAPSHOT from REST)
        self.restated = 0  # orders restated from REST after an out-of-order event
        self.tokens_minted = 0
        self.token_reconnects = 0  # closes 3001 answered by a reconnect
        self.recognized_markets = 0  # recognized_market_event rows applied
        self.legacy_order_rows = 0  # new_limit/market/swap_order rows (pre-2023-11-11 DSS): counted, not published

    @property
    def reordered(self) -> int:
        """Events that arrived after a higher key and were put back in order by the reorder window."""
        return self._reorder.reordered

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
        """3001 "JWT expired": reconnect, unless the pre-issued token is really past its ``exp`` and no secret
        can mint another (then stop, saying so)."""
        s = self.settings
        if code != 3001 or s.econia_jwt_secret is not None or s.api_token is None:
            return False
        exp = token_exp(s.api_token.get_secret_value())
        if exp is not None and exp <= time.time():
            when = datetime.fromtimestamp(exp, UTC).isoformat()
            raise TerminalFeedError(
                f"econia: the pre-issued token (MARKETPIPE_API_TOKEN) expired at {when} (server closed with 3001 "
                f"{reason!r}) and nothing can mint a new one: issue a new token or set MARKETPIPE_ECONIA_JWT_SECRET")
        return False

    async def on_closed(self, code: int | None, reason: str) -> None:
        if code == 3001:
            self.token_reconnects += 1
            how = "a fresh one" if self.settings.econia_jwt_secret is not None else "the same pre-issued token"
            log.info("econia: server closed with 3001 (%s); reconnecting with %s", reason, how)

    async def on_start(self) -> None:
        s = self.settings
        if not s.rest_url:
            raise TerminalFeedError("econia: MARKETPIPE_REST_URL (DSS PostgREST) is required for market "
                                    "parameters, reconciliation and book baselines")
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        self.rest = DssRest(s.rest_url, self._http, page=s.econia_backfill_page)
        await self._refresh_markets()
        if s.econia_book:
            if BOOK_CHANNELS <= set(s.econia_channels):
                assert self.emitter is not None
                self.books = EconiaBooks(self.venue, self.emitter.book, self.metrics, resync=self._book_invalid)
            else:
                log.warning("econia: books disabled: they need the channels %s", sorted(BOOK_CHANNELS))
        self._loops = [asyncio.create_task(self._release_loop(), name="econia-release"),
                       asyncio.create_task(self._reconcile_loop(), name="econia-reconcile")]

    async def on_stop(self) -> None:
        for task in [*self._loops, *([self._catch_up_task] if self._catch_up_task else [])]:
            task.cancel()
        await asyncio.gather(*self._loops, *([self._catch_up_task] if self._catch_up_task else []),
                             return_exceptions=True)
        self._loops = []
        self._catch_up_task = None
        if self.emitter is not None and len(self._reorder) and self._floor is not None:
            async with self._lock:  # what arrived is venue truth: out in key order before the outputs stop
                await self._release(self._reorder.drain())
        if self.books is not None:
            for sync in self.books.syncs.values():
                await sync.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def on_open(self) -> None:
        self._synced = False
        self._catch_up_task = asyncio.create_task(self._catch_up(), name="econia-catch-up")

    async def on_disconnect(self, reason: str) -> None:
        self._synced = False  # events missed meanwhile may sort before the buffered ones: hold them
        if self._catch_up_task is not None:
            self._catch_up_task.cancel()
            await asyncio.gather(self._catch_up_task, return_exceptions=True)
            self._catch_up_task = None

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
        if channel not in self._handlers and channel not in TABLES and channel not in STATE_CHANNELS:
            raise ValueError(f"notification on unexpected channel {channel!r}")
        if channel in STATE_CHANNELS - {"updated_limit_order"}:  # user_history_limit/market/swap insert rows
            self.legacy_order_rows += 1
            self.metrics.inc("legacy_order_rows", channel)
            if self.legacy_order_rows == 1:
                log.info("econia: %s row (a DSS from before the 2023-11-11 optimizations migration): counted, not "
                         "published; its order comes from the keyed place_*_order_event", channel)
            return
        if channel == "updated_limit_order":  # a state row without an event key: published as it comes
            async with self._lock:
                await self._apply(None, (channel, row, receive_ts), late=False)
            return
        key = event_key(row)
        if self._known(key):
            self.metrics.inc("stale", channel)
            return
        released = self._reorder.released
        if released is not None and key <= released:  # older than what is out: apply now, then repair
            async with self._lock:
                await self._apply_late([(key, (channel, row, receive_ts))])
            return
        self._reorder.add(key, (channel, row, receive_ts), time.monotonic())
        if len(self._reorder) > self._reorder.max_events and self._floor is not None:
            async with self._lock:
                await self._release(self._reorder.due(time.monotonic()))
                await self._repair()

    def _known(self, key: Key) -> bool:
        return key in self._seen or key in self._reorder or (self._floor is not None and key <= self._floor)

    # -- ordered application ---------------------------------------------------------------------
    async def _release_loop(self) -> None:
        """Releases what the reorder window lets go, in key order (time bound)."""
        tick = min(max(self.settings.econia_reorder_seconds / 4, 0.01), 0.25)
        while True:
            await asyncio.sleep(tick)
            if not self._synced or not len(self._reorder):
                continue
            try:
                async with self._lock:
                    await self._release(self._reorder.due(time.monotonic()))
                    await self._repair()
            except Exception:  # never let the ordered stream stop: log and go on with the next tick
                log.exception("econia: releasing events failed")

    async def _release(self, held: list[tuple[Key, Event]]) -> None:
        """Apply events in key order; the books publish one state per transaction."""
        for i, (key, event) in enumerate(held):
            await self._apply_counted(key, event, late=False)
            if self.books is not None and (i + 1 == len(held) or held[i + 1][0][0] != key[0]):
                await self.books.commit(key)

    async def _apply_late(self, held: list[tuple[Key, Event]]) -> None:
        """Events older than what is already published (caller holds the lock)."""
        for key, event in sorted(held, key=lambda h: h[0]):
            self.late_events += 1
            self.metrics.inc("late", event[0])
            await self._apply_counted(key, event, late=True)
        if self.books is not None:
            await self.books.commit_late()
        await self._repair()

    async def _apply_counted(self, key: Key, event: Event, *, late: bool) -> None:
        try:
            await self._apply(key, event, late=late)
        except (ValueError, KeyError, TypeError, LookupError) as exc:
            self.metrics.inc("parse_errors", event[0])
            log.warning("econia: skipped %s row (%s: %s): %.200s", event[0], type(exc).__name__, exc, event[1])
        except (aiohttp.ClientError, TimeoutError) as exc:  # the order lookup of an unknown order failed
            self.metrics.inc("rest_errors", event[0])
            if key is not None:
                self._seen.discard(key)  # nothing was published: the next reconcile reads it again
            log.warning("econia: %s row %s deferred to the next reconcile, PostgREST failed (%s)", event[0], key, exc)

    async def _apply(self, key: Key | None, event: Event, *, late: bool) -> None:
        channel, row, receive_ts = event
        if key is not None:
            if key in self._seen or (self._floor is not None and key <= self._floor):
                self.metrics.inc("stale", channel)
                return
            self._seen.add(key)  # before handling: a row that fails is counted once, not again on reconcile
            if self._cursor is None or key > self._cursor:
                self._cursor = key
        if channel == "market_registration_event":
            await self._refresh_markets()
            params = self.normalizer.markets.get(row.get("market_id"))  # type: ignore[arg-type]
            if self.books is not None and key is not None and params is not None \
                    and (not self._market_filter or params.market_id in self._market_filter):
                await self.books.new_market(params, key, receive_ts)
            return
        if channel == "recognized_market_event":
            await self._recognized_market(row)
            return
        if self._market_filter and row.get("market_id") not in self._market_filter:
            return
        handler = self._handlers[channel]
        try:
            emissions = handler(row, receive_ts)
        except UnknownMarket:
            await self._refresh_markets()
            emissions = handler(row, receive_ts)
        except UnknownOrder as exc:
            assert self.rest is not None
            order = await self.rest.limit_order(exc.market_id, exc.order_id)
            if order is not None:
                self.normalizer.seed_order(order)
                emissions = handler(row, receive_ts)
            elif channel == "cancel_order_event":  # not a limit order: a taker's rest, its place still to come
                self.normalizer.defer_taker_cancel(row)
                emissions = []
            else:
                raise
        assert self.emitter is not None
        for kind, kw in emissions:
            if kind == "trade":
                await self.emitter.trade(**kw)
            else:
                await self.emitter.account(**kw)
        if self.books is None or key is None or not emissions or channel not in BOOK_CHANNELS:
            return
        if channel == "cancel_order_event" and self.normalizer.is_taker_order(row):
            return  # a market order's or swap's cancel (its unfilled rest) never rested on the book
        mid = row["market_id"]
        if not self.books.covers(mid, key):
            return  # already in the market's snapshot, or the market waits for one
        self.books.apply(channel, self.normalizer.market(mid), row, key, iso_micros(row["time"]), receive_ts,
                         late=late)

    # -- repair: book resyncs and order restates -------------------------------------------------
    async def _book_invalid(self, sync: BookSynchronizer, reason: str) -> None:
        """BookSynchronizer resync callback (a crossed derived book): resync that market from REST."""
        assert self.books is not None
        for mid, s in self.books.syncs.items():
            if s is sync:
                self.books.broken.add(mid)
        async with self._lock:
            await self._repair()

    async def _repair(self) -> None:
        """Resync broken books and restate orders whose events came out of order (caller holds the lock).

        Reads between two equal REST heads ``H``: first releases every buffered event up to ``H`` (complete:
        nothing older can still come), then reads ``/limit_orders``; the SNAPSHOT has sequence ``H`` and the
        restated orders are their state as of ``H``."""
        books, norm = self.books, self.normalizer
        if not (books is not None and books.broken) and not norm.restate_needed:
            return
        if books is not None:
            for mid in books.broken:  # downstream must not keep a book we know is wrong while we read REST
                sync = books.syncs.get(mid)
                if sync is not None and sync.synced:
                    await sync.reset("late")
        if time.monotonic() < self._repair_after:
            return
        try:
            await self._repair_from_rest()
            self._repair_after = 0.0 if books is None or not books.broken else time.monotonic() + 0.5
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError, LookupError) as exc:
            self._repair_after = time.monotonic() + 0.5
            log.warning("econia: book resync / order restate failed (%s); retrying", exc)

    async def _repair_from_rest(self) -> None:
        books, norm = self.books, self.normalizer
        assert self.rest is not None
        channels = self._rest_channels()
        for _ in range(20):
            before = await self._head(channels)
            await self._release(self._reorder.release_through(before))
            broken = set(books.broken) if books is not None else set()
            wanted = sorted(norm.restate_needed)
            orders = await self.rest.open_orders(broken) if broken else []
            rows = [r for mid, oid in wanted if (r := await self.rest.limit_order(mid, oid)) is not None]
            after = await self._head(channels)
            if before == after or not await self._touched_between(before, after, broken, set(wanted)):
                break  # nothing we read changed meanwhile: it is the state as of ``before``
        else:
            raise RuntimeError("econia: the markets being resynced kept changing while reading their state")
        now = now_micros()
        if books is not None and broken:
            markets = {mid: self.normalizer.market(mid) for mid in broken}
            log.warning("econia: resynchronizing books %s from REST at txn_version %d", sorted(markets), before[0])
            await books.snapshot(markets, orders, before, now, reason="late")
            self.book_resyncs += len(markets)
            self.metrics.inc("resyncs", "book", len(markets))
        assert self.emitter is not None
        for row in rows:
            for _, kw in norm.restate(row, before, now):
                await self.emitter.account(**kw)
                self.restated += 1
        for order in wanted:  # gone from REST (no row): nothing to restate
            norm.restate_needed.pop(order, None)

    async def _touched_between(self, before: Key, after: Key, markets: set[int], orders: set[tuple[int, int]]) -> bool:
        """Did an event in ``(before, after]`` change one of these markets' books or one of these orders?"""
        assert self.rest is not None
        channels = [c for c in self._rest_channels() if c in BOOK_CHANNELS]
        tables = await asyncio.gather(*(self.rest.rows_from(c, before[0], set(markets) | {m for m, _ in orders})
                                        for c in channels))
        for rows in tables:
            for row in rows:
                if not before < event_key(row) <= after:
                    continue
                mid = row.get("market_id")
                ids = {row.get(k) for k in ("order_id", "maker_order_id", "taker_order_id")}
                if mid in markets or any((mid, oid) in orders for oid in ids):
                    return True
        return False

    # -- reconcile -------------------------------------------------------------------------------
    def _rest_channels(self) -> list[str]:
        return [c for c in self.settings.econia_channels if c in TABLES]

    def _published_txn(self) -> int:
        keys = [k for k in (self._reorder.released, self._floor, self._cursor) if k is not None]
        return max(keys)[0] if keys else 0

    def _reconcile_from(self) -> int:
        """The published txn_version ``econia_reconcile_lookback`` seconds ago (the trailing window), or the head
        of the last successful reconcile if that is older (so a REST outage leaves no unread stretch)."""
        now = time.monotonic()
        self._marks.append((now, self._published_txn()))
        cutoff = now - self.settings.econia_reconcile_lookback
        while len(self._marks) >= 2 and self._marks[1][0] <= cutoff:
            self._marks.popleft()
        since = min(self._marks[0][1], self._published_txn())
        if self._covered_through is not None:  # REST was away longer than the window: start where it left off
            since = min(since, self._covered_through)
        return since

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.econia_reconcile_seconds)
            if not self._synced:
                continue
            try:
                await self._reconcile(self._reconcile_from())
            except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as exc:
                log.warning("econia: reconcile failed (%s); next try in %.1fs", exc,
                            self.settings.econia_reconcile_seconds)
            except Exception:
                log.exception("econia: reconcile failed")

    async def _reconcile(self, since: int) -> None:
        """Read every event row from ``since`` (PostgREST), apply what was never seen, release up to the head."""
        assert self.rest is not None
        channels = self._rest_channels()
        head = await self._head(channels)  # every transaction up to here is complete in the tables
        tables = await asyncio.gather(*(self.rest.rows_from(c, since, self._market_filter or None) for c in channels))
        rows = sorted(((event_key(r), c, r) for c, rs in zip(channels, tables, strict=True) for r in rs),
                      key=lambda t: t[0])
        self.backfills += 1
        now, mono = now_micros(), time.monotonic()
        async with self._lock:
            late: list[tuple[Key, Event]] = []
            found = 0
            for key, channel, row in rows:
                if self._known(key):
                    continue
                found += 1
                released = self._reorder.released
                if released is not None and key <= released:
                    late.append((key, (channel, row, now)))
                else:
                    self._reorder.add(key, (channel, row, now), mono)
            if found:
                self.backfilled += found
                self.metrics.inc("recovered", "reconcile", found)
                self.metrics.inc("gaps", "reconcile", found)
                log.info("econia: reconcile from txn_version %d found %d events never seen live (%d late)",
                         since, found, len(late))
            if late:
                await self._apply_late(late)
            await self._release(self._reorder.release_through(head))
            self._covered_through = head[0]
            await self._repair()

    async def _catch_up(self) -> None:
        """After every (re)connect: baseline on the first, then reconcile; then time releases and /ready."""
        delay = 0.2
        while True:
            try:
                if self._floor is None or (self.books is not None and self.books.floor is None):
                    await self._baseline()
                await self._reconcile(self._reconcile_from())
                break
            except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError) as exc:
                log.warning("econia: catch-up failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self._synced = True
        self.mark_ready()

    async def _baseline(self) -> None:
        channels = self._rest_channels()
        if self.books is not None:
            head = await self._book_baseline(channels)
        else:
            head = await self._head(channels)
        if self._floor is None:  # first start, live from now
            self._floor = head
            log.info("econia: starting live after txn_version %s", head[0])

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
            if row.get("market_id") in self.normalizer.markets:  # state as of the head (when starting live)
                self.normalizer.seed_order(row, before if self._floor is None else None)
        markets = {mid: p for mid, p in self.normalizer.markets.items()
                   if not self._market_filter or mid in self._market_filter}
        async with self._lock:
            await self.books.snapshot(markets, orders, before, now_micros())
        return before

    async def _recognized_market(self, row: dict[str, Any]) -> None:
        """``recognized_market_event``: the registry's recognized market for a trading pair was added, updated
        or removed (``market_id`` null). Counted and logged; its lot/tick sizes are checked against the
        market's parameters (the ones every price and size is converted with) and a market we do not know
        yet, or parameters that differ, reload ``/markets``."""
        self.recognized_markets += 1
        self.metrics.inc("recognized_markets", "recognized_market_event")
        mid = row.get("market_id")
        pair = f"{row.get('base_struct_name') or row.get('base_name_generic')}/{row.get('quote_struct_name')}"
        if mid is None:
            log.info("econia: pair %s no longer has a recognized market (txn_version %s)", pair, row.get("txn_version"))
            return
        params = self.normalizer.markets.get(mid)
        if params is None or (row.get("lot_size"), row.get("tick_size")) != (params.lot_size, params.tick_size):
            await self._refresh_markets()
            params = self.normalizer.markets.get(mid)
            if params is not None and (row.get("lot_size"), row.get("tick_size")) != (params.lot_size,
                                                                                     params.tick_size):
                self.metrics.inc("parse_errors", "recognized_market_event")
                log.warning("econia: recognized market %s has lot/tick %s/%s but /markets says %s/%s", mid,
                            row.get("lot_size"), row.get("tick_size"), params.lot_size, params.tick_size)
                return
        log.info("econia: market %s is the recognized market of %s", mid, pair)

    async def _refresh_markets(self) -> None:
        assert self.rest is not None
        for row in await self.rest.markets():
            try:
                params = MarketParams.from_row(row)
            except (KeyError, ValueError) as exc:
                log.warning("econia: unusable /markets row (%s): %.200s", exc, row)
                continue
            self.normalizer.markets[params.market_id] = params

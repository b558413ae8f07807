"""The fence around ccxt: every reach into ccxt's private or undocumented members lives here.

ccxt's public API (``watch_*``, ``fetch_*``, ``load_markets``, ``options``, ``urls``) is used elsewhere;
what this module does depends on ccxt internals that may change in any release, so the installed ccxt
must be exactly :data:`CCXT_VERSION` (pinned in ``pyproject.toml``). :func:`check_ccxt_version` runs when
an exchange is built and refuses another version with a clear message; ``tests/ccxt/test_fence.py``
fingerprints (source hash) every upstream function listed in :data:`UPSTREAM` so an upgrade shows exactly
what changed and which of our replacements to re-read.

What reaches inside ccxt:

- **Item taps** (:func:`install_item_taps`): ccxt.pro keeps trades, my trades and orders in ring buffers
  (``ArrayCache*`` of ``tradesLimit``/``ordersLimit``, default 1000) and its socket reader handles every
  buffered message before a ``watch_*`` call returns, so a burst overwrites items the producer never saw.
  The tap wraps ``append`` of every such cache the exchange creates (``exchange.trades[symbol]``,
  ``exchange.myTrades``, ``exchange.orders``; caught on assignment through properties on a per-instance
  subclass) and hands each parsed item, as ccxt parses it, to the producer's own queue. ccxt's rings stay
  as they are; the producer no longer reads them.
- **Exact numbers**: instance ``safe_float*`` replacements and ``number = str`` (see ``exact.py``).
- **Message guard**: ``handle_message`` wrapped so a malformed venue message is skipped (``guard.py``).
- **Journaled books**: :class:`JournaledOrderBook` subclasses ccxt's ``OrderBook``, ``Asks``, ``Bids``
  (overriding ``storeArray``/``limit``/``reset``, using the sides' ``_index``/``_depth``); the ``order_book``
  factory is replaced so ccxt builds them (``journal.py`` explains what they are for).
- **Checksums**: ``handle_order_book_message`` wrapped, ``client.subscriptions``/``client.reject`` used on
  a mismatch (``checksums.py``).
- **Exact JSON numbers** (:func:`install_exact_json`): for venues that send prices as JSON *numbers*
  (Kraken v2), each socket's ``handle_text_or_binary_message`` decodes with ``parse_float=str``, so ccxt
  receives the wire text (``0.50000000``) instead of a float; caught on ``exchange.client``.
- **Held resolves** (:func:`wrap_book_handler`): a handler that applies a book message *and* resolves the
  waiting future in one go (kraken, bybit ``handle_order_book``) runs with ``client.resolve`` shadowed on the
  instance, so a verifier can check the applied book (or skip the message) before anything is handed out;
  ``client.send`` is used to unsubscribe a failed book before ccxt subscribes it again.
- **Refused logins**: ``exchange.clients`` and ``client.subscriptions`` to drop authenticated sockets.
- **Per-connection sequences** (Coinbase ``sequence_num``, ``coinbase.py``): ``handle_message`` wrapped so a
  check runs first, a counter kept on ccxt's ``Client``, ``client.subscriptions``/``client.reject`` to drop
  and fail the subscriptions of a connection that lost a message, ``client.resolve`` for heartbeats, and
  ccxt's internal ``coinbase.subscribe`` for the ``heartbeats`` channel ccxt itself never subscribes to.
- **Hot paths** (measured by ``benchmarks/bench_ccxt.py``): Binance's ``handle_message`` builds a dict of ~40
  bound methods and walks ``safe_*`` look-ups for every message (a quarter of the producer's CPU at full
  speed); :func:`install_binance_fast_dispatch` sends a bare ``depthUpdate``/``aggTrade``/``trade`` payload
  straight to the handler ccxt would pick, everything else through ccxt's own. ``iso8601`` (ccxt computes
  a ``datetime`` text for every trade and book message) is replaced on the instance by
  :func:`cached_iso8601`, the same text with the date part reused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import ccxt
from ccxt.async_support.base.ws.functions import is_json_encoded_object
from ccxt.async_support.base.ws.order_book import OrderBook
from ccxt.async_support.base.ws.order_book_side import Asks, Bids

from producers.ccxt.exact import safe_exact, safe_exact_2, safe_exact_n, to_exact_decimal

log = logging.getLogger(__name__)

CCXT_VERSION = "4.5.90"  # exactly what pyproject.toml pins; the UPSTREAM fingerprints below are for it

# upstream callables whose behaviour this fence (or a module it names) relies on, replaces or wraps, with
# the sha256 (first 16 hex digits) of their source in CCXT_VERSION: tests/ccxt/test_fence.py recomputes them
UPSTREAM: dict[str, str] = {
    "ccxt.async_support.base.ws.cache.ArrayCache.append": "c58362c27d7e96df",
    "ccxt.async_support.base.ws.cache.ArrayCacheBySymbolById.append": "5119821d9d7f4464",
    "ccxt.base.exchange.Exchange.clean_ws_data": "8e2597c8da55daa5",
    "ccxt.base.exchange.Exchange.iso8601": "c70200f95f26b8dd",
    "ccxt.base.exchange.Exchange.safe_float": "7cc2c07d5e1078d4",
    "ccxt.base.exchange.Exchange.safe_float_2": "1460f6f0fa0691aa",
    "ccxt.base.exchange.Exchange.safe_float_n": "667ad790cf640e8a",
    "ccxt.async_support.base.ws.client.Client.future": "6e5436cb2c17bba9",
    "ccxt.async_support.base.ws.order_book.OrderBook.reset": "d6b05564f9401324",
    "ccxt.async_support.base.ws.order_book_side.OrderBookSide.storeArray": "5dbb6a0623f3873f",
    "ccxt.async_support.base.ws.order_book_side.OrderBookSide.limit": "dd61887e15add295",
    "ccxt.async_support.base.ws.order_book_side.OrderBookSide.__init__": "3ad45bd0f88cc1c6",
    "ccxt.pro.binance.binance.handle_message": "b72df3e652ab9c74",
    "ccxt.pro.binance.binance.handle_trade": "6336476915bf39c8",
    "ccxt.pro.binance.binance.handle_my_trade": "d741b6d1d27b1f6a",
    "ccxt.pro.binance.binance.handle_order": "7df52a65306dc45a",
    "ccxt.pro.binance.binance.watch_trades_for_symbols": "5dab6e17cbe5192e",
    "ccxt.pro.okx.okx.handle_message": "27b2066eab2bfd64",
    "ccxt.pro.okx.okx.handle_trades": "c9882d4e3c4ae553",
    "ccxt.pro.okx.okx.handle_my_trades": "4be70eb3cc72e8c4",
    "ccxt.pro.okx.okx.handle_orders": "0c479d6256542d06",
    "ccxt.pro.okx.okx.handle_order_book_message": "931bad627529832d",
    "ccxt.async_support.base.exchange.Exchange.client": "0c5ee9acdfcc620d",
    "ccxt.async_support.base.ws.client.Client.handle_text_or_binary_message": "f7caef71aa276486",
    "ccxt.async_support.base.ws.client.Client.resolve": "612316628c28108e",
    "ccxt.async_support.base.ws.client.Client.reject": "7396d77ddfa56499",
    "ccxt.pro.kraken.kraken.handle_order_book": "7eea47a939750317",
    "ccxt.pro.kraken.kraken.watch_order_book_for_symbols": "d5ab4938a1c585b9",
    "ccxt.pro.bybit.bybit.handle_order_book": "0f8ed6072979aac5",
    "ccxt.pro.bybit.bybit.watch_topics": "4ded57376e3bf7db",
    "ccxt.pro.coinbase.coinbase.handle_message": "8226ca0074c9cd4a",
    "ccxt.pro.coinbase.coinbase.handle_order_book": "614e77ef2e19abab",
    "ccxt.pro.coinbase.coinbase.handle_trade": "fb288882593d0f20",
    "ccxt.pro.coinbase.coinbase.handle_heartbeats": "0adb25447d2fa4eb",
    "ccxt.pro.coinbase.coinbase.subscribe": "1783bb1b99d2f54f",
}


class CcxtVersionMismatch(RuntimeError):
    """The installed ccxt is not the version this producer's fence was written and checked against."""


def check_ccxt_version(installed: str | None = None) -> None:
    """Refuse to run on any ccxt but :data:`CCXT_VERSION` (``installed`` defaults to ``ccxt.__version__``)."""
    found = installed if installed is not None else getattr(ccxt, "__version__", "unknown")
    if found != CCXT_VERSION:
        raise CcxtVersionMismatch(
            f"marketpipe's ccxt producer needs ccxt=={CCXT_VERSION} exactly, found ccxt {found}: it reaches into "
            f"ccxt internals (producers/ccxt/fence.py). Install ccxt=={CCXT_VERSION}, or upgrade deliberately: "
            f"run tests/ccxt/test_fence.py against the new version, re-read every function whose fingerprint "
            f"changed, then update CCXT_VERSION, the fingerprints and the pin in pyproject.toml together.")


# -- item taps ---------------------------------------------------------------------------------------------
Sink = Callable[[dict[str, Any]], None]
_TAP = "_marketpipe_tap"


def _tap_cache(cache: Any, sink: Sink, *, copy: bool) -> Any:
    """Wrap ``cache.append`` (instance attribute) so each appended item also goes to ``sink``; items already
    in a cache first seen here are handed over once (binance appends before storing a new cache)."""
    if cache is None or getattr(cache, _TAP, None) is sink:
        return cache
    upstream = type(cache).append
    if copy:
        def append(item: Any) -> None:
            upstream(cache, item)
            sink(dict(item))  # ccxt keeps mutating cached orders (fees, trades): hand over a snapshot
    else:
        def append(item: Any) -> None:
            upstream(cache, item)
            sink(item)
    already = list(cache)
    cache.append = append
    setattr(cache, _TAP, sink)
    for item in already:
        sink(dict(item) if copy else item)
    return cache


class _TappedTrades(dict):  # type: ignore[type-arg]
    """``exchange.trades`` (symbol -> ArrayCache): every cache stored in it gets tapped."""

    def __init__(self, initial: Any, sink: Sink) -> None:
        super().__init__()
        self._sink = sink
        for k, v in dict(initial or {}).items():
            self[k] = v

    def __setitem__(self, key: Any, value: Any) -> None:
        if getattr(value, _TAP, None) is not self._sink and hasattr(value, "append"):
            _tap_cache(value, self._sink, copy=False)
        super().__setitem__(key, value)


def _tapped_property(name: str, wrap: Callable[[Any, Any], Any]) -> property:
    def get(self: Any) -> Any:
        return self.__dict__.get(name)

    def set_(self: Any, value: Any) -> None:
        self.__dict__[name] = wrap(self, value)

    return property(get, set_)


def install_item_taps(exchange: Any, *, on_trade: Sink | None = None, on_my_trade: Sink | None = None,
                      on_order: Sink | None = None) -> None:
    """Hand every trade / my trade / order ccxt parses to the sinks, whatever happens to ccxt's rings.

    Done by switching the instance to a subclass whose ``trades``/``myTrades``/``orders`` are properties:
    whatever ccxt assigns there (``clean_ws_data``, a handler creating its cache, an unwatch resetting it)
    is tapped on assignment. Sinks run inside ccxt's socket reader: they must only enqueue.
    """
    cls = type(exchange)
    props: dict[str, Any] = {}
    if on_trade is not None:
        trade_sink = on_trade
        props["trades"] = _tapped_property("trades", lambda _self, v: _TappedTrades(v, trade_sink))
    if on_my_trade is not None:
        my_sink = on_my_trade
        props["myTrades"] = _tapped_property("myTrades", lambda _self, v: _tap_cache(v, my_sink, copy=True))
    if on_order is not None:
        order_sink = on_order
        props["orders"] = _tapped_property("orders", lambda _self, v: _tap_cache(v, order_sink, copy=True))
    if not props:
        return
    current = {name: exchange.__dict__.pop(name, None) for name in props}
    exchange.__class__ = type(f"Tapped_{cls.__name__}", (cls,), props)
    for name, value in current.items():
        setattr(exchange, name, value)


# -- exact numbers, message guard, journaled books ---------------------------------------------------------
def keep_exact_text(exchange: Any) -> None:
    """``number = str`` and instance ``safe_float*`` that keep the venue's text (see ``exact.py``)."""
    exchange.number = str
    exchange.safe_float = safe_exact
    exchange.safe_float_2 = safe_exact_2
    exchange.safe_float_n = safe_exact_n


def install_message_guard(exchange: Any, on_malformed: Callable[[Any, BaseException], None]) -> None:
    """Wrap ``handle_message``: a message that raises is reported and skipped (see ``guard.py``)."""
    original = exchange.handle_message

    def handle_message(client: Any, message: Any) -> Any:
        try:
            return original(client, message)
        except Exception as exc:  # a malformed message: skip it, keep the socket reader running
            on_malformed(message, exc)
            return None

    exchange.handle_message = handle_message


# -- hot paths ----------------------------------------------------------------------------------------------
# Binance events ccxt's handle_message dispatches by "e" alone when the payload carries none of the keys it
# looks at first (combined-stream/WS-API wrappers, errors, request ids); event -> ccxt's handler name
_BINANCE_FAST_EVENTS = {"depthUpdate": "handle_order_book", "aggTrade": "handle_trade", "trade": "handle_trade"}
_BINANCE_ENVELOPE_KEYS = frozenset({"stream", "event", "data", "status", "error", "id"})


def install_binance_fast_dispatch(exchange: Any) -> bool:
    """Binance spot only: a bare diff-depth / trade payload goes straight to ``handle_order_book`` /
    ``handle_trade`` (the methods ccxt's ``handle_message`` would choose for it, looked up on the instance so
    wrappers such as the checksum verifier's still apply); any other message, ccxt's ``handle_message``.
    Returns whether it was installed."""
    if exchange.id != "binance":
        return False
    original = exchange.handle_message
    handlers = {event: getattr(exchange, name) for event, name in _BINANCE_FAST_EVENTS.items()}
    envelope = _BINANCE_ENVELOPE_KEYS

    def handle_message(client: Any, message: Any) -> Any:
        if type(message) is dict:
            handler = handlers.get(message.get("e"))  # type: ignore[arg-type]
            if handler is not None and envelope.isdisjoint(message):
                return handler(client, message)
        return original(client, message)

    exchange.handle_message = handle_message
    return True


_YEAR_10000_MS = 253_402_300_800_000  # ccxt's own formatting fails past year 9999: left to it


def cached_iso8601() -> Callable[[Any], str | None]:
    """``Exchange.iso8601`` for one exchange instance: an int millisecond timestamp gives the same text, the
    ``YYYY-MM-DDT`` part from ``time.gmtime`` once per day (the last few days seen kept), the time of day by
    integer arithmetic; anything else goes to ccxt's own."""
    upstream = ccxt.Exchange.iso8601
    days_seen: dict[int, str] = {}

    def iso8601(timestamp: Any = None) -> str | None:
        if type(timestamp) is int and 0 <= timestamp < _YEAR_10000_MS:
            seconds, milliseconds = divmod(timestamp, 1000)
            days, second_of_day = divmod(seconds, 86_400)
            day = days_seen.get(days)
            if day is None:
                if len(days_seen) >= 16:
                    days_seen.clear()
                t = time.gmtime(days * 86_400)
                day = days_seen[days] = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            hours, second_of_hour = divmod(second_of_day, 3600)
            minutes, secs = divmod(second_of_hour, 60)
            return f"{day}{hours:02d}:{minutes:02d}:{secs:02d}.{milliseconds:03d}Z"
        return upstream(timestamp)  # type: ignore[no-any-return]

    return iso8601


def install_hot_paths(exchange: Any) -> None:
    """The hot-path replacements above, on this instance only."""
    exchange.iso8601 = cached_iso8601()
    install_binance_fast_dispatch(exchange)


# -- journaled order books (see journal.py) ----------------------------------------------------------------
ZERO = Decimal(0)


class _JournalMixin:
    """Mixed into ccxt's Asks/Bids: every change lands in ``changes`` (price -> size, ZERO = removed)."""

    changes: dict[Decimal, Decimal]
    _index: list[Decimal]
    _depth: int

    def storeArray(self, delta: list[Any]) -> None:  # noqa: N802 - ccxt's name
        price, size = delta[0], delta[1]
        if type(price) is not Decimal:  # hot path: one type check when ccxt already holds Decimals
            price = delta[0] = to_exact_decimal(price)
        if type(size) is not Decimal:
            size = delta[1] = to_exact_decimal(size)
        before = len(self)  # type: ignore[arg-type]
        super().storeArray(delta)  # type: ignore[misc]
        if size or len(self) != before:  # type: ignore[arg-type]
            self.changes[price] = size if size else ZERO

    def limit(self) -> None:
        while len(self) > self._depth:  # type: ignore[arg-type]
            level = self.pop()  # type: ignore[attr-defined]
            self._index.pop()
            self.changes[level[0]] = ZERO


class JournaledAsks(_JournalMixin, Asks):
    def __init__(self, deltas: Any = (), depth: int | None = None) -> None:
        self.changes = {}
        super().__init__(list(deltas), depth)


class JournaledBids(_JournalMixin, Bids):
    def __init__(self, deltas: Any = (), depth: int | None = None) -> None:
        self.changes = {}
        super().__init__(list(deltas), depth)


class JournaledOrderBook(OrderBook):
    """ccxt's OrderBook with journaled sides and a ``was_reset`` flag set by in-place snapshots."""

    def __init__(self, snapshot: dict[str, Any] | None = None, depth: int | None = None) -> None:
        snapshot = dict(snapshot or {})
        depth = depth or sys.maxsize
        snapshot["asks"] = JournaledAsks(snapshot.get("asks", []), depth)
        snapshot["bids"] = JournaledBids(snapshot.get("bids", []), depth)
        super().__init__(snapshot, depth)
        self.was_reset = True  # a new book is a snapshot for downstream

    def reset(self, snapshot: dict[str, Any] | None = None) -> None:
        super().reset(snapshot or {})
        self.was_reset = True
        self["asks"].changes.clear()
        self["bids"].changes.clear()

    def has_changes(self) -> bool:
        return bool(self["bids"].changes or self["asks"].changes)

    def drain(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The levels changed since the last drain (absolute sizes, ZERO = removed); clears the journal."""
        bids, asks = self["bids"].changes, self["asks"].changes
        out = list(bids.items()), list(asks.items())
        bids.clear()
        asks.clear()
        return out

    def take_snapshot(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The whole book (best first) for a SNAPSHOT event; clears the journal and the reset flag."""
        self.was_reset = False
        self["bids"].changes.clear()
        self["asks"].changes.clear()
        return [(lv[0], lv[1]) for lv in self["bids"]], [(lv[0], lv[1]) for lv in self["asks"]]


def install_order_book_factory(exchange: Any, factory: Callable[..., Any]) -> None:
    """Make ``exchange.order_book(snapshot, depth)`` (what ccxt.pro calls for L2 books) build ``factory``'s."""
    exchange.order_book = factory


def wrap_order_book_handler(exchange: Any, after: Callable[[Any, dict, Any, str], None]) -> None:
    """Call ``after(client, message, orderbook, message_hash)`` once ccxt has applied a book message."""
    original = exchange.handle_order_book_message

    def handle_order_book_message(client: Any, message: dict, orderbook: Any, message_hash: str,
                                  market: Any = None) -> Any:
        result = original(client, message, orderbook, message_hash, market)
        after(client, message, orderbook, message_hash)
        return result

    exchange.handle_order_book_message = handle_order_book_message


def is_subscribed(client: Any, message_hash: str) -> bool:
    return message_hash in client.subscriptions


def fail_book_subscription(exchange: Any, client: Any, message_hash: str, symbol: Any, error: Exception) -> None:
    """What ccxt does on a nonce gap: forget the book, drop the subscription, reject the waiting future."""
    client.subscriptions.pop(message_hash, None)
    if symbol in exchange.orderbooks:
        del exchange.orderbooks[symbol]
    client.reject(error, message_hash)


# -- exact JSON numbers (kraken v2) ----------------------------------------------------------------------
def install_exact_json(exchange: Any) -> None:
    """Every socket of ``exchange`` decodes JSON numbers with a fraction as their text (``parse_float=str``).

    Replaces ``Client.handle_text_or_binary_message`` on each client ``exchange.client(url)`` creates (same
    steps as upstream: decompressed bytes decoded, JSON-looking text parsed, anything else passed as is).
    Integers stay ``int``. ccxt's ``safe_string``/``safe_number`` then see the venue's own digits.
    """
    original = exchange.client

    def client(url: str) -> Any:
        c = original(url)
        if not getattr(c, "_marketpipe_exact_json", False):
            def handle_text_or_binary_message(data: Any) -> None:
                if c.decompressBinary and isinstance(data, bytes):
                    data = data.decode()
                decoded = json.loads(data, parse_float=str) if is_json_encoded_object(data) else data
                c.on_message_callback(c, decoded)

            c.handle_text_or_binary_message = handle_text_or_binary_message
            c._marketpipe_exact_json = True
        return c

    exchange.client = client


# -- book handlers that resolve (kraken, bybit) ------------------------------------------------------------
BookVerifier = Callable[[Any, Any], bool]  # (client, message) -> True: keep / hand out; False: drop


def wrap_book_handler(exchange: Any, name: str, *, before: BookVerifier | None = None,
                      after: BookVerifier | None = None, after_resolve: Callable[[Any, Any], None] | None = None) -> None:
    """Wrap ``exchange.<name>(client, message)`` (a ccxt book handler that applies and resolves).

    ``before`` False: the message is not handed to ccxt at all. ``after`` runs once ccxt applied the message,
    with ``client.resolve`` held back: True releases the held resolves, False drops them (the verifier has
    failed the subscription). ``after_resolve`` runs last (e.g. to stamp the book's nonce).
    """
    original = getattr(exchange, name)

    def handler(client: Any, message: Any) -> Any:
        if before is not None and not before(client, message):
            return None
        if after is None:
            result = original(client, message)
        else:
            held: list[tuple[Any, Any]] = []

            def hold(value: Any, message_hash: Any = None) -> Any:
                held.append((value, message_hash))
                return value

            client.resolve = hold
            try:
                result = original(client, message)
            finally:
                del client.resolve  # back to Client.resolve
            if after(client, message):
                for value, message_hash in held:
                    client.resolve(value, message_hash)
        if after_resolve is not None:
            after_resolve(client, message)
        return result

    setattr(exchange, name, handler)


def book_subscription(client: Any, message_hash: str) -> Any:
    """What ccxt stored for a subscription (kraken: ``{"limit": depth}``), or None."""
    return client.subscriptions.get(message_hash)


def send_in_background(client: Any, message: dict[str, Any]) -> None:
    """Queue ``message`` on ``client``'s socket ahead of anything ccxt sends later (errors are logged)."""
    task = asyncio.ensure_future(client.send(message))

    def done(t: asyncio.Future[Any]) -> None:
        if not t.cancelled() and t.exception() is not None:
            log.warning("sending %r failed: %s", message, t.exception())

    task.add_done_callback(done)


async def drop_authenticated_clients(exchange: Any) -> None:
    """ccxt remembers a failed login on the socket and would wait forever: start those sockets afresh."""
    clients = getattr(exchange, "clients", None) or {}
    for url, client in list(clients.items()):
        if "private" in url or any("auth" in str(k).lower() for k in client.subscriptions):
            clients.pop(url, None)
            try:
                await client.close()
            except Exception as exc:  # closing a broken socket may fail; it is gone either way
                log.debug("%s: closing %s failed: %s", exchange.id, url, exc)


# -- per-connection sequences and venue channels ccxt does not subscribe to (see coinbase.py) ---------------
def check_messages_first(exchange: Any, check: Callable[[Any, Any], bool]) -> None:
    """Run ``check(client, message)`` before ccxt handles each message; ``False`` drops the message."""
    original = exchange.handle_message

    def handle_message(client: Any, message: Any) -> Any:
        if not check(client, message):
            return None
        return original(client, message)

    exchange.handle_message = handle_message


_CONNECTION_STATE = "_marketpipe_connection_state"


def connection_state(client: Any) -> dict[str, Any]:
    """A dict kept on ccxt's ``Client`` (one per socket; a reconnect gets a new one)."""
    state = client.__dict__.get(_CONNECTION_STATE)
    if state is None:
        state = client.__dict__[_CONNECTION_STATE] = {}
    return state


def subscription_hashes(client: Any) -> list[str]:
    return [str(k) for k in client.subscriptions]


def fail_subscription(client: Any, message_hash: str, error: Exception) -> None:
    """Drop a subscription and reject its waiting future: the next ``watch_*`` subscribes again."""
    client.subscriptions.pop(message_hash, None)
    client.reject(error, message_hash)


def resolve(client: Any, result: Any, message_hash: str) -> None:
    client.resolve(result, message_hash)


async def coinbase_subscribe(exchange: Any, channel: str) -> Any:
    """ccxt's internal ``coinbase.subscribe`` for a channel without products (``heartbeats``)."""
    return await exchange.subscribe(channel, False)

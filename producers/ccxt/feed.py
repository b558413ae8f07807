"""CcxtFeed: one producer for any exchange ccxt.pro supports, with the same events as the native feeds.

ccxt owns the connections (one socket per watch type on most exchanges) and the venue protocol. This
class loads the markets, then runs one supervised task per (market, channel) and per private channel;
the tasks' bodies live in ``book_channel.py`` (SNAPSHOT/DELTA/RESET), ``market_channels.py`` (trades,
ticker, OHLCV) and ``account_channels.py`` (balances, orders, fills, positions).

Resilience: ccxt raises and leaves reconnecting to the caller. Each task retries with capped exponential
backoff + jitter (``Backoff``), counts the reconnect in ``marketpipe_feed_reconnects_total`` and logs the
exchange's own message; rate limits and credential refusals are logged as such, every ccxt error class is
counted in ``marketpipe_ccxt_errors_total``, and a refused login drops the authenticated sockets (ccxt
would otherwise wait on them forever). A malformed item is counted (``parse_errors``), logged with context
and skipped; a malformed venue message that would kill ccxt's socket reader is caught there
(``guard.py``). ``/ready`` is 503 while any task is retrying, with the failing tasks in the body.

Nothing lost to ccxt's rings: trades, fills and orders are handed over by taps on ccxt's caches as ccxt
parses them (``fence.install_item_taps``) into the producer's own queues; the ``watch_*`` calls only keep
the subscriptions alive and raise errors. Where trade ids are consecutive (Binance ``aggTrade``, OKX,
Kraken) a hole or a reconnect is recovered over REST before anything newer is published, and what REST
cannot return gets a gap marker; elsewhere a restart gets an open-ended gap marker (``market_channels.py``,
``trade_recovery.py``). Book integrity ccxt does not check (OKX and Kraken checksums, Bybit's ``u`` chain)
is checked by the producer (``checksums.py``). Every reach into ccxt internals
is in ``fence.py``; another ccxt version than the pinned one is refused at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ccxt.pro as ccxtpro
from ccxt.base import errors as ccxt_errors
from prometheus_client import Counter

from producers.ccxt.account_channels import AccountChannels
from producers.ccxt.book_channel import BookChannel, BookState
from producers.ccxt.coinbase import CoinbaseChannels
from producers.ccxt.exchange import build_exchange
from producers.ccxt.fence import drop_authenticated_clients, install_item_taps
from producers.ccxt.host import Body, TapQueue, WatchedMarket
from producers.ccxt.market_channels import MarketDataChannels
from producers.ccxt.settings import CcxtSettings
from producers.ccxt.symbols import normalize_market, resolve_symbols
from producers.core.backoff import Backoff
from producers.core.book import BookSynchronizer
from producers.core.emitter import EventEmitter
from producers.core.feed import Feed
from producers.core.metrics import FeedMetrics
from producers.publisher import KafkaPublisher
from schemas.registry import ContractRegistry

log = logging.getLogger(__name__)

ERRORS = Counter("marketpipe_ccxt_errors_total", "Errors raised by ccxt, by class", ["venue", "channel", "error"])
WATCH_RESULTS = Counter("marketpipe_ccxt_watch_results_total", "watch_* calls that returned data",
                        ["venue", "channel"])


class ChannelGivesUp(Exception):
    """This channel cannot work on this exchange (not supported, bad symbol): stop its task only."""


class CcxtFeed(BookChannel, MarketDataChannels, AccountChannels, CoinbaseChannels, Feed):
    """Runs until cancelled. ``exchange`` may be injected (tests); otherwise built from settings."""


    def __init__(self, settings: CcxtSettings, *, registry: ContractRegistry | None = None,
                 publisher: KafkaPublisher | None = None, metrics: FeedMetrics | None = None,
                 serve_health: bool = True, exchange: Any = None) -> None:
        self.venue = settings.venue_id()
        super().__init__(settings, registry=registry, publisher=publisher,
                         metrics=metrics or FeedMetrics(settings.venue_id()), serve_health=serve_health)
        self.settings: CcxtSettings = settings
        self._checksum_failed: set[str] = set()
        self._malformed_logged = 0
        self._by_symbol: dict[str, WatchedMarket] = {}
        self.exchange = exchange or build_exchange(settings, on_checksum_mismatch=self._checksum_failed.add,
                                                   on_malformed=self._malformed_message,
                                                   on_trade_hole=self._trade_hole)
        self.markets: list[WatchedMarket] = []
        self.order_queue = TapQueue(limit=settings.tap_queue_max)
        self.fill_queue = TapQueue(limit=settings.tap_queue_max)
        private = settings.effective_private_channels()
        install_item_taps(self.exchange, on_trade=self._tapped_trade if "trades" in settings.channels else None,
                          on_my_trade=self.fill_queue.put if "fills" in private else None,
                          on_order=self.order_queue.put if "orders" in private else None)
        self.books: dict[str, BookSynchronizer] = {}
        self.resets: dict[str, int] = {}  # reason -> count (tests, logs)
        self.failing: dict[str, str] = {}  # task name -> last error, until the task delivers data again
        self._tasks: list[asyncio.Task[None]] = []

    # -- running ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.start_outputs()
        try:
            await self._load_markets()
            await self._resume_trades(self.markets)
            self.connected = True
            self._tasks = [asyncio.create_task(self._supervise(name, body), name=f"ccxt-{name}")
                           for name, body in self._bodies()]
            self.mark_ready()
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for sync in self.books.values():
                await sync.close()
            try:
                await self.exchange.close()
            finally:
                await self.stop_outputs()

    async def _load_markets(self) -> None:
        s = self.settings
        backoff = Backoff(s.reconnect_initial_delay, s.reconnect_max_delay, s.reconnect_jitter)
        while True:
            try:
                markets = await self.exchange.load_markets()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next_delay()
                self._count_error("markets", exc)
                log.warning("%s: load_markets failed (%s: %s); retrying in %.1fs", self.venue,
                            type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
        for symbol in resolve_symbols(markets, s.markets):
            m = markets[symbol]
            watched = WatchedMarket(symbol, normalize_market(m), str(m["id"]),
                                    trades=TapQueue(limit=s.tap_queue_max))
            self.markets.append(watched)
            self._by_symbol[symbol] = watched

    def _tapped_trade(self, trade: dict[str, Any]) -> None:
        """Runs inside ccxt's socket reader for every trade it parses: enqueue only."""
        m = self._by_symbol.get(trade.get("symbol"))  # type: ignore[arg-type]
        if m is not None:
            m.trades.put(trade)

    def _bodies(self) -> list[tuple[str, Body]]:
        s = self.settings
        out: list[tuple[str, Body]] = []
        for m in self.markets:
            if "book" in s.channels:
                sync = BookSynchronizer(self.venue, m.market, m.venue_symbol, publish=self._emit_book,
                                        metrics=self.metrics, on_crossed="count")
                self.books[m.market] = sync
                out.append((f"book:{m.market}", self._book_body(m, sync, BookState())))
            if "trades" in s.channels:
                out.append((f"trades:{m.market}", self._trades_body(m)))
            if "ticker" in s.channels:
                out.append((f"ticker:{m.market}", self._ticker_body(m)))
            if "ohlcv" in s.channels:
                for interval in s.ohlcv_intervals:
                    out.append((f"ohlcv:{m.market}:{interval}", self._ohlcv_body(m, interval)))
        out.extend(self._venue_bodies())
        private = {"balance": self._balance_body, "orders": self._orders_body, "fills": self._fills_body,
                   "positions": self._positions_body}
        for name in s.effective_private_channels():
            out.append((name, private[name]()))
        return out

    async def _supervise(self, name: str, body: Body) -> None:
        """Run one watch loop forever: classify errors, log the exchange's message, back off, retry."""
        s = self.settings
        channel = name.split(":")[0]
        backoff = Backoff(s.reconnect_initial_delay, s.reconnect_max_delay, s.reconnect_jitter)
        while True:
            try:
                await body(backoff)
                return
            except asyncio.CancelledError:
                raise
            except ChannelGivesUp as exc:
                log.error("%s %s: channel stopped: %s", self.venue, name, exc)
                return
            except (ccxt_errors.BadSymbol, ccxt_errors.NotSupported) as exc:
                self._failed(name, channel, exc)
                log.error("%s %s: not available on this exchange: %s", self.venue, name, exc)
                return
            except (ccxt_errors.AuthenticationError, ccxt_errors.PermissionDenied,
                    ccxt_errors.AccountSuspended) as exc:
                self._failed(name, channel, exc)
                delay = max(backoff.next_delay(), s.reconnect_max_delay / 2)
                log.error("%s %s: the exchange refused our credentials: %s; retrying in %.1fs",
                          self.venue, name, exc, delay)
                await self._drop_authenticated_clients()
            except (ccxt_errors.RateLimitExceeded, ccxt_errors.DDoSProtection) as exc:
                self._failed(name, channel, exc)
                delay = min(s.reconnect_max_delay, 2 * backoff.next_delay() + 1.0)
                log.warning("%s %s: rate limited by the exchange: %s; backing off %.1fs",
                            self.venue, name, exc, delay)
            except ccxt_errors.NetworkError as exc:
                self._failed(name, channel, exc)
                self.metrics.reconnect(type(exc).__name__)
                delay = backoff.next_delay()
                log.warning("%s %s: connection problem (%s: %s); reconnecting in %.2fs",
                            self.venue, name, type(exc).__name__, exc, delay)
            except ccxt_errors.ExchangeError as exc:
                self._failed(name, channel, exc)
                delay = backoff.next_delay()
                log.warning("%s %s: exchange error: %s; retrying in %.2fs", self.venue, name, exc, delay)
            except Exception as exc:  # a bug or an unexpected payload: never kill the producer
                self._failed(name, channel, exc)
                self.metrics.inc("parse_errors", channel)
                delay = backoff.next_delay()
                log.exception("%s %s: unexpected error; restarting the channel in %.2fs", self.venue, name, delay)
            await self._after_error(name)
            await asyncio.sleep(delay)

    async def _after_error(self, name: str) -> None:
        if name.startswith("book:"):
            sync = self.books.get(name.split(":", 1)[1])
            if sync is not None:
                await self._reset(sync, "reconnect")

    async def _drop_authenticated_clients(self) -> None:
        await drop_authenticated_clients(self.exchange)

    def _failed(self, name: str, channel: str, exc: BaseException) -> None:
        """A task failed: counted by error class, and not ready until the task delivers data again."""
        self._count_error(channel, exc)
        self.failing[name] = type(exc).__name__

    def _count_error(self, channel: str, exc: BaseException) -> None:
        ERRORS.labels(self.venue, channel, type(exc).__name__).inc()

    def readiness(self) -> tuple[bool, str]:
        ok, why = super().readiness()
        if ok and self.failing:
            failing = ", ".join(f"{n} ({e})" for n, e in sorted(self.failing.items()))
            return False, f"retrying: {failing}"
        return ok, why

    def _got_data(self, name: str, channel: str, backoff: Backoff) -> None:
        backoff.reset()
        if self.failing:
            self.failing.pop(name, None)
        self.metrics.message(channel)
        WATCH_RESULTS.labels(self.venue, channel).inc()

    def _malformed_message(self, message: Any, exc: BaseException) -> None:
        """A venue message ccxt could not handle (see guard.py): counted, logged (throttled), skipped."""
        self.metrics.inc("parse_errors", "ws")
        self._malformed_logged += 1
        if self._malformed_logged <= 20 or self._malformed_logged % 1000 == 0:
            log.warning("%s: skipped a malformed venue message (%s: %s; %d so far): %.300r", self.venue,
                        type(exc).__name__, exc, self._malformed_logged, message)

    def _malformed(self, channel: str, item: Any, exc: BaseException) -> None:
        self.metrics.inc("parse_errors", channel)
        log.warning("%s %s: skipped malformed item (%s: %s): %.300r", self.venue, channel, type(exc).__name__,
                    exc, item)

    def _emitter(self) -> EventEmitter:
        assert self.emitter is not None, "outputs not started"
        return self.emitter


def exchanges() -> list[str]:
    """The exchange ids this producer can serve (every ccxt.pro exchange)."""
    return list(ccxtpro.exchanges)


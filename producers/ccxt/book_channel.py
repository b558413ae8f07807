"""The book channel: ccxt's successive order-book states -> SNAPSHOT / DELTA / RESET BookUpdates.

``watch_order_book`` returns ccxt's mutable book (a :class:`JournaledOrderBook`, see ``journal.py``); each
return is turned into one event through the shared :class:`~producers.core.BookSynchronizer`:

- a new book object, an in-place reset, or a venue sequence restart -> SNAPSHOT (after a RESET when
  downstream held a book);
- otherwise the journal's drained levels -> DELTA (absolute sizes, "0" = removed), cost proportional to
  the levels that changed since the previous event; ``sequence`` = ccxt's nonce (Binance ``u``, OKX
  ``seqId``), ``prev_sequence`` = the previous event's nonce, so coalesced venue messages still chain;
- ``ChecksumError`` / ``InvalidNonce`` (ccxt's resync signals, and our checksum verifier's) -> RESET with
  ``reason`` gap|checksum; a reconnect (NetworkError, handled by the supervisor) -> RESET ``reconnect``.
  The next ``watch_order_book`` resubscribes and its first book is the new SNAPSHOT.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from ccxt.base import errors as ccxt_errors
from prometheus_client import Counter

from producers.ccxt import mapping
from producers.ccxt.checksums import book_checksum
from producers.ccxt.host import Body, ChannelHost, WatchedMarket
from producers.ccxt.journal import DiffedBook, JournaledOrderBook
from producers.core.backoff import Backoff
from producers.core.book import BookSynchronizer
from producers.core.numbers import now_micros

log = logging.getLogger("producers.ccxt.feed")

BOOK_RESETS = Counter("marketpipe_ccxt_book_resets_total", "RESETs published by the ccxt feed", ["venue", "reason"])
RESYNC_STORM_SECONDS = 5.0  # a second resync within this time waits for the backoff first


@dataclass
class BookState:
    book: JournaledOrderBook | None = None
    last_nonce: int | None = None
    pending_reason: str = "resync"
    fallback: DiffedBook = field(default_factory=lambda: DiffedBook())
    last_resync: float = float("-inf")


class BookChannel(ChannelHost):
    async def _emit_book(self, record: dict[str, Any]) -> None:
        await self._emitter().book(record)

    async def _reset(self, sync: BookSynchronizer, reason: str) -> None:
        self.resets[reason] = self.resets.get(reason, 0) + 1
        BOOK_RESETS.labels(self.venue, reason).inc()
        await sync.reset(reason)

    def _book_body(self, m: WatchedMarket, sync: BookSynchronizer, state: BookState) -> Body:
        name = f"book:{m.market}"

        async def body(backoff: Backoff) -> None:
            state.book = None  # after any restart the first book is a snapshot
            while True:
                try:
                    ob = await self.exchange.watch_order_book(m.symbol, self.settings.book_depth)
                except (ccxt_errors.ChecksumError, ccxt_errors.InvalidNonce) as exc:
                    reason = "checksum" if m.symbol in self._checksum_failed else "gap"
                    self._checksum_failed.discard(m.symbol)
                    self.metrics.inc("gaps" if reason == "gap" else "resyncs", "book")
                    self._count_error("book", exc)
                    log.warning("%s %s: ccxt resynchronizes the book (%s): %s", self.venue, m.market, reason, exc)
                    state.book = None
                    state.pending_reason = reason
                    await self._reset(sync, reason)
                    now = asyncio.get_running_loop().time()
                    if now - state.last_resync < RESYNC_STORM_SECONDS:  # resyncing again and again: back off
                        await asyncio.sleep(backoff.next_delay())
                    state.last_resync = now
                    continue
                self._got_data(name, "book", backoff)
                await self._publish_book(m, sync, state, ob)
                while isinstance(ob, JournaledOrderBook) and state.book is ob and ob.has_changes():
                    # ccxt applied more messages while we published
                    await self._publish_book(m, sync, state, ob)

        return body

    async def _publish_book(self, m: WatchedMarket, sync: BookSynchronizer, state: BookState, book: Any) -> None:
        # counted/indexed ccxt books are diffed against the last state
        ob: JournaledOrderBook = book if isinstance(book, JournaledOrderBook) else state.fallback.observe(book)
        # everything below up to the first await reads one consistent ccxt state
        receive_ts = now_micros()
        nonce = ob.get("nonce")
        exchange_ts = mapping.ms_to_micros(ob.get("timestamp"), receive_ts)
        checksum = book_checksum(self.exchange.id, ob)
        # OKX restarts seqId after maintenance (seqId < prevSeqId) and ccxt accepts it: our sequence would
        # go backwards, so downstream gets a fresh SNAPSHOT (after a RESET) instead
        sequence_restarted = nonce is not None and state.last_nonce is not None and nonce < state.last_nonce
        if ob is not state.book or ob.was_reset or sequence_restarted:
            bids, asks = ob.take_snapshot()
            state.book = ob
            state.last_nonce = nonce
            reason, state.pending_reason = state.pending_reason, "resync"
            if sequence_restarted:
                reason = "sequence-reset"
                self.resets[reason] = self.resets.get(reason, 0) + 1
                BOOK_RESETS.labels(self.venue, reason).inc()
            await sync.snapshot(_texts(bids), _texts(asks), sequence=nonce, exchange_ts=exchange_ts,
                                receive_ts=receive_ts, checksum=checksum, reason=reason)
            return
        bids, asks = ob.drain()
        if not bids and not asks:
            return
        sequence = prev = None
        if nonce is not None and (state.last_nonce is None or nonce > state.last_nonce):
            sequence, prev = nonce, state.last_nonce
            state.last_nonce = nonce
        await sync.delta(_texts(bids), _texts(asks), sequence=sequence, prev_sequence=prev,
                         exchange_ts=exchange_ts, receive_ts=receive_ts, checksum=checksum)



def _texts(levels: list[tuple[Any, Any]]) -> list[tuple[str, str]]:
    """Decimal levels -> plain decimal text (``:f`` keeps the wire digits, never an exponent)."""
    return [(f"{p:f}", f"{s:f}") for p, s in levels]


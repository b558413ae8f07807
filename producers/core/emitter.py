"""EventEmitter: normalized records -> Avro (registry framers) -> KafkaPublisher, keyed per market/account.

One emitter per feed. ``await emitter.prepare()`` looks up the schema ids once (HTTP, off the event
loop); after that encoding is local. Each ``emit`` encodes once and hands the bytes to the publisher
(bounded buffer: ``publish`` waits while Kafka is behind, it never drops).

Event ids are deterministic (``producers.core.numbers.stable_id``/``content_id``): the same venue
event always gets the same id, so consumers can drop duplicates by id.

The publisher's latency stamp is the event's ``exchange_ts`` in seconds, so an ``on_ack`` callback can
measure venue-time -> Kafka-ack latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from producers.core.metrics import FeedMetrics
from producers.core.numbers import content_id, decimal_text, stable_id
from producers.publisher import KafkaPublisher
from schemas.registry import ContractRegistry
from schemas.serde import AvroFramer
from schemas.topics import ACCOUNT, BOOK, TICKER, TRADES, VENUE_CANDLES, TopicSpec, account_key, market_key

FEED_TOPICS: tuple[TopicSpec, ...] = (TRADES, BOOK, TICKER, VENUE_CANDLES, ACCOUNT)
TICKER_FIELDS = ("best_bid", "best_bid_size", "best_ask", "best_ask_size", "last_price", "mark_price",
                 "index_price", "funding_rate", "open_interest", "volume_24h")


class EventEmitter:
    def __init__(self, venue: str, registry: ContractRegistry, publisher: KafkaPublisher, metrics: FeedMetrics) -> None:
        self.venue = venue
        self.registry = registry
        self.publisher = publisher
        self.metrics = metrics
        self._framers: dict[str, AvroFramer] = {}
        self._keys: dict[str, bytes] = {}

    async def prepare(self, topics: tuple[TopicSpec, ...] = FEED_TOPICS) -> None:
        for spec in topics:
            self._framers[spec.schema] = await asyncio.to_thread(self.registry.framer, spec.schema)

    def _key(self, market: str) -> bytes:
        key = self._keys.get(market)
        if key is None:
            key = self._keys[market] = market_key(self.venue, market)
        return key

    async def emit(self, spec: TopicSpec, key: bytes, record: dict[str, Any], channel: str) -> None:
        framer = self._framers.get(spec.schema)
        if framer is None:
            framer = self._framers[spec.schema] = await asyncio.to_thread(self.registry.framer, spec.schema)
        value = framer.encode(record)
        await self.publisher.publish(spec, key, value, stamp=record["exchange_ts"] / 1e6)
        self.metrics.counts[("events_out", channel)] += 1

    # -- per contract ------------------------------------------------------------------------------
    async def book(self, record: dict[str, Any], channel: str = "book") -> None:
        """A complete BookUpdate record (built by BookSynchronizer)."""
        await self.emit(BOOK, self._key(record["market"]), record, channel)

    def book_sink(self, market: str, channel: str = "book") -> Callable[[dict[str, Any]], Awaitable[None]]:
        """``BookSynchronizer(publish=...)`` for one market: ``book()`` with the key, framer and counter bound
        once (the per-delta hot path). Call after ``prepare()``."""
        if type(self).emit is not EventEmitter.emit:  # a subclass (e.g. a test capture) redirects emit
            return lambda record: self.emit(BOOK, self._key(market), record, channel)
        framer = self._framers[BOOK.schema]
        publish = self.publisher.publish
        key = self._key(market)
        counts = self.metrics.counts
        count_key = ("events_out", channel)

        async def sink(record: dict[str, Any]) -> None:
            value = framer.encode(record)
            await publish(BOOK, key, value, stamp=record["exchange_ts"] / 1e6)
            counts[count_key] += 1

        return sink

    async def trade(self, market: str, venue_symbol: str, *, trade_id: str, price: Any, size: Any, side: str,
                    exchange_ts: int, receive_ts: int, liquidation: bool | None = None,
                    channel: str = "trades") -> None:
        record = {
            "event_id": stable_id(self.venue, market, "trade", trade_id),
            "venue": self.venue, "market": market, "venue_symbol": venue_symbol,
            "exchange_ts": exchange_ts, "receive_ts": receive_ts, "trade_id": str(trade_id),
            "price": decimal_text(price), "size": decimal_text(size), "side": side, "liquidation": liquidation,
            "gap": None,
        }
        await self.emit(TRADES, self._key(market), record, channel)

    async def trade_gap(self, market: str, venue_symbol: str, *, reason: str, from_ts: int, to_ts: int,
                        receive_ts: int, after_id: str | None = None, before_id: str | None = None,
                        missing_count: int | None = None, channel: str = "trades") -> None:
        """A gap marker in the trades topic: trades of ``market`` may be missing in ``[from_ts, to_ts]``
        (between venue ids ``after_id`` and ``before_id`` when known). Publish it where the hole is, in
        per-market order, only for what could not be recovered. Counted as ``gap_markers`` (per channel)
        and ``missing_events`` (the known count)."""
        gap = _gap(reason, after_id, before_id, missing_count, from_ts, to_ts)
        record = {
            "event_id": stable_id(self.venue, market, "trade-gap", reason, after_id, before_id, from_ts, to_ts),
            "venue": self.venue, "market": market, "venue_symbol": venue_symbol,
            "exchange_ts": to_ts, "receive_ts": receive_ts, "trade_id": f"gap:{after_id}:{before_id}",
            "price": "0", "size": "0", "side": "UNKNOWN", "liquidation": None, "gap": gap,
        }
        await self.emit(TRADES, self._key(market), record, channel)
        self._count_gap(channel, missing_count)

    async def account_gap(self, account: str, *, kind: str, reason: str, from_ts: int, to_ts: int,
                          receive_ts: int, market: str = "*", venue_symbol: str = "*",
                          after_id: str | None = None, before_id: str | None = None,
                          missing_count: int | None = None, channel: str = "account") -> None:
        """A gap marker in the account topic: events of ``kind`` (ORDER, FILL, ...) of ``account`` (in
        ``market``, or ``"*"``) may be missing in ``[from_ts, to_ts]``. No payload field is set."""
        gap = _gap(reason, after_id, before_id, missing_count, from_ts, to_ts)
        record: dict[str, Any] = {
            "event_id": stable_id(self.venue, account, "account-gap", kind, market, reason, after_id, before_id,
                                  from_ts, to_ts),
            "venue": self.venue, "market": market, "venue_symbol": venue_symbol, "exchange_ts": to_ts,
            "receive_ts": receive_ts, "account": account, "kind": kind,
            "balance": None, "order": None, "fill": None, "position": None, "gap": gap,
        }
        await self.emit(ACCOUNT, account_key(self.venue, account), record, channel)
        self._count_gap(channel, missing_count)

    def _count_gap(self, channel: str, missing_count: int | None) -> None:
        self.metrics.inc("gap_markers", channel)
        if missing_count:
            self.metrics.inc("missing_events", channel, missing_count)

    async def ticker(self, market: str, venue_symbol: str, *, exchange_ts: int, receive_ts: int,
                     channel: str = "ticker", **fields: Any) -> None:
        """Ticker fields by contract name (see TICKER_FIELDS); None or absent -> null."""
        unknown = set(fields) - set(TICKER_FIELDS)
        if unknown:
            raise ValueError(f"unknown ticker fields {sorted(unknown)}")
        record: dict[str, Any] = {"venue": self.venue, "market": market, "venue_symbol": venue_symbol,
                                  "exchange_ts": exchange_ts, "receive_ts": receive_ts}
        for name in TICKER_FIELDS:
            v = fields.get(name)
            record[name] = None if v is None or v == "" else decimal_text(v)
        record["event_id"] = content_id(stable_id(self.venue, market, "ticker", exchange_ts), record)
        await self.emit(TICKER, self._key(market), record, channel)

    async def candle(self, market: str, venue_symbol: str, *, interval: str, start_ts: int, end_ts: int,
                     open: Any, high: Any, low: Any, close: Any, volume: Any, closed: bool, exchange_ts: int,
                     receive_ts: int, quote_volume: Any = None, trade_count: int | None = None,
                     channel: str = "candles") -> None:
        record = {
            "venue": self.venue, "market": market, "venue_symbol": venue_symbol, "exchange_ts": exchange_ts,
            "receive_ts": receive_ts, "interval": interval, "start_ts": start_ts, "end_ts": end_ts,
            "open": decimal_text(open), "high": decimal_text(high), "low": decimal_text(low),
            "close": decimal_text(close), "volume": decimal_text(volume),
            "quote_volume": None if quote_volume is None else decimal_text(quote_volume),
            "trade_count": trade_count, "closed": closed,
        }
        record["event_id"] = content_id(stable_id(self.venue, market, "candle", interval, start_ts), record)
        await self.emit(VENUE_CANDLES, self._key(market), record, channel)

    async def account(self, account: str, *, kind: str, market: str, venue_symbol: str, exchange_ts: int,
                      receive_ts: int, payload: dict[str, Any], event_id: str | None = None,
                      channel: str = "account") -> None:
        """AccountEvent; ``kind`` is BALANCE|ORDER|FILL|POSITION and ``payload`` the nested record.

        Money fields of ``payload`` must already be decimal text. Without ``event_id`` the id is derived
        from the content (a re-sent identical state gets the same id).
        """
        record: dict[str, Any] = {
            "venue": self.venue, "market": market, "venue_symbol": venue_symbol, "exchange_ts": exchange_ts,
            "receive_ts": receive_ts, "account": account, "kind": kind,
            "balance": None, "order": None, "fill": None, "position": None, "gap": None,
        }
        record[kind.lower()] = payload
        record["event_id"] = event_id or content_id(stable_id(self.venue, account, kind.lower()), record,
                                                    exclude=("receive_ts", "event_id", "exchange_ts"))
        await self.emit(ACCOUNT, account_key(self.venue, account), record, channel)


def _gap(reason: str, after_id: str | None, before_id: str | None, missing_count: int | None, from_ts: int,
         to_ts: int) -> dict[str, Any]:
    if not reason:
        raise ValueError("a gap marker needs a reason")
    if to_ts < from_ts:
        raise ValueError(f"gap window ends before it starts: {from_ts} > {to_ts}")
    return {"reason": reason, "after_id": None if after_id is None else str(after_id),
            "before_id": None if before_id is None else str(before_id), "missing_count": missing_count,
            "from_ts": from_ts, "to_ts": to_ts}

"""DriftFeed: Drift DLOB server WebSocket -> BookUpdate SNAPSHOTs and Trades in Kafka.

Protocol (venues.md section 2) and what it forced:
- ``data`` is a JSON *string* inside the JSON envelope: parsed twice (orjson for books; trades with
  ``parse_float=Decimal`` so the human floats are read as the wire's digits).
- Every grouped book message (``orderbook_{type}_{idx}_grouped_1``) is a complete top-20 snapshot with
  integer-precision numbers and a monotonic ``slot``: published as SNAPSHOT (sequence = slot,
  prev_sequence = the previously published slot), converted with integer math; messages whose slot is
  below the last one seen are dropped (``stale``). No deltas, no gaps, so no resync is ever needed; after
  a reconnect each market gets a RESET(reason="reconnect") so consumers know the book went stale.
- FillEvents have no price: ``quote / base`` computed on the integer units the chain holds (see
  ``precision``), deduplicated by ``(txSig, fillRecordId)``; ``maker``/``taker`` may be absent.
- ``{"channel":"heartbeat"}`` every 5 s: no heartbeat for ``drift_heartbeat_timeout`` -> reconnect, even
  while data still flows (a server that stopped heartbeats is skipping our sends); no frame at all for
  ``watchdog_seconds`` -> the core's watchdog reconnects.
- A slow reader gets messages skipped and then close 1008 "Buffer overflow": the reader only parses and
  encodes; Kafka I/O happens in the publisher's sender task behind its bounded buffer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from producers.core.errors import ReconnectRequested, TerminalFeedError
from producers.core.feed import Feed
from producers.core.numbers import now_micros, stable_id, to_micros, units_text
from producers.drift.precision import PRICE_EXP, QUOTE_EXP, fill_price_units, human_to_units, json_units
from producers.drift.settings import DriftMarketSpec, DriftSettings
from producers.drift.snapshot_encoder import SnapshotEncoder, matches_fastavro, snapshot_record
from schemas.serde import AvroFramer
from schemas.topics import BOOK, market_key

log = logging.getLogger(__name__)

_ACK = re.compile(r"^(Subscribe|Unsubscribe) received for channel: (\w+), market: ([^,]+), marketType: (\w+)$")
_SIDE = {"long": "BUY", "short": "SELL"}


@dataclass
class _Market:
    spec: DriftMarketSpec
    key: bytes
    encoder: SnapshotEncoder | None = None
    last_slot: int | None = None  # highest slot seen (kept across reconnects)
    published_slot: int | None = None  # slot of the SNAPSHOT downstream holds (None after a RESET)
    epoch: int = 0  # RESETs published so far: part of SNAPSHOT ids so a re-sent slot is a new event
    id_prefix: str = field(init=False)  # "drift:<market>:book:S:": built once, not per snapshot
    ticker: dict[str, str | None] | None = None  # the Ticker fields last published

    def __post_init__(self) -> None:
        self.id_prefix = f"drift:{self.spec.market}:book:S:"


class FillDeduplicator:
    """Remembers the last ``window`` fill keys; ``seen(key)`` is True for a repeat."""

    def __init__(self, window: int) -> None:
        self._order: deque[tuple[str, str]] = deque()
        self._keys: set[tuple[str, str]] = set()
        self._window = window

    def seen(self, key: tuple[str, str]) -> bool:
        return key in self._keys

    def add(self, key: tuple[str, str]) -> None:
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self._window:
            self._keys.discard(self._order.popleft())


class DriftFeed(Feed):
    venue = "drift"

    def __init__(self, settings: DriftSettings | None = None, **kwargs: Any) -> None:
        settings = settings or DriftSettings()
        super().__init__(settings, **kwargs)
        self.settings: DriftSettings = settings
        self.ws_compression = "deflate" if settings.drift_ws_deflate else None  # type: ignore[misc]
        self.markets = [_Market(s, market_key(self.venue, s.market)) for s in settings.market_specs()]
        self._by_book = {m.spec.book_channel: m for m in self.markets}
        self._by_trades = {m.spec.trades_channel: m for m in self.markets}
        self._fills = FillDeduplicator(settings.drift_trade_dedup_window)
        self._book_framer: AvroFramer | None = None
        self._pending_acks: set[tuple[str, str, str]] = set()
        self._acked = asyncio.Event()
        self._last_heartbeat_us = 0
        self._heartbeat_timeout_us = int(settings.drift_heartbeat_timeout * 1_000_000)
        self._http: aiohttp.ClientSession | None = None
        self.fast_encoder = False
        self.heartbeat_timeouts = 0
        self.subscribe_errors: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------------
    async def on_start(self) -> None:
        assert self.registry is not None
        self._book_framer = self.registry.framer(BOOK.schema)  # looked up by EventEmitter.prepare already
        if self.settings.drift_fast_book_encoder:
            exps = {(PRICE_EXP, m.spec.base_exp) for m in self.markets}
            self.fast_encoder = all(matches_fastavro(self._book_framer, p, s) for p, s in exps)
            if not self.fast_encoder:
                log.warning("drift: the fast BookUpdate writer disagrees with fastavro (schema changed?); "
                            "using fastavro for every snapshot")
        if self.fast_encoder:
            for m in self.markets:
                m.encoder = SnapshotEncoder(self._book_framer, venue=self.venue, market=m.spec.market,
                                            venue_symbol=m.spec.name, price_exp=PRICE_EXP, size_exp=m.spec.base_exp)
        if self.settings.drift_rest_snapshot_on_connect and self.settings.rest_url:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def on_stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def on_open(self) -> None:
        self._last_heartbeat_us = 0
        self._acked = asyncio.Event()
        self._pending_acks = set()
        for m in self.markets:
            channels = ("orderbook", "trades") if self.settings.drift_trades else ("orderbook",)
            for channel in channels:
                self._pending_acks.add((channel, m.spec.name, m.spec.market_type))
                await self.send({"type": "subscribe", "marketType": m.spec.market_type, "channel": channel,
                                 "market": m.spec.name})
        await self._acked.wait()
        self.mark_ready()
        if self._http is not None:
            for m in self.markets:
                await self._rest_snapshot(m)

    async def on_disconnect(self, reason: str) -> None:
        for m in self.markets:
            if m.published_slot is not None:
                await self._publish_reset(m, "reconnect", now_micros())

    def channel_of(self, msg: Any) -> str:
        return msg.get("channel") or "control"

    # -- messages ------------------------------------------------------------------------------
    async def on_message(self, msg: Any, receive_ts: int) -> None:
        channel = msg.get("channel")
        if channel == "heartbeat":
            self._last_heartbeat_us = receive_ts
            self.metrics.inc("heartbeats", "heartbeat")
            return
        market = self._by_book.get(channel)
        if market is not None:
            await self._on_book(market, msg["data"], receive_ts, channel)
        elif (market := self._by_trades.get(channel)) is not None:
            await self._on_fill(market, msg["data"], receive_ts, channel)
        elif channel is None or "error" in msg:
            self._on_control(msg)
        else:
            raise ValueError(f"message on a channel we did not subscribe to: {channel!r}")
        if not self._last_heartbeat_us:
            self._last_heartbeat_us = receive_ts  # the clock starts with the first frame of a connection
        elif receive_ts - self._last_heartbeat_us > self._heartbeat_timeout_us:
            self.heartbeat_timeouts += 1
            log.warning("drift: no heartbeat for %.1fs while data still flows: reconnecting",
                        (receive_ts - self._last_heartbeat_us) / 1e6)
            raise ReconnectRequested("heartbeat-timeout")

    def _on_control(self, msg: dict[str, Any]) -> None:
        if "error" in msg:  # the server answers this only for an unknown market or market type
            self.subscribe_errors.append(str(msg))
            raise TerminalFeedError(f"drift refused a subscription ({msg.get('channel')}: {msg['error']}); "
                                    f"unconfirmed: {sorted(self._pending_acks)}; check MARKETPIPE_MARKETS")
        match = _ACK.match(str(msg.get("message", "")))
        if match is None:
            raise ValueError(f"unexpected control message {msg!r}")
        if match.group(1) == "Subscribe":
            self._pending_acks.discard((match.group(2).lower(), match.group(3).upper(), match.group(4).lower()))
            if not self._pending_acks:
                self._acked.set()

    async def _on_book(self, market: _Market, data: str, receive_ts: int, channel: str) -> None:
        d = orjson.loads(data)
        slot = d["slot"]
        if type(slot) is not int:
            raise ValueError(f"slot {slot!r} is not an integer")
        last = market.last_slot
        if last is not None and (slot < last or (slot == last and market.published_slot is not None)):
            self.metrics.inc("stale", channel)  # slot regression or repeat: the server never goes back
            return
        ts = d["ts"]
        exchange_ts = ts * 1000 if type(ts) is int else to_micros(ts)
        encoder = market.encoder
        if encoder is None:
            bids = [(_units(lv["price"]), _units(lv["size"])) for lv in d["bids"]]
            asks = [(_units(lv["price"]), _units(lv["size"])) for lv in d["asks"]]
            await self._publish_snapshot(market, slot, exchange_ts, receive_ts, bids, asks, channel)
            await self._publish_ticker(market, d, exchange_ts, receive_ts)
            return
        # hot path: convert + validate + encode in one pass over the wire's level dicts
        wbids, wasks = d["bids"], d["asks"]
        value = encoder.encode_wire(f"{market.id_prefix}{slot}:{market.epoch}", exchange_ts, receive_ts, slot,
                                    market.published_slot, wbids, wasks)
        counts = self.metrics.counts  # = metrics.inc(), inlined on the hot path
        if wbids and wasks and wbids[0]["price"] >= wasks[0]["price"]:
            counts[("crossed", channel)] += 1  # the DLOB shows crossed levels on purpose; counted, kept
        assert self.publisher is not None
        await self.publisher.publish(BOOK, market.key, value, stamp=exchange_ts / 1e6)
        counts[("events_out", channel)] += 1
        market.last_slot = slot
        market.published_slot = slot
        await self._publish_ticker(market, d, exchange_ts, receive_ts)

    async def _publish_ticker(self, market: _Market, d: dict[str, Any], exchange_ts: int, receive_ts: int) -> None:
        """What the DLOB message says beside its levels, as a Ticker when any of it changed: best bid/ask and
        their sizes (the first levels), `markPrice`, and the oracle price as the index price (`oracleData.price`,
        else `oracle`). All are integer precision units on the wire; absent ones are null."""
        exp = market.spec.base_exp
        bids, asks = d["bids"], d["asks"]
        oracle = d.get("oracleData")
        oracle_price = oracle.get("price") if isinstance(oracle, dict) else None
        fields = {
            "best_bid": units_text(_units(bids[0]["price"]), PRICE_EXP) if bids else None,
            "best_bid_size": units_text(_units(bids[0]["size"]), exp) if bids else None,
            "best_ask": units_text(_units(asks[0]["price"]), PRICE_EXP) if asks else None,
            "best_ask_size": units_text(_units(asks[0]["size"]), exp) if asks else None,
            "mark_price": _price_or_none(d.get("markPrice")),
            "index_price": _price_or_none(d.get("oracle") if oracle_price is None else oracle_price),
        }
        if fields == market.ticker:
            return
        assert self.emitter is not None
        await self.emitter.ticker(market.spec.market, market.spec.name, exchange_ts=exchange_ts,
                                  receive_ts=receive_ts, channel="ticker", **fields)
        market.ticker = fields

    async def _publish_snapshot(self, market: _Market, slot: int, exchange_ts: int, receive_ts: int,
                                bids: list[tuple[int, int]], asks: list[tuple[int, int]], channel: str) -> None:
        for p, s in bids:
            if p <= 0 or s < 0:
                raise ValueError(f"bad bid level price={p} size={s}")
        for p, s in asks:
            if p <= 0 or s < 0:
                raise ValueError(f"bad ask level price={p} size={s}")
        if bids and asks and bids[0][0] >= asks[0][0]:
            self.metrics.inc("crossed", channel)  # the DLOB shows crossed levels on purpose; counted, kept
        spec = market.spec
        event_id = f"{market.id_prefix}{slot}:{market.epoch}"
        if market.encoder is not None:
            value = market.encoder.encode(event_id, exchange_ts, receive_ts, slot, market.published_slot, bids, asks)
        else:
            assert self._book_framer is not None
            value = self._book_framer.encode(snapshot_record(
                event_id, exchange_ts, receive_ts, slot, market.published_slot, bids, asks, venue=self.venue,
                market=spec.market, venue_symbol=spec.name, price_exp=PRICE_EXP, size_exp=spec.base_exp))
        assert self.publisher is not None
        await self.publisher.publish(BOOK, market.key, value, stamp=exchange_ts / 1e6)
        self.metrics.inc("events_out", channel)
        market.last_slot = slot
        market.published_slot = slot

    async def _publish_reset(self, market: _Market, reason: str, receive_ts: int) -> None:
        assert self.emitter is not None
        spec = market.spec
        await self.emitter.book({
            "event_id": stable_id(self.venue, spec.market, "book", "R", market.published_slot, market.epoch, reason),
            "venue": self.venue, "market": spec.market, "venue_symbol": spec.name, "exchange_ts": receive_ts,
            "receive_ts": receive_ts, "kind": "RESET", "sequence": market.published_slot, "prev_sequence": None,
            "checksum": None, "bids": [], "asks": [], "reason": reason,
        }, channel=spec.book_channel)
        market.published_slot = None
        market.epoch += 1

    async def _on_fill(self, market: _Market, data: str, receive_ts: int, channel: str) -> None:
        d = json.loads(data, parse_float=Decimal)
        key = (str(d["txSig"]), str(d["fillRecordId"]))
        if self._fills.seen(key):
            self.metrics.inc("stale", channel)
            return
        if d.get("marketIndex") != market.spec.index:
            raise ValueError(f"fill for market {d.get('marketIndex')!r} on {channel}")
        base_exp = market.spec.base_exp
        base = human_to_units(d["baseAssetAmountFilled"], base_exp)
        quote = human_to_units(d["quoteAssetAmountFilled"], QUOTE_EXP)
        price = fill_price_units(quote, base, base_exp)
        explanation = d.get("actionExplanation")
        assert self.emitter is not None
        await self.emitter.trade(
            market.spec.market, market.spec.name, trade_id=f"{key[0]}:{key[1]}", price=units_text(price, PRICE_EXP),
            size=units_text(base, base_exp), side=_SIDE.get(d.get("takerOrderDirection"), "UNKNOWN"),
            exchange_ts=to_micros(d["ts"]), receive_ts=receive_ts,
            liquidation=None if explanation is None else explanation == "liquidation", channel=channel)
        self._fills.add(key)

    # -- REST --------------------------------------------------------------------------------
    async def _rest_snapshot(self, market: _Market) -> None:
        """GET /l2 (levels as strings) and publish it like a WS snapshot, obeying the slot rule."""
        assert self._http is not None and self.settings.rest_url
        url = f"{self.settings.rest_url.rstrip('/')}/l2"
        params = {"marketName": market.spec.name, "marketType": market.spec.market_type, "depth": "20"}
        try:
            async with self._http.get(url, params=params) as resp:
                resp.raise_for_status()
                d = await resp.json(loads=orjson.loads)
            bids = [(json_units(lv["price"]), json_units(lv["size"])) for lv in d["bids"]]
            asks = [(json_units(lv["price"]), json_units(lv["size"])) for lv in d["asks"]]
            slot = json_units(d["slot"])
            if market.last_slot is None or slot > market.last_slot or (
                    slot == market.last_slot and market.published_slot is None):
                await self._publish_snapshot(market, slot, to_micros(d["ts"]), now_micros(), bids, asks, "rest")
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError, TypeError) as exc:
            self.metrics.inc("parse_errors", "rest")
            log.warning("drift: REST /l2 snapshot for %s failed: %s", market.spec.name, exc)


def _units(value: Any) -> int:
    return value if type(value) is int else json_units(value)


def _price_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else units_text(_units(value), PRICE_EXP)

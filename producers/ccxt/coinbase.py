"""Coinbase Advanced Trade over ccxt: what ccxt 4.5.90 leaves out and the producer adds.

ccxt's coinbase client opens one socket (``wss://advanced-trade-ws.coinbase.com``) for every channel and
market, needs no auth for ``level2``/``market_trades``/``ticker``, and:

- **ignores ``sequence_num``.** Coinbase numbers the messages of a *connection* (all channels, all products)
  0, 1, 2...; a hole means some message was lost, and nothing says which. ccxt applies ``l2_data`` updates
  with no check, so one lost update leaves a wrong level for good. :func:`install_sequence_check` checks
  the number before ccxt sees each message; on a hole it drops the message that revealed it, unsubscribes
  every market channel of that socket and fails those subscriptions (``level2``: the book is forgotten,
  ``InvalidNonce``; ``market_trades`` and ``ticker`` likewise): the book task publishes a RESET (reason
  ``gap``) and each ``watch_*`` subscribes again, which brings a fresh ``snapshot`` (book, recent trades,
  ticker). It unsubscribes first because the docs do not say what a second subscribe to a subscribed
  channel does (the simulator takes the strict reading: acknowledged, no new snapshot). Trades the snapshot repeats are
  dropped by id (``trade_dedup_window``). Switched off by ``check_sequence=False`` (the control experiment).
- **has no trade history by id.** After a resubscribe (gap or reconnect) the ``market_trades`` snapshot (the
  most recent trades) is all that brings back trades made meanwhile. :func:`install_trade_snapshot_check`
  remembers the newest trade seen per product; a snapshot that no longer contains it and starts after it
  means trades in between may be missing: a gap marker (reason ``snapshot-short``, between those two ids
  and times) goes into the market's trade queue ahead of the snapshot's trades. The trades a snapshot repeats
  are cut from it before ccxt parses it. At start-up the newest trade per market is read back from Kafka
  (``trade_resume_scan_max``), so a restart is treated like a reconnect: nothing published twice, and a
  marker if the first snapshot no longer reaches back to it.
- **never subscribes to ``heartbeats``.** "Most channels close within 60-90 seconds if no updates are sent";
  a quiet product's subscription then ends silently and its book stops changing without any error.
  :meth:`CoinbaseChannels._heartbeats_body` keeps a ``heartbeats`` subscription on the socket (resubscribed
  after every reconnect); each heartbeat counts as data for ``/ready``. Switched off by ``heartbeats=False``.

A disconnect is ccxt's NetworkError: RESET ``reconnect``, then new snapshots on the new socket, whose
``sequence_num`` starts at 0 again. Every reach into ccxt is in ``fence.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from ccxt.base.errors import InvalidNonce
from prometheus_client import Counter

from producers.ccxt.fence import (
    check_messages_first,
    coinbase_subscribe,
    connection_state,
    fail_book_subscription,
    fail_subscription,
    resolve,
    send_in_background,
    subscription_hashes,
)
from producers.ccxt.host import Body, ChannelHost, TradeHole, WatchedMarket
from producers.core.backoff import Backoff

log = logging.getLogger(__name__)

SEQUENCE_GAPS = Counter("marketpipe_ccxt_sequence_gaps_total",
                        "Holes in a venue's per-connection message sequence (each resubscribes the socket's markets)",
                        ["venue"])
HEARTBEATS = "heartbeats"
RESUBSCRIBED = ("level2::", "market_trades::", "ticker::")


def install_sequence_check(exchange: Any, venue: str) -> None:
    """Check Coinbase's per-connection ``sequence_num`` before ccxt handles a message (see module doc)."""

    def check(client: Any, message: Any) -> bool:
        if not isinstance(message, dict):
            return True
        if message.get("channel") == HEARTBEATS:
            resolve(client, message, HEARTBEATS)  # ccxt's handler resolves nothing: wake the heartbeats task
        seq = message.get("sequence_num")
        if type(seq) is not int:
            return True
        state = connection_state(client)
        expected = state.get("next_sequence")
        state["next_sequence"] = seq + 1
        if expected is None or seq == expected:
            return True
        SEQUENCE_GAPS.labels(venue).inc()
        log.warning("%s: sequence_num %d after %d on %s: a message was lost, resubscribing every market of "
                    "this socket", venue, seq, expected - 1, getattr(client, "url", "?"))
        error = InvalidNonce(f"{exchange.id} sequence_num gap: expected {expected}, got {seq}")
        failed = [h for h in subscription_hashes(client) if h.startswith(RESUBSCRIBED)]
        products: dict[str, list[str]] = {}
        for message_hash in failed:
            channel, symbol = message_hash.split("::", 1)
            products.setdefault(channel, []).append(str(exchange.market(symbol)["id"]))
        for channel, ids in products.items():  # first, so the resubscribe is a new subscription
            send_in_background(client, {"type": "unsubscribe", "product_ids": ids, "channel": channel})
        for message_hash in failed:
            if message_hash.startswith("level2::"):
                fail_book_subscription(exchange, client, message_hash, message_hash.split("::", 1)[1], error)
            else:
                fail_subscription(client, message_hash, error)
        return False  # its content may depend on the lost one; the snapshots replace it

    check_messages_first(exchange, check)


SEQUENCE_CHECKS = {"coinbase": install_sequence_check}


class TradeSnapshotCheck:
    """Where trades may be missing after a resubscribe or a restart (see module doc). Runs before ccxt parses a
    ``market_trades`` message: a hole lands in the trade queue ahead of the snapshot's trades, and the trades
    of a snapshot already seen (the newest seen and everything older) are cut from it, so ccxt parses only
    new ones. ``seed`` sets the newest trade published before this process started (read back from Kafka)."""

    def __init__(self, exchange: Any, on_hole: Callable[[str, TradeHole], None]) -> None:
        self.exchange = exchange
        self.on_hole = on_hole
        self.newest: dict[str, tuple[str, int]] = {}  # product -> (trade id, venue ms) of the newest trade seen

    def seed(self, product: str, trade_id: str, ts_ms: int) -> None:
        self.newest[product] = (trade_id, ts_ms)

    def check(self, client: Any, message: Any) -> bool:
        if not isinstance(message, dict) or message.get("channel") != "market_trades":
            return True
        try:
            return self._check_events(message.get("events") or [])
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # malformed: ccxt's guard deals with it
            log.debug("%s: market_trades message not checked (%s)", self.exchange.id, exc)
            return True

    def _check_events(self, events: list[Any]) -> bool:
        fresh = False
        for event in events:
            trades = [t for t in event.get("trades") or [] if isinstance(t, dict) and t.get("trade_id")]
            if not trades:
                continue
            product = str(trades[0].get("product_id"))
            seen = self.newest.get(product)
            if event.get("type") == "snapshot" and seen is not None:
                ids = [str(t["trade_id"]) for t in trades]  # newest first
                if seen[0] in ids:
                    trades = trades[:ids.index(seen[0])]  # the rest was published already
                    event["trades"] = trades
                else:
                    oldest_ms = self._ms(trades[-1])
                    if oldest_ms >= seen[1]:  # the snapshot starts after the newest trade seen
                        self.on_hole(self.exchange.safe_symbol(product), TradeHole(
                            reason="snapshot-short", from_ms=seen[1], to_ms=oldest_ms, after_id=seen[0],
                            before_id=str(trades[-1]["trade_id"])))
            if not trades:
                continue
            fresh = True
            first = (str(trades[0]["trade_id"]), self._ms(trades[0]))
            if seen is None or first[1] >= seen[1]:
                self.newest[product] = first
        return fresh or not events  # a snapshot with nothing new is dropped (ccxt cannot parse an empty one)

    def _ms(self, trade: dict[str, Any]) -> int:
        return int(self.exchange.parse8601(trade.get("time")) or 0)


_SNAPSHOT_CHECKS: WeakKeyDictionary[Any, TradeSnapshotCheck] = WeakKeyDictionary()


def install_trade_snapshot_check(exchange: Any, on_hole: Callable[[str, TradeHole], None]) -> TradeSnapshotCheck:
    check = _SNAPSHOT_CHECKS[exchange] = TradeSnapshotCheck(exchange, on_hole)
    check_messages_first(exchange, check.check)
    return check


def trade_snapshot_check(exchange: Any) -> TradeSnapshotCheck | None:
    """The check installed on ``exchange`` (to seed it at start-up), if any."""
    return _SNAPSHOT_CHECKS.get(exchange)


TRADE_SNAPSHOT_CHECKS = {"coinbase": install_trade_snapshot_check}


class CoinbaseChannels(ChannelHost):
    _by_symbol: dict[str, WatchedMarket]

    def _trade_hole(self, symbol: str, hole: TradeHole) -> None:
        """Runs inside ccxt's socket reader: enqueue only."""
        m = self._by_symbol.get(symbol)
        if m is not None:
            m.trades.put_hole(hole)

    def _heartbeats_body(self) -> Body:
        async def body(backoff: Backoff) -> None:
            while True:
                await coinbase_subscribe(self.exchange, HEARTBEATS)
                self._got_data(HEARTBEATS, HEARTBEATS, backoff)

        return body

    def _venue_bodies(self) -> list[tuple[str, Body]]:
        """Channels a venue needs beside the per-market ones (Coinbase: ``heartbeats``)."""
        if self.exchange.id == "coinbase" and self.settings.heartbeats:
            return [(HEARTBEATS, self._heartbeats_body())]
        return []

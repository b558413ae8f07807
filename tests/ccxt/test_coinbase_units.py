"""The Coinbase checks on their own (no sockets, no Kafka): per-connection ``sequence_num`` and the
``market_trades`` snapshot overlap, fed messages shaped like the venue's into a real ccxt coinbase instance."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt.pro as ccxtpro
from ccxt.base.errors import InvalidNonce

from producers.ccxt.coinbase import install_sequence_check, install_trade_snapshot_check
from producers.ccxt.host import TradeHole


class RecordingClient:
    """Just what the checks and ccxt's handlers touch on ccxt's ``Client``: subscriptions, futures."""

    def __init__(self, subscriptions: list[str]) -> None:
        self.url = "ws://sim/ws"
        self.subscriptions: dict[str, Any] = dict.fromkeys(subscriptions, True)
        self.rejected: dict[str, Exception] = {}
        self.resolved: list[str] = []
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def reject(self, error: Exception, message_hash: str) -> None:
        self.rejected[message_hash] = error

    def resolve(self, result: Any, message_hash: str) -> Any:
        self.resolved.append(message_hash)
        return result


def exchange() -> Any:
    ex = ccxtpro.coinbase({})
    ex.set_markets([{"id": f"{b}-USD", "symbol": f"{b}/USD", "base": b, "quote": "USD", "baseId": b, "quoteId": "USD",
                     "type": "spot", "spot": True, "active": True} for b in ("BTC", "ETH")])
    handled: list[dict[str, Any]] = []
    ex.handle_message = lambda client, message: handled.append(message)  # what ccxt would handle
    ex.handled = handled
    return ex


def envelope(seq: int, channel: str = "l2_data") -> dict[str, Any]:
    return {"channel": channel, "client_id": "", "timestamp": "2026-01-01T00:00:00.000000Z", "sequence_num": seq,
            "events": []}


async def test_a_sequence_hole_drops_the_message_and_resubscribes_every_market_channel_of_that_socket():
    ex = exchange()
    install_sequence_check(ex, "coinbase-test")
    client = RecordingClient(["level2::BTC/USD", "market_trades::BTC/USD", "ticker::ETH/USD", "heartbeats"])
    ex.orderbooks["BTC/USD"] = object()
    for seq in (0, 1, 2):
        ex.handle_message(client, envelope(seq))
    assert client.rejected == {} and len(ex.handled) == 3
    ex.handle_message(client, envelope(4))  # 3 never arrived
    assert len(ex.handled) == 3  # the revealing message is dropped: snapshots replace it
    assert set(client.rejected) == {"level2::BTC/USD", "market_trades::BTC/USD", "ticker::ETH/USD"}
    assert all(isinstance(e, InvalidNonce) for e in client.rejected.values())
    assert set(client.subscriptions) == {"heartbeats"}  # dropped: the next watch_* subscribes again
    assert "BTC/USD" not in ex.orderbooks  # the book is forgotten until the new snapshot
    await asyncio.sleep(0)  # the unsubscribes are queued on the socket ahead of the resubscribes
    assert sorted(client.sent, key=lambda m: m["channel"]) == [
        {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
        {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channel": "market_trades"},
        {"type": "unsubscribe", "product_ids": ["ETH-USD"], "channel": "ticker"}]
    ex.handle_message(client, envelope(5))  # the count continues from the hole
    assert len(ex.handled) == 4


def test_a_new_socket_starts_again_at_zero_and_messages_without_a_number_pass():
    ex = exchange()
    install_sequence_check(ex, "coinbase-test")
    old, new = RecordingClient(["level2::BTC/USD"]), RecordingClient(["level2::BTC/USD"])
    for seq in range(5):
        ex.handle_message(old, envelope(seq))
    ex.handle_message(new, envelope(0))  # after a reconnect ccxt has a new Client: its own count
    ex.handle_message(new, {"type": "error", "message": "no sequence_num"})
    ex.handle_message(new, envelope(1, "heartbeats"))
    assert old.rejected == {} and new.rejected == {} and len(ex.handled) == 8
    assert new.resolved == ["heartbeats"]  # heartbeats wake the producer's heartbeats task


def trades_message(kind: str, trades: list[tuple[int, str]], product: str = "BTC-USD") -> dict[str, Any]:
    """``trades``: (id, ISO time), newest first, as Coinbase sends them."""
    return {"channel": "market_trades", "client_id": "", "timestamp": "2026-01-01T00:00:00Z", "sequence_num": 0,
            "events": [{"type": kind, "trades": [
                {"trade_id": str(i), "product_id": product, "price": "1.00", "size": "1", "side": "BUY",
                 "time": ts} for i, ts in trades]}]}


def test_a_snapshot_that_no_longer_reaches_the_newest_trade_seen_is_a_hole():
    ex = exchange()
    ex.safe_symbol = lambda product: product.replace("-", "/")
    holes: list[tuple[str, TradeHole]] = []
    check = install_trade_snapshot_check(ex, lambda symbol, hole: holes.append((symbol, hole)))
    client = RecordingClient([])
    ex.handle_message(client, trades_message("snapshot", [(11, "2026-01-01T00:00:11Z"), (10, "2026-01-01T00:00:10Z")]))
    ex.handle_message(client, trades_message("update", [(12, "2026-01-01T00:00:12Z")]))
    # a resubscribe whose snapshot still holds trade 12: nothing can be missing, and ccxt parses only 13, 14
    ex.handle_message(client, trades_message("snapshot", [(14, "2026-01-01T00:00:14Z"), (13, "2026-01-01T00:00:13Z"),
                                                          (12, "2026-01-01T00:00:12Z")]))
    assert holes == []
    assert [t["trade_id"] for t in ex.handled[-1]["events"][0]["trades"]] == ["14", "13"]
    # a snapshot with nothing new is not handed to ccxt at all (it cannot parse an empty one)
    ex.handle_message(client, trades_message("snapshot", [(14, "2026-01-01T00:00:14Z"), (13, "2026-01-01T00:00:13Z")]))
    assert len(ex.handled) == 3
    # a snapshot starting after trade 14: 15..19 may be missing
    ex.handle_message(client, trades_message("snapshot", [(21, "2026-01-01T00:00:21Z"), (20, "2026-01-01T00:00:20Z")]))
    assert len(holes) == 1
    symbol, hole = holes[0]
    assert symbol == "BTC/USD" and (hole.reason, hole.after_id, hole.before_id) == ("snapshot-short", "14", "20")
    assert (hole.from_ms, hole.to_ms) == (ex.parse8601("2026-01-01T00:00:14Z"), ex.parse8601("2026-01-01T00:00:20Z"))
    assert hole.count == 0  # nothing was refused by a queue
    # another product is tracked on its own; seeded (the newest trade in Kafka at start-up), a restart is a reconnect
    check.seed("ETH-USD", "5", ex.parse8601("2026-01-01T00:00:05Z"))
    ex.handle_message(client, trades_message("snapshot", [(6, "2026-01-01T00:00:06Z"), (5, "2026-01-01T00:00:05Z"),
                                                          (4, "2026-01-01T00:00:04Z")], product="ETH-USD"))
    assert len(holes) == 1 and [t["trade_id"] for t in ex.handled[-1]["events"][0]["trades"]] == ["6"]

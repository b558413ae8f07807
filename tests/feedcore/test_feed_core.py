"""Feed core transport: frame splitting, malformed input, reconnect + resubscribe, watchdog, terminal
errors, give-up, health endpoints. A scripted local WebSocket server plays the venue; events are
captured in memory (Kafka output is covered by test_emitter_kafka.py)."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from websockets.asyncio.server import ServerConnection

from marketpipe.infra.ports import free_port
from producers.core.errors import TerminalFeedError
from producers.core.metrics import FeedMetrics
from producers.core.settings import FeedSettings
from schemas.topics import TRADES
from tests.feedcore.capture import CapturingEmitter
from tests.feedcore.fake_venue import ProbeFeed, ScriptedServer


def trade(i: int, price: object = "100.5") -> str:
    return orjson.dumps({"ch": "trades", "market": "BTC-USD", "id": str(i), "price": price, "size": "0.25",
                         "ts": 1700000000123456}).decode()


def make_feed(url: str, **overrides: object) -> tuple[ProbeFeed, CapturingEmitter]:
    knobs: dict[str, object] = {"reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.2, "watchdog_seconds": 5,
                                "ws_ping_interval": None, "subscribe_timeout": 2, **overrides}
    settings = FeedSettings(ws_url=url, **knobs)  # type: ignore[arg-type]
    metrics = FeedMetrics("probe")
    emitter = CapturingEmitter("probe", metrics)
    return ProbeFeed(settings, metrics=metrics, emitter=emitter, serve_health="health_port" in overrides), emitter


async def wait_until(predicate: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_frames_are_split_malformed_lines_skipped_floats_reparsed_exactly() -> None:
    async def script(i: int, ws: ServerConnection, srv: ScriptedServer) -> None:
        await srv.wait_for(i, lambda r: {"op": "subscribe"} in r)
        await ws.send("\n".join([trade(1), "{not json", "{}", trade(2), '{"ch": "trades", "market": "X"}']))
        await ws.send(trade(3, price=25.4631).replace("25.4631", "25.46310"))  # a JSON number, 6 digits
        await ws.send("\n\n" + trade(4) + "\n")
        await asyncio.sleep(30)

    async with ScriptedServer(script) as srv:
        feed, emitter = make_feed(srv.url)
        task = asyncio.create_task(feed.run())
        try:
            await wait_until(lambda: len(emitter.of(TRADES)) == 4)
            await srv.wait_for(0, lambda r: {} in r)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    trades = emitter.of(TRADES)
    assert [t["trade_id"] for t in trades] == ["1", "2", "3", "4"]
    assert trades[2]["price"] == "25.46310"  # the venue's digits, not float repr
    assert feed.metrics.count("parse_errors") == 2  # bad JSON + missing fields
    assert feed.metrics.count("messages_in") == 7  # every non-empty line, malformed ones included
    assert feed.metrics.frames == 3
    assert feed.metrics.count("reparsed") == 1
    assert srv.received[0][0] == {"op": "subscribe"} and {} in srv.received[0]


async def test_abrupt_disconnect_reconnects_and_resubscribes() -> None:
    async def script(i: int, ws: ServerConnection, srv: ScriptedServer) -> None:
        await srv.wait_for(i, lambda r: {"op": "subscribe"} in r)
        await ws.send(trade(10 + i))
        if i < 2:
            await asyncio.sleep(0.05)
            ws.transport.abort()  # no close frame: like a dropped TCP connection
            return
        await asyncio.sleep(30)

    async with ScriptedServer(script) as srv:
        feed, emitter = make_feed(srv.url)
        task = asyncio.create_task(feed.run())
        try:
            await wait_until(lambda: len(emitter.of(TRADES)) == 3)
            await wait_until(lambda: feed.ready)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert srv.connections == 3
    assert all(srv.received[i][0] == {"op": "subscribe"} for i in range(3))
    assert feed.metrics.count("reconnects") == 2 and len(feed.disconnects) == 2
    assert [t["trade_id"] for t in emitter.of(TRADES)] == ["10", "11", "12"]


async def test_silent_venue_trips_the_watchdog() -> None:
    async def script(i: int, ws: ServerConnection, srv: ScriptedServer) -> None:
        if i == 0:
            await asyncio.sleep(30)  # connected, subscribed, then nothing at all
        await ws.send(trade(1))
        await asyncio.sleep(30)

    async with ScriptedServer(script) as srv:
        feed, emitter = make_feed(srv.url, watchdog_seconds=0.4)
        task = asyncio.create_task(feed.run())
        try:
            await wait_until(lambda: len(emitter.of(TRADES)) == 1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert feed.metrics.reconnect_reasons["watchdog"] == 1
    assert srv.connections == 2


async def test_terminal_close_code_stops_with_a_clear_error() -> None:
    async def script(i: int, ws: ServerConnection, srv: ScriptedServer) -> None:
        await ws.close(3500, "invalid token")

    async with ScriptedServer(script) as srv:
        feed, _ = make_feed(srv.url)
        with pytest.raises(TerminalFeedError, match="3500.*invalid token.*terminal"):
            await asyncio.wait_for(feed.run(), 10)
        assert srv.connections == 1
    assert feed.readiness() == (False, f"stopped: {feed.stop_reason}")


async def test_non_terminal_close_code_reconnects() -> None:
    async def script(i: int, ws: ServerConnection, srv: ScriptedServer) -> None:
        if i == 0:
            await ws.close(3012, "no pong")
            return
        await ws.send(trade(1))
        await asyncio.sleep(30)

    async with ScriptedServer(script) as srv:
        feed, emitter = make_feed(srv.url)
        task = asyncio.create_task(feed.run())
        try:
            await wait_until(lambda: len(emitter.of(TRADES)) == 1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert feed.metrics.reconnect_reasons["close"] == 1 and feed.disconnects[0].startswith("close 3012")


async def test_unreachable_venue_gives_up_after_max_attempts() -> None:
    feed, _ = make_feed(f"ws://127.0.0.1:{free_port()}/ws", reconnect_max_attempts=3)
    with pytest.raises(TerminalFeedError, match="gave up after 3"):
        await asyncio.wait_for(feed.run(), 10)
    assert feed.connections == 0


async def test_health_ready_and_metrics_endpoints() -> None:
    async def script(i: int, ws: ServerConnection, srv: ScriptedServer) -> None:
        await ws.send(trade(1))
        await asyncio.sleep(30)

    port = free_port()
    async with ScriptedServer(script) as srv:
        feed, emitter = make_feed(srv.url, health_port=port, health_host="127.0.0.1")
        async with aiohttp.ClientSession() as http:
            task = asyncio.create_task(feed.run())
            try:
                await wait_until(lambda: len(emitter.of(TRADES)) == 1)
                base = f"http://127.0.0.1:{port}"
                async with http.get(f"{base}/health") as r:
                    assert r.status == 200
                async with http.get(f"{base}/ready") as r:
                    assert r.status == 200, await r.text()
                async with http.get(f"{base}/metrics") as r:
                    text = await r.text()
                assert 'marketpipe_feed_messages_total{channel="trades",venue="probe"}' in text
                assert 'marketpipe_feed_last_message_age_seconds{channel="trades",venue="probe"}' in text
                feed.connected = False  # as after a disconnect
                async with http.get(f"{base}/ready") as r:
                    assert r.status == 503 and "not connected" in await r.text()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

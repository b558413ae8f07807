"""A minimal venue for testing the feed core's transport: a scripted WebSocket server + a tiny Feed.

``ScriptedServer(script)``: each accepted connection runs ``await script(index, ws, server)``; the server
records every text message the client sends (``received[index]``). ``ProbeFeed`` subscribes with
``{"op": "subscribe"}``, answers ``{}`` pings with ``{}``, and publishes ``{"ch": "trades", ...}``
messages as trades through its emitter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve

from producers.core.feed import Feed
from producers.core.numbers import to_micros

Script = Callable[[int, ServerConnection, "ScriptedServer"], Awaitable[None]]


class ScriptedServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.port = 0
        self.connections = 0
        self.received: dict[int, list[Any]] = {}
        self._server: Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ScriptedServer:
        self._server = await serve(self._handle, "127.0.0.1", 0, ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1]  # type: ignore[index]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        for task in self._handlers:
            task.cancel()
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def _handle(self, ws: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        me = asyncio.current_task()
        assert me is not None
        self._handlers.add(me)
        self.received[index] = []
        recorder = asyncio.create_task(self._record(index, ws))
        try:
            await self.script(index, ws, self)
        finally:
            recorder.cancel()
            self._handlers.discard(me)

    async def _record(self, index: int, ws: ServerConnection) -> None:
        async for msg in ws:
            self.received[index].append(orjson.loads(msg))

    async def wait_for(self, index: int, predicate: Callable[[list[Any]], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.received.get(index, [])):
                await asyncio.sleep(0.01)


class ProbeFeed(Feed):
    venue = "probe"
    terminal_codes = frozenset({3500})

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.disconnects: list[str] = []

    async def on_open(self) -> None:
        await self.send({"op": "subscribe"})
        self.mark_ready()

    def channel_of(self, msg: Any) -> str:
        return msg.get("ch", "-") if isinstance(msg, dict) else "-"

    async def on_message(self, msg: Any, receive_ts: int) -> None:
        if msg == {}:
            self.metrics.inc("heartbeats", "-")
            await self.send({})
            return
        assert self.emitter is not None
        await self.emitter.trade(msg["market"], msg["market"], trade_id=msg["id"], price=msg["price"],
                                 size=msg["size"], side="BUY", exchange_ts=to_micros(msg["ts"]), receive_ts=receive_ts)

    async def on_disconnect(self, reason: str) -> None:
        self.disconnects.append(reason)

    def close_is_terminal(self, code: int | None, reason: str) -> bool:
        return code in self.terminal_codes

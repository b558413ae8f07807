"""`marketpipe record`: a transparent recording proxy between a producer and a venue.

The producer is pointed at the proxy instead of the venue (its ws/rest URL settings); the proxy opens
the same path upstream, relays WebSocket frames and HTTP requests both ways, and appends every frame to a
JSON-lines file with its receive timestamp (µs):

    {"t": 1732000000123456, "conn": 3, "kind": "ws", "dir": "in", "data": "<frame text>"}
    {"t": ..., "conn": 3, "kind": "ws-open", "path": "/ws/0"}
    {"t": ..., "conn": 3, "kind": "ws-close", "code": 1000, "by": "venue"}
    {"t": ..., "conn": 4, "kind": "http", "method": "GET", "path": "/api/v3/depth?symbol=BTCUSDT",
     "status": 200, "data": "<body>", "content_type": "application/json"}

"in" = venue -> producer, "out" = producer -> venue. Being protocol-agnostic, it records any venue,
and `simulators.replay` serves such a file back (see there). Binary frames are stored base64 with "b64".
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

log = logging.getLogger(__name__)


def now_us() -> int:
    return time.time_ns() // 1000


class SessionRecorder:
    def __init__(self, upstream: str, out: Path) -> None:
        self.upstream = upstream.rstrip("/")
        self.out = out
        self._file = out.open("ab")
        self._conn_ids = itertools.count(1)
        self.frames = 0
        self._session: aiohttp.ClientSession | None = None

    def write(self, entry: dict[str, Any]) -> None:
        self._file.write(orjson.dumps(entry) + b"\n")
        self.frames += 1

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=True)
        conn = next(self._conn_ids)
        url = self.upstream + str(request.rel_url)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._relay_ws(request, url, conn)
        return await self._relay_http(request, url, conn)

    async def _relay_http(self, request: web.Request, url: str, conn: int) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(request.method, url, data=body or None, headers=headers) as resp:
            data = await resp.read()
            ctype = resp.headers.get("Content-Type", "application/json")
            self.write({"t": now_us(), "conn": conn, "kind": "http", "method": request.method,
                        "path": str(request.rel_url), "status": resp.status, "content_type": ctype,
                        "data": data.decode(errors="replace")})
            return web.Response(body=data, status=resp.status, headers={"Content-Type": ctype})

    async def _relay_ws(self, request: web.Request, url: str, conn: int) -> web.WebSocketResponse:
        assert self._session is not None
        ws_url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        client = web.WebSocketResponse(autoping=True, max_msg_size=0)
        try:
            upstream = await self._session.ws_connect(ws_url, autoping=True, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:  # venue refused the upgrade: say the same
            self.write({"t": now_us(), "conn": conn, "kind": "ws-refused", "path": str(request.rel_url),
                        "status": exc.status, "data": exc.message})
            return web.Response(status=exc.status, text=exc.message)  # type: ignore[return-value]
        await client.prepare(request)
        self.write({"t": now_us(), "conn": conn, "kind": "ws-open", "path": str(request.rel_url)})

        async def pump(src: Any, dst: Any, direction: str) -> None:
            async for msg in src:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.write({"t": now_us(), "conn": conn, "kind": "ws", "dir": direction, "data": msg.data})
                    await dst.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self.write({"t": now_us(), "conn": conn, "kind": "ws", "dir": direction,
                                "b64": base64.b64encode(msg.data).decode()})
                    await dst.send_bytes(msg.data)
                else:
                    break

        tasks = [asyncio.create_task(pump(upstream, client, "in")), asyncio.create_task(pump(client, upstream, "out"))]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        by = "venue" if tasks[0] in done else "producer"
        for t in tasks:
            t.cancel()
        code = upstream.close_code or client.close_code or 1000
        self.write({"t": now_us(), "conn": conn, "kind": "ws-close", "code": code, "by": by})
        await upstream.close()
        await client.close(code=code)
        self._file.flush()
        return client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._file.close()


async def start_recorder(upstream: str, out: Path, host: str = "127.0.0.1", port: int = 0
                         ) -> tuple[SessionRecorder, web.AppRunner, int]:
    recorder = SessionRecorder(upstream, out)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    return recorder, runner, int(bound)


async def run_recorder(upstream: str, out: Path, port: int, duration: float | None) -> None:
    recorder, runner, bound = await start_recorder(upstream, out, port=port)
    print(f"recording {upstream} -> {out}; point the producer at http://127.0.0.1:{bound} "
          f"(ws://127.0.0.1:{bound}/...)", flush=True)
    try:
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            await asyncio.sleep(5)
            print(f"recorded {recorder.frames} frames", flush=True)
    finally:
        await runner.cleanup()
        await recorder.close()

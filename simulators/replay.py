"""Serves a session recorded by `marketpipe record` back to a producer, at original or accelerated speed.

Each WebSocket connection the producer opens gets the frames of the next recorded connection, in order.
Replay is lockstep with the producer: a recorded venue frame that followed the producer's k-th message
is sent only after the producer has sent k messages on this connection (so connect/subscribe replies
arrive after the requests, as live). Timing between venue frames follows the recording divided by
`speed` (speed <= 0: as fast as possible). Recorded HTTP exchanges are answered by method and path, in
recorded order. Once a connection's frames are exhausted it closes with the recorded close code when the venue closed
it, and waits for the producer to hang up when the producer did.

This module never imports producer code: it only knows the recording format.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from simulators.http import serve_app


def load(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


class SessionReplayer:
    def __init__(self, entries: list[dict[str, Any]], speed: float = 1.0) -> None:
        self.speed = speed
        self.http: dict[tuple[str, str], deque[dict[str, Any]]] = defaultdict(deque)
        self.ws_sessions: deque[list[dict[str, Any]]] = deque()
        by_conn: dict[int, list[dict[str, Any]]] = defaultdict(list)
        order: list[int] = []
        for e in entries:
            if e["kind"] == "http":
                self.http[(e["method"], e["path"])].append(e)
            else:
                if e["conn"] not in by_conn:
                    order.append(e["conn"])
                by_conn[e["conn"]].append(e)
        for conn in order:
            if by_conn[conn][0]["kind"] == "ws-open":
                self.ws_sessions.append(by_conn[conn])
        self.sent = 0
        self.finished = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._ws(request)
        key = (request.method, str(request.rel_url))
        queue = self.http.get(key)
        if not queue:
            return web.Response(status=404, text=f"no recorded response for {key[0]} {key[1]}")
        e = queue.popleft() if len(queue) > 1 else queue[0]
        return web.Response(text=e["data"], status=e["status"], content_type=e["content_type"].split(";")[0])

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        if not self.ws_sessions:
            await ws.prepare(request)
            await ws.close(code=1013, message=b"recording exhausted")
            self.finished.set()
            return ws
        frames = self.ws_sessions.popleft()
        await ws.prepare(request)
        received = 0
        got_message = asyncio.Event()

        async def reader() -> None:
            nonlocal received
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    received += 1
                    got_message.set()

        read_task = asyncio.create_task(reader())
        try:
            outs_seen = 0
            prev_t: int | None = None
            for e in frames:
                if e["kind"] == "ws" and e["dir"] == "out":
                    outs_seen += 1
                    continue
                if e["kind"] == "ws-close":
                    if e.get("by") == "producer":  # the producer hung up: leave that to it again
                        await read_task
                    else:
                        await ws.close(code=int(e.get("code") or 1000))
                    break
                if e["kind"] != "ws":
                    continue
                while received < outs_seen and not ws.closed:  # lockstep with the producer's requests
                    got_message.clear()
                    try:
                        await asyncio.wait_for(got_message.wait(), 10)
                    except TimeoutError:
                        break
                if prev_t is not None and self.speed > 0:
                    await asyncio.sleep(max(0.0, (e["t"] - prev_t) / 1e6 / self.speed))
                prev_t = e["t"]
                if ws.closed:
                    break
                if "b64" in e:
                    await ws.send_bytes(base64.b64decode(e["b64"]))
                else:
                    await ws.send_str(e["data"])
                self.sent += 1
            else:
                await ws.close()
        finally:
            read_task.cancel()
            if not self.ws_sessions:
                self.finished.set()
        return ws


async def start_replayer(path: Path, speed: float = 1.0, host: str = "127.0.0.1", port: int = 0
                         ) -> tuple[SessionReplayer, web.AppRunner, int]:
    replayer = SessionReplayer(load(path), speed)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", replayer.handle)
    runner, bound = await serve_app(app, port, host)
    return replayer, runner, bound


async def _main(path: Path, speed: float, port: int, duration: float) -> None:
    replayer, runner, bound = await start_replayer(path, speed, port=port)
    print(f"replaying {path} at speed {speed} on http://127.0.0.1:{bound} (ws://127.0.0.1:{bound}/...)", flush=True)
    try:
        await asyncio.wait_for(replayer.finished.wait(), duration)
    except TimeoutError:
        pass
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m simulators.replay")
    ap.add_argument("recording", type=Path)
    ap.add_argument("--speed", type=float, default=1.0, help="1 = original timing, 10 = ten times faster, 0 = max")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--duration", type=float, default=600, help="stop after this many seconds at the latest")
    args = ap.parse_args(argv)
    asyncio.run(_main(args.recording, args.speed, args.port, args.duration))


if __name__ == "__main__":
    main()

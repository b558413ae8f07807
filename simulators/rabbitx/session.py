"""One client connection to the RabbitX simulator: Centrifugo JSON commands, pings, expiry, batching.

- Commands (one per line, several per frame allowed): ``connect`` (JWT; invalid -> close 3500,
  expired -> error 109), ``refresh``, ``subscribe`` (reply carries the channel snapshot in
  ``subscribe.data``; errors 102/103/105), ``unsubscribe``; ``{}`` is the client's pong. Unknown
  fields (``name``) are ignored; ids are echoed verbatim; commands may be pipelined before the
  connect reply.
- A ``{}`` ping every ``ping_interval`` s, queued with data so it can share a frame; no ``{}`` back
  within ``pong_timeout`` -> close 3012. Token ``exp`` passes without a refresh -> close 3005.
- Outgoing messages are queued and written up to ``batch_max`` per frame, joined by ``\\n``. A queue
  longer than ``max_queue`` (client not reading) -> close 3008 "slow".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from simulators.rabbitx import wire
from simulators.rabbitx.tokens import TokenExpired, TokenInvalid

if TYPE_CHECKING:
    from simulators.rabbitx.server import RabbitXSimulator


class Session:
    def __init__(self, sim: RabbitXSimulator, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.sim = sim
        self.ws = ws
        self.request = request
        self.client_id = str(uuid.uuid4())
        self.profile_id: str | None = None
        self.token_exp: float | None = None
        self.subs: set[str] = set()
        self.out: deque[str] = deque()
        self.batch_max = sim.config.batch_max
        self._wake = asyncio.Event()
        self._pong_deadline: float | None = None
        self._closing = False
        self.frames_sent = 0
        self.messages_sent = 0
        self.commands: list[dict[str, Any]] = []

    # -- output ------------------------------------------------------------------------------------
    def send(self, line: str) -> None:
        if self._closing:
            return
        self.out.append(line)
        if len(self.out) > self.sim.config.max_queue:
            self.sim.stats["slow_closes"] += 1
            asyncio.get_running_loop().create_task(self.close(3008))
            return
        self._wake.set()

    async def _writer(self) -> None:
        out = self.out
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while out and not self._closing:
                until = self.sim.silent_until
                if until > time.monotonic():
                    await asyncio.sleep(until - time.monotonic())
                    continue
                n = min(len(out), self.batch_max)
                lines = [out.popleft() for _ in range(n)]
                if n == 1:
                    frame = lines[0]
                else:
                    frame = "\n".join(lines)
                    if "{}" in lines:
                        self.sim.stats["pings_sharing_a_frame"] += 1
                try:
                    await self.ws.send_str(frame)
                except (ConnectionResetError, RuntimeError):
                    return
                self.frames_sent += 1
                self.messages_sent += n
                self.sim.stats["frames_sent"] += 1
                self.sim.stats["messages_sent"] += n

    async def close(self, code: int) -> None:
        if self._closing:
            return
        self._closing = True
        self.sim.stats[f"close_{code}"] += 1
        await self.ws.close(code=code, message=wire.CLOSE_CODES[code].encode())

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self._closing = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    @property
    def queued(self) -> int:
        return len(self.out)

    # -- timers --------------------------------------------------------------------------------------
    async def _pinger(self) -> None:
        cfg = self.sim.config
        while not self._closing:
            await asyncio.sleep(cfg.ping_interval)
            if self.sim.silent_until > time.monotonic():
                continue
            if self._pong_deadline is not None and time.monotonic() > self._pong_deadline:
                self.sim.stats["pongs_missed"] += 1
                await self.close(3012)
                return
            self.ping()

    def ping(self) -> None:
        """Queue a ``{}`` ping now (it shares a frame with whatever is queued next)."""
        if self._pong_deadline is None:
            self._pong_deadline = time.monotonic() + self.sim.config.pong_timeout
        self.sim.stats["pings_sent"] += 1
        self.send("{}")

    async def _pong_watch(self) -> None:
        while not self._closing:
            await asyncio.sleep(0.1)
            if self._pong_deadline is not None and time.monotonic() > self._pong_deadline:
                self.sim.stats["pongs_missed"] += 1
                await self.close(3012)
                return

    async def _expiry(self) -> None:
        while not self._closing:
            await asyncio.sleep(0.05)
            if self.token_exp is not None and time.time() >= self.token_exp:
                self.sim.stats["expired_closes"] += 1
                await self.close(3005)
                return

    # -- input ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        tasks = [asyncio.create_task(t) for t in (self._writer(), self._pinger(), self._pong_watch(), self._expiry())]
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                for line in msg.data.split("\n"):
                    if line.strip():
                        await self._command(line)
                if self._closing:
                    break
        finally:
            self._closing = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _command(self, line: str) -> None:
        try:
            cmd = orjson.loads(line)
        except orjson.JSONDecodeError:
            await self.close(3501)
            return
        if cmd == {}:
            self._pong_deadline = None
            self.sim.stats["pongs_received"] += 1
            return
        self.commands.append(cmd)
        cmd_id = cmd.get("id")
        self.sim.command_ids.append(cmd_id)
        if "connect" in cmd:
            await self._connect(cmd_id, cmd["connect"] or {})
        elif "refresh" in cmd:
            await self._refresh(cmd_id, cmd["refresh"] or {})
        elif self.profile_id is None:
            await self.close(3501)  # the first command must be connect
        elif "subscribe" in cmd:
            self._subscribe(cmd_id, (cmd["subscribe"] or {}).get("channel", ""))
        elif "unsubscribe" in cmd:
            self.subs.discard((cmd["unsubscribe"] or {}).get("channel", ""))
            self.send(wire.reply(cmd_id, "unsubscribe", {}))
        else:
            self.send(wire.error(cmd_id, 107))

    def _check(self, token: str) -> dict[str, Any] | int:
        try:
            return self.sim.tokens.verify(token)
        except TokenExpired:
            return 109
        except TokenInvalid:
            return 3500

    async def _connect(self, cmd_id: Any, body: dict[str, Any]) -> None:
        claims = self._check(str(body.get("token", "")))
        if claims == 3500:
            self.sim.stats["invalid_tokens"] += 1
            await self.close(3500)
            return
        if claims == 109:
            self.sim.stats["expired_at_connect"] += 1
            self.send(wire.error(cmd_id, 109))
            return
        assert isinstance(claims, dict)
        self.profile_id = str(claims["sub"])
        self.token_exp = float(claims["exp"])
        self.sim.stats["connects"] += 1
        self.send(wire.reply(cmd_id, "connect", {
            "client": self.client_id, "version": "5.4.9", "ping": int(self.sim.config.ping_interval),
            "pong": True, "expires": True, "ttl": max(0, int(self.token_exp - time.time())),
        }))

    async def _refresh(self, cmd_id: Any, body: dict[str, Any]) -> None:
        claims = self._check(str(body.get("token", "")))
        if claims == 3500 or (isinstance(claims, dict) and str(claims["sub"]) != self.profile_id):
            await self.close(3500)
            return
        if claims == 109:
            self.send(wire.error(cmd_id, 109))
            return
        assert isinstance(claims, dict)
        self.token_exp = float(claims["exp"])
        self.sim.stats["refreshes"] += 1
        self.send(wire.reply(cmd_id, "refresh", {"client": self.client_id, "version": "5.4.9", "expires": True,
                                                 "ttl": max(0, int(self.token_exp - time.time()))}))

    def _subscribe(self, cmd_id: Any, channel: str) -> None:
        if channel in self.subs:
            self.send(wire.error(cmd_id, 105))
            return
        data = self.sim.channel_snapshot(channel, self.profile_id or "")
        if isinstance(data, int):
            self.send(wire.error(cmd_id, data))
            return
        self.subs.add(channel)
        self.sim.stats["subscribes"] += 1
        self.send(wire.reply(cmd_id, "subscribe", {"data": data}))

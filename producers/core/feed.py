"""Feed: the connection core every venue plugs into (cryptofeed style: the venue declares, the core runs).

A venue subclasses ``Feed`` and provides:

- ``venue`` (class attribute, lower-case id) and ``settings`` (a ``FeedSettings`` subclass instance);
- ``url()`` (default ``settings.ws_url``) and optionally ``connect_headers()`` / ``ws_compression``;
- ``async on_open()``: authenticate and subscribe on the fresh connection (``await self.send(obj)``);
  it runs *concurrently* with the reader, so it may await replies that its handlers resolve. Call
  ``self.mark_ready()`` once every subscription is confirmed (drives ``/ready``, resets backoff);
- ``async on_message(msg, receive_ts)``: one parsed JSON message (a frame holding several messages
  split on ``"\\n"`` yields several calls, in order). Venue pings/heartbeats arrive here too: answer
  them with ``send``; any frame keeps the watchdog quiet;
- ``channel_of(msg)`` (metrics label), ``async on_disconnect(reason)`` (e.g. ``BookSynchronizer.reset``),
  ``close_is_terminal(code, reason)`` and ``connect_error_is_terminal(exc)`` (stop instead of looping),
  ``async on_closed(code, reason)`` (e.g. fetch a fresh token before reconnecting),
  ``async on_start()`` / ``async on_stop()`` (open/close the venue's own HTTP session),
  ``async before_connect()`` (before every open, e.g. fetch a token).

The core runs the websockets client with:

- reconnect with capped exponential backoff + jitter (``Backoff``), reset after a connection stayed
  ready for ``backoff_reset_after`` seconds; ``reconnect_max_attempts`` consecutive failures -> give up;
- ``on_open`` again after every reconnect (resubscribe everything);
- a watchdog: no frame for ``watchdog_seconds`` -> reconnect (it does not fire while a handler is
  waiting on Kafka back-pressure: that is not the venue's silence);
- malformed messages (bad JSON, or any exception from ``on_message``) counted as ``parse_errors``,
  logged with venue/channel/text excerpt (throttled), and skipped. ``TerminalFeedError`` raised by a
  venue stops the feed; ``ReconnectRequested`` drops the connection; ``InexactNumber`` re-parses the
  message with ``Decimal`` numbers and calls ``on_message`` again (handlers convert numbers before
  mutating state);
- the outputs: ``ContractRegistry`` + ``KafkaPublisher`` + ``EventEmitter`` (``self.emitter``) and the
  ``HealthServer`` (``/health``, ``/ready``, ``/metrics``), started by ``run()`` unless injected.

``await feed.run()`` runs until cancelled (then flushes the publisher) or a terminal error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, ClassVar

import orjson
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from producers.core.backoff import Backoff
from producers.core.emitter import FEED_TOPICS, EventEmitter
from producers.core.errors import InexactNumber, ReconnectRequested, TerminalFeedError
from producers.core.health import HealthServer
from producers.core.metrics import FeedMetrics
from producers.core.numbers import loads_exact
from producers.core.settings import FeedSettings
from producers.publisher import KafkaPublisher
from schemas.registry import ContractRegistry

log = logging.getLogger(__name__)


class WatchdogExpired(Exception):
    pass


class _Throttle:
    """Logs the first ``burst`` problems, then one in ``every``; says how many were suppressed."""

    def __init__(self, burst: int = 20, every: int = 1000) -> None:
        self.burst = burst
        self.every = every
        self.seen = 0

    def should_log(self) -> bool:
        self.seen += 1
        return self.seen <= self.burst or self.seen % self.every == 0


class Feed:
    venue: ClassVar[str] = ""
    ws_compression: ClassVar[str | None] = None  # "deflate" where the venue enables permessage-deflate

    def __init__(self, settings: FeedSettings, *, registry: ContractRegistry | None = None,
                 publisher: KafkaPublisher | None = None, metrics: FeedMetrics | None = None,
                 emitter: EventEmitter | None = None, serve_health: bool = True) -> None:
        if not self.venue:
            raise TypeError(f"{type(self).__name__} must set the class attribute 'venue'")
        self.settings = settings
        self.metrics = metrics or FeedMetrics(self.venue)
        self.registry = registry
        self.publisher = publisher
        self._owns_publisher = publisher is None
        self._emitter_injected = emitter is not None
        self.emitter: EventEmitter | None = emitter  # injected: no registry/publisher of our own
        self.health: HealthServer | None = None
        self._serve_health = serve_health
        self.ws: Any = None
        self.connected = False
        self.ready = False
        self.connections = 0  # successful WebSocket opens
        self.stop_reason: str | None = None
        self.disconnect_reasons: deque[str] = deque(maxlen=100)  # latest first-hand reasons, for ops and tests
        self.backoff = Backoff(settings.reconnect_initial_delay, settings.reconnect_max_delay,
                               settings.reconnect_jitter)
        self._last_rx = time.monotonic()
        self._in_handler = False
        self._ready_since: float | None = None
        self._parse_log = _Throttle()

    # -- venue hooks (override) ------------------------------------------------------------------------
    def url(self) -> str:
        return self.settings.ws_url

    def connect_headers(self) -> dict[str, str] | None:
        return None

    async def on_start(self) -> None:
        """Before the first connection (outputs are up)."""

    async def on_stop(self) -> None:
        """After the last connection."""

    async def before_connect(self) -> None:
        """Before every WebSocket open (e.g. obtain a token). May raise TerminalFeedError."""

    async def on_open(self) -> None:
        """Authenticate and subscribe; call ``mark_ready()`` when subscribed."""
        self.mark_ready()

    async def on_message(self, msg: Any, receive_ts: int) -> None:
        raise NotImplementedError

    def channel_of(self, msg: Any) -> str:
        return "-"

    async def on_disconnect(self, reason: str) -> None:
        """The connection is gone (any reason); reset per-connection state (books, pending requests)."""

    async def on_closed(self, code: int | None, reason: str) -> None:
        """The server closed with ``code``; runs before the reconnect backoff. May raise TerminalFeedError."""

    def close_is_terminal(self, code: int | None, reason: str) -> bool:
        return False

    def connect_error_is_terminal(self, exc: BaseException) -> bool:
        return False

    # -- helpers for venues ----------------------------------------------------------------------------
    async def send(self, obj: Any) -> None:
        """Send one JSON message as a text frame."""
        if self.ws is None:
            raise ReconnectRequested("send without a connection")
        await self.ws.send(orjson.dumps(obj).decode())

    async def send_text(self, text: str) -> None:
        if self.ws is None:
            raise ReconnectRequested("send without a connection")
        await self.ws.send(text)

    def mark_ready(self) -> None:
        self.ready = True
        self._ready_since = time.monotonic()
        self.metrics.set_connected(True)

    def readiness(self) -> tuple[bool, str]:
        if self.stop_reason:
            return False, f"stopped: {self.stop_reason}"
        if not self.connected:
            return False, "not connected"
        if not self.ready:
            return False, "connected, subscribing"
        return True, "connected and subscribed"

    # -- outputs ---------------------------------------------------------------------------------------
    async def start_outputs(self) -> None:
        s = self.settings
        if self.emitter is None:
            await self._start_kafka_outputs()
        if self._serve_health and self.health is None:
            self.health = HealthServer(s.effective_health_port(), host=s.health_host, ready=self.readiness)
            await self.health.start()

    async def _start_kafka_outputs(self) -> None:
        s = self.settings
        if self.registry is None:
            self.registry = ContractRegistry(s.registry_url, basic_auth=s.registry_auth())
            if s.register_schemas:
                await asyncio.to_thread(self.registry.register_all, FEED_TOPICS)
        if s.create_topics and self._owns_publisher:
            from marketpipe.topics_admin import ensure_topics

            await asyncio.to_thread(ensure_topics, s.kafka_bootstrap, FEED_TOPICS,
                                    replication=s.topic_replication, min_insync=s.topic_min_insync_replicas,
                                    extra_conf=s.librdkafka_security())
        if self.publisher is None:
            self.publisher = KafkaPublisher(s, client_id=f"marketpipe-{self.venue}")
            await self.publisher.start()
        self.emitter = EventEmitter(self.venue, self.registry, self.publisher, self.metrics)
        await self.emitter.prepare()

    async def stop_outputs(self) -> None:
        if self.health is not None:
            await self.health.stop()
            self.health = None
        if self.publisher is not None and self._owns_publisher:
            await self.publisher.stop(timeout=30)
            self.publisher = None
        if not self._emitter_injected:
            self.emitter = None

    # -- running ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, read, reconnect, until cancelled or a terminal error (re-raised)."""
        await self.start_outputs()
        try:
            await self.on_start()
            await self._connect_loop()
        except TerminalFeedError as exc:
            self.stop_reason = str(exc)
            log.error("%s feed stopped: %s", self.venue, exc)
            raise
        finally:
            try:
                await self.on_stop()
            finally:
                await self.stop_outputs()

    async def _connect_loop(self) -> None:
        s = self.settings
        while True:
            reason = await self._one_connection()
            self.disconnect_reasons.append(reason)
            self.connected = self.ready = False
            self.metrics.set_connected(False)
            await self.on_disconnect(reason)
            if self._ready_since is not None and time.monotonic() - self._ready_since >= s.backoff_reset_after:
                self.backoff.reset()
            self._ready_since = None
            if s.reconnect_max_attempts is not None and self.backoff.attempt >= s.reconnect_max_attempts:
                raise TerminalFeedError(f"{self.venue}: gave up after {self.backoff.attempt} failed reconnects "
                                        f"(last: {reason})")
            delay = self.backoff.next_delay()
            words = reason.split(" ")
            # "requested heartbeat-timeout" -> "heartbeat-timeout"; "close 3005 ..." -> "close"
            self.metrics.reconnect(words[1] if words[0] == "requested" and len(words) > 1 else words[0])
            log.warning("%s: connection lost (%s); reconnecting in %.2fs", self.venue, reason, delay)
            await asyncio.sleep(delay)

    async def _one_connection(self) -> str:
        """One connection's life; returns why it ended (non-terminal), raises TerminalFeedError."""
        s = self.settings
        try:
            await self.before_connect()
            ws = await websockets.connect(
                self.url(), open_timeout=s.connect_timeout, ping_interval=s.ws_ping_interval,
                ping_timeout=s.ws_ping_interval, max_size=s.ws_max_size, max_queue=s.ws_max_queue,
                compression=self.ws_compression,
                additional_headers=self.connect_headers(), close_timeout=2, proxy=None,
            )
        except TerminalFeedError:
            raise
        except Exception as exc:
            if self.connect_error_is_terminal(exc):
                raise TerminalFeedError(f"{self.venue}: connection refused by the venue: {exc}") from exc
            detail = f"HTTP {exc.response.status_code}" if isinstance(exc, InvalidStatus) else repr(exc)
            return f"connect-failed {detail}"
        self.ws = ws
        self.connected = True
        self.connections += 1
        self._last_rx = time.monotonic()
        reader = asyncio.create_task(self._read_loop(ws), name=f"{self.venue}-reader")
        watchdog = asyncio.create_task(self._watchdog(), name=f"{self.venue}-watchdog")
        opener = asyncio.create_task(self._open(), name=f"{self.venue}-open")
        pending: set[asyncio.Task[Any]] = {reader, watchdog, opener}
        try:
            while True:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                errors = {task: task.exception() for task in done}  # retrieve every outcome
                if reader in errors:
                    if errors[reader] is None:  # reader ended without an exception: closed cleanly
                        return await self._closed(ws.close_code, ws.close_reason or "")
                    raise errors[reader]  # type: ignore[misc]
                if watchdog in errors:
                    raise errors[watchdog]  # type: ignore[misc]
                failure = errors.get(opener)
                if failure is not None and not isinstance(failure, ConnectionClosed):
                    raise failure  # a closed connection is reported by the reader, with its close code
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            return await self._closed(code, exc.rcvd.reason if exc.rcvd is not None else "")
        except WatchdogExpired:
            log.warning("%s: no message for %.1fs: reconnecting", self.venue, s.watchdog_seconds)
            return "watchdog"
        except ReconnectRequested as exc:
            return f"requested {exc.reason}"
        except TerminalFeedError:
            raise
        except (OSError, TimeoutError) as exc:
            return f"error {exc!r}"
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self.ws = None
            await ws.close()

    async def _closed(self, code: int | None, reason: str) -> str:
        if self.close_is_terminal(code, reason):
            raise TerminalFeedError(f"{self.venue}: server closed the connection with code {code} "
                                    f"({reason or 'no reason'}); this code is terminal, not reconnecting")
        await self.on_closed(code, reason)
        return f"close {code} {reason}".strip()

    async def _open(self) -> None:
        """``on_open`` within ``subscribe_timeout`` seconds, not counting the time the reader spends inside a
        handler (publishing a snapshot while Kafka applies back-pressure): a reply queued behind such a
        frame is late because of Kafka, not the venue, and reconnecting would only repeat it."""
        task = asyncio.ensure_future(self.on_open())
        limit = self.settings.subscribe_timeout
        tick = min(0.25, limit / 4)
        waited = 0.0
        try:
            while True:
                t0 = time.monotonic()
                done, _ = await asyncio.wait({task}, timeout=min(tick, max(0.0, limit - waited)))
                if done:
                    task.result()
                    return
                if not self._in_handler:
                    waited += time.monotonic() - t0
                if waited >= limit:
                    raise ReconnectRequested("subscribe-timeout")
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _watchdog(self) -> None:
        limit = self.settings.watchdog_seconds
        tick = min(1.0, limit / 4)
        while True:
            await asyncio.sleep(tick)
            if not self._in_handler and time.monotonic() - self._last_rx > limit:
                raise WatchdogExpired()

    async def _read_loop(self, ws: Any) -> None:
        metrics = self.metrics
        handle = self._handle_line
        monotonic = time.monotonic
        while True:
            frame = await ws.recv()
            receive_ts = time.time_ns() // 1000
            self._last_rx = monotonic()
            metrics.frames += 1
            self._in_handler = True
            try:
                if type(frame) is bytes:
                    frame = frame.decode("utf-8", "replace")
                if "\n" in frame:
                    for line in frame.split("\n"):
                        if line and not line.isspace():
                            await handle(line, receive_ts)
                else:
                    await handle(frame, receive_ts)
            finally:
                self._in_handler = False
                self._last_rx = monotonic()

    async def _handle_line(self, line: str, receive_ts: int) -> None:
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            self.metrics.message("-")
            self._parse_error("-", line, exc)
            return
        channel = "-"
        metrics = self.metrics
        try:
            channel = self.channel_of(msg)
            metrics.counts[("messages_in", channel)] += 1  # = metrics.message(), inlined on the hot path
            metrics.last_seen[channel] = self._last_rx
            try:
                await self.on_message(msg, receive_ts)
            except InexactNumber:
                self.metrics.inc("reparsed", channel)
                await self.on_message(loads_exact(line), receive_ts)
        except (TerminalFeedError, ReconnectRequested, ConnectionClosed, asyncio.CancelledError):
            raise
        except Exception as exc:
            self._parse_error(channel, line, exc)

    def _parse_error(self, channel: str, line: str, exc: BaseException) -> None:
        self.metrics.inc("parse_errors", channel)
        if self._parse_log.should_log():
            log.warning("%s: skipped malformed message on %s (%s: %s; %d so far): %.200s", self.venue, channel,
                        type(exc).__name__, exc, self.metrics.count("parse_errors"), line)

"""Test harness for the processors: real worker subprocesses, real Kafka, registry-framed events.

Nothing here imports processor internals: tests meet the workers on the wire (Kafka topics, HTTP).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from marketpipe.infra.ports import free_port
from marketpipe.infra.processor_process import ProcessorProcess as Worker  # noqa: F401 - the tests' name for it
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, TRADES, TopicSpec, account_key, market_key


def worker_env(bootstrap: str, registry_url: str, app_id: str, data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        "MARKETPIPE_KAFKA_BOOTSTRAP": bootstrap,
        "MARKETPIPE_REGISTRY_URL": registry_url,
        "MARKETPIPE_PROCESSOR_APP_ID": app_id,
        "MARKETPIPE_PROCESSOR_STORE_URL": "memory://",
        "MARKETPIPE_PROCESSOR_DATA_DIR": str(data_dir),
        "MARKETPIPE_PROCESSOR_OFFSET_RESET": "latest",
        "MARKETPIPE_PROCESSOR_COMMIT_INTERVAL_S": "0.5",
        "MARKETPIPE_PROCESSOR_TIMER_INTERVAL_S": "0.2",
        "MARKETPIPE_PROCESSOR_BOOK_TOP_MIN_INTERVAL_MS": "50",
        "MARKETPIPE_PROCESSOR_BOOK_DEPTH": "3",
        "MARKETPIPE_PROCESSOR_CANDLE_INTERVALS": "1s,10s,1m",
        "MARKETPIPE_PROCESSOR_CANDLE_GRACE_MS": "2000",
        "MARKETPIPE_PROCESSOR_CANDLE_CLOSE_DELAY_MS": "200",
        "MARKETPIPE_PROCESSOR_STANDBY_REPLICAS": "0",
        "MARKETPIPE_PROCESSOR_SESSION_TIMEOUT_S": "6",
        "MARKETPIPE_PROCESSOR_HEARTBEAT_INTERVAL_S": "1",
        "MARKETPIPE_LOG_LEVEL": "INFO",
    }
    env.update({f"MARKETPIPE_PROCESSOR_{k.upper()}": v for k, v in overrides.items()})
    return env


def now_us() -> int:
    return time.time_ns() // 1000


class EventWriter:
    """Produces contract events the way producers do: key b"venue:id", Confluent-framed Avro value."""

    def __init__(self, bootstrap: str, registry: ContractRegistry, topic_prefix: str = "") -> None:
        self.bootstrap = bootstrap
        self.registry = registry
        self.prefix = topic_prefix
        self.producer: AIOKafkaProducer | None = None
        self._n = 0

    async def __aenter__(self) -> EventWriter:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                         linger_ms=2)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.producer is not None
        await self.producer.stop()

    def _id(self) -> str:
        self._n += 1
        return f"t{time.time_ns()}-{self._n}"

    async def send(self, spec: TopicSpec, key: bytes, value: bytes | dict[str, Any]) -> None:
        assert self.producer is not None
        data = value if isinstance(value, bytes) else self.registry.framer(spec.schema).encode(value)
        await self.producer.send(self.prefix + spec.name, key=key, value=data)

    async def flush(self) -> None:
        assert self.producer is not None
        await self.producer.flush()

    async def book(self, venue: str, market: str, kind: str, *, seq: int | None = None, prev: int | None = None,
                   bids: list[tuple[str, str]] = (), asks: list[tuple[str, str]] = (),  # type: ignore[assignment]
                   reason: str | None = None, ts: int | None = None) -> None:
        t = ts or now_us()
        await self.send(BOOK, market_key(venue, market), {
            "event_id": self._id(), "venue": venue, "market": market, "venue_symbol": market.replace("-", ""),
            "exchange_ts": t, "receive_ts": now_us(), "kind": kind, "sequence": seq, "prev_sequence": prev,
            "checksum": None, "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks], "reason": reason})

    async def trade(self, venue: str, market: str, ts: int, price: str, size: str, side: str,
                    event_id: str | None = None) -> None:
        eid = event_id or self._id()
        await self.send(TRADES, market_key(venue, market), {
            "event_id": eid, "venue": venue, "market": market, "venue_symbol": market.replace("-", ""),
            "exchange_ts": ts, "receive_ts": now_us(), "trade_id": eid, "price": price, "size": size,
            "side": side, "liquidation": None})

    async def trade_gap(self, venue: str, market: str, from_ts: int, to_ts: int, *, reason: str = "reconnect",
                        after_id: str | None = None, before_id: str | None = None,
                        missing_count: int | None = None) -> None:
        """A gap marker in the trades topic, shaped as producers/core/emitter.py writes it (not imported)."""
        await self.send(TRADES, market_key(venue, market), {
            "event_id": self._id(), "venue": venue, "market": market, "venue_symbol": market.replace("-", ""),
            "exchange_ts": to_ts, "receive_ts": now_us(), "trade_id": f"gap:{after_id}:{before_id}", "price": "0",
            "size": "0", "side": "UNKNOWN", "liquidation": None,
            "gap": {"reason": reason, "after_id": after_id, "before_id": before_id, "missing_count": missing_count,
                    "from_ts": from_ts, "to_ts": to_ts}})

    async def account_gap(self, venue: str, account: str, kind: str, from_ts: int, to_ts: int, *,
                          reason: str = "reconnect", missing_count: int | None = None) -> None:
        """A gap marker in the account topic (no payload), shaped as the producers' emitter writes it."""
        await self.send(ACCOUNT, account_key(venue, account), {
            "event_id": self._id(), "venue": venue, "market": "*", "venue_symbol": "*", "exchange_ts": to_ts,
            "receive_ts": now_us(), "account": account, "kind": kind, "balance": None, "order": None, "fill": None,
            "position": None, "gap": {"reason": reason, "after_id": None, "before_id": None,
                                      "missing_count": missing_count, "from_ts": from_ts, "to_ts": to_ts}})

    async def account(self, venue: str, account: str, market: str, kind: str, body: dict[str, Any],
                      ts: int | None = None) -> None:
        record: dict[str, Any] = {
            "event_id": self._id(), "venue": venue, "market": market, "venue_symbol": market.replace("-", ""),
            "exchange_ts": ts or now_us(), "receive_ts": now_us(), "account": account, "kind": kind,
            "balance": None, "order": None, "fill": None, "position": None}
        record[kind.lower()] = body
        await self.send(ACCOUNT, account_key(venue, account), record)


class DerivedReader:
    """Reads a derived topic from its end offsets at creation; keeps only messages with the given keys."""

    def __init__(self, bootstrap: str, spec: TopicSpec, registry: ContractRegistry, keys: set[bytes],
                 topic_prefix: str = "") -> None:
        self.bootstrap, self.spec, self.registry, self.keys = bootstrap, spec, registry, keys
        self.topic = topic_prefix + spec.name
        self.consumer: AIOKafkaConsumer | None = None
        self.records: list[dict[str, Any]] = []

    async def __aenter__(self) -> DerivedReader:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                         isolation_level="read_committed")
        await self.consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(self.spec.partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve positions now, before anything is produced
            await self.consumer.position(tp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.consumer is not None
        await self.consumer.stop()

    async def read_until(self, done: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll until done(records) is true; returns the records (raises on timeout)."""
        assert self.consumer is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await self.consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                for m in msgs:
                    if m.key in self.keys:
                        self.records.append(self.registry.decode(m.value))
            if done(self.records):
                return self.records
        raise TimeoutError(f"{self.topic}: condition not met; got {len(self.records)} records")

    async def settle(self, seconds: float) -> list[dict[str, Any]]:
        """Keep reading for a while (to catch anything published after the expected records)."""
        try:
            await self.read_until(lambda rs: False, timeout=seconds)
        except TimeoutError:
            pass
        return self.records


async def get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.json(content_type=None)


async def poll_json(url: str, done: Any, timeout: float = 15.0) -> Any:
    """GET url until done(status, body) is true; returns the body."""
    deadline = time.monotonic() + timeout
    status, body = None, None
    while time.monotonic() < deadline:
        status, body = await get_json(url)
        if done(status, body):
            return body
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{url}: last answer {status} {body}")


def create_prefixed_topics(bootstrap: str, prefix: str, specs: tuple[TopicSpec, ...]) -> list[str]:
    """Private copies of contract topics (same partitions), for tests that must see only their own workers."""
    from dataclasses import replace

    from marketpipe.topics_admin import ensure_topics

    return ensure_topics(bootstrap, tuple(replace(s, name=prefix + s.name) for s in specs))


def delete_topics(bootstrap: str, prefixes: tuple[str, ...]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    mine = [t for t in admin.list_topics(timeout=15).topics if t.startswith(prefixes)]
    if mine:
        for fut in admin.delete_topics(mine, operation_timeout=30).values():
            try:
                fut.result()
            except Exception:  # best effort cleanup
                pass


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 in front of a real server (the registry), that a test can cut (every
    connection closed, new ones refused) and restore, without touching the server behind it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.answer: bytes | None = None  # set: every connection gets this raw HTTP answer instead of the server

    async def start(self) -> TcpProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for w in list(self.writers):
            w.close()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.answer is not None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.answer)
            await writer.drain()
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


async def metric_sum(url: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples on a worker's /metrics whose labels include the given ones."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as r:
        text = await r.text()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total

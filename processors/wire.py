"""ContractWire: Confluent-framed Avro in and out of the processors, with registry ids resolved at start-up.

faust hands agents raw bytes (value_serializer="raw"); decoding happens in the agent so a malformed
message is counted and skipped instead of crashing the stream. Writer schemas are cached by id, so
`decode` never calls the registry: ids not seen before are resolved by the agent before the batch is folded
(`SchemaResolver`, asynchronous, see below). Known writer schemas are decoded by readers compiled from them
once (schemas.compiled_reader: same result as fastavro, checked by tests, ~1.6x faster on a book delta),
fastavro for any schema that cannot be compiled.

Registry faults never lose an event: only an id the registry definitively does not know (404 with Confluent's
error code 40403) or a schema that cannot be read is remembered as unknown, and its events are counted
malformed. Anything else (connection refused, timeout, 5xx, a 404 without that code such as an ingress'
default backend, 401/403) is retried with capped exponential backoff while the stream waits, counted in
`marketpipe_processor_registry_retries_total{reason}`.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import aiohttp
from fastavro import parse_schema, schemaless_reader

from processors import metrics
from schemas.compiled_reader import compile_reader
from schemas.registry import ContractRegistry
from schemas.serde import AvroFramer, FramingError, read_schema_id
from schemas.topics import ACCOUNT, BOOK, BOOK_TOP, OHLCV, TRADES, TopicSpec

log = logging.getLogger(__name__)
INPUTS: tuple[TopicSpec, ...] = (BOOK, TRADES, ACCOUNT)
OUTPUTS: tuple[TopicSpec, ...] = (BOOK_TOP, OHLCV)


def topic_name(spec: TopicSpec, prefix: str = "") -> str:
    """The topic's name from schemas.topics; a prefix only for isolated benchmark runs."""
    return prefix + spec.name


def prefixed(specs: tuple[TopicSpec, ...], prefix: str) -> tuple[TopicSpec, ...]:
    return tuple(replace(s, name=topic_name(s, prefix)) for s in specs)


class UnresolvedSchema(LookupError):
    """decode() met a schema id nobody resolved: a bug (the agent resolves every batch first), never a
    malformed event; it stops the stream instead of skipping the event (Stage re-raises it)."""


class ContractWire:
    def __init__(self, registry: ContractRegistry, *, register: bool, compiled: bool = True) -> None:
        self.registry = registry
        self.compiled = compiled
        specs = INPUTS + OUTPUTS
        if register:
            registry.register_all(specs)
        self.framers: dict[str, AvroFramer] = {s.schema: registry.framer(s.schema) for s in specs}
        self.book_top = self.framers[BOOK_TOP.schema]
        self.ohlcv = self.framers[OHLCV.schema]
        self._unknown_ids: set[int] = set()
        self._readers: dict[int, Callable[[bytes, int], Any]] = {
            f.schema_id: datum_reader(f.parsed, compiled) for f in self.framers.values()}
        self._known_heads: set[bytes] = set()  # Confluent headers (magic + id) of ids with a reader

    def decode(self, data: bytes) -> dict[str, Any]:
        """Any marketpipe message by its writer schema id (raises ValueError subclasses when malformed).
        Never calls the registry: ids must have been resolved (`unresolved_ids` + `SchemaResolver`)."""
        if not isinstance(data, bytes | bytearray):
            raise ValueError(f"expected bytes, got {type(data).__name__}")
        schema_id = read_schema_id(data)
        reader = self._readers.get(schema_id)
        if reader is not None:  # hot path: a known writer schema, no reader-schema resolution
            return reader(data, 5)
        if schema_id in self._unknown_ids:
            raise FramingError(f"schema id {schema_id} unknown to the registry")
        raise UnresolvedSchema(f"schema id {schema_id} was not resolved before decoding")

    def unresolved_ids(self, values: Iterable[Any]) -> set[int]:
        """Schema ids in these message values that are neither known nor known to be unknown (values that
        are not framed Avro are left to decode(), which counts them malformed)."""
        try:  # hot path, once per batch: the distinct 5-byte headers, minus those of known schemas
            heads = {data[:5] for data in values if data} - self._known_heads
        except TypeError:  # not bytes (e.g. an unhashable bytearray slice): check one by one
            heads = {bytes(data[:5]) for data in values if isinstance(data, bytes | bytearray) and data}
        readers, unknown = self._readers, self._unknown_ids
        ids: set[int] = set()
        for head in heads:
            if len(head) == 5 and head[0] == 0:
                schema_id = int.from_bytes(head[1:5], "big")
                if schema_id in readers:
                    self._known_heads.add(head)
                elif schema_id not in unknown:
                    ids.add(schema_id)
        return ids

    def learn(self, schema_id: int, schema_text: str) -> None:
        """A writer schema fetched from the registry; one that cannot be read makes the id unknown."""
        try:
            self._readers[schema_id] = datum_reader(parse_schema(json.loads(schema_text)), self.compiled)
        except Exception as exc:  # not JSON / not Avro: its events cannot be decoded, ever
            log.warning("schema id %s cannot be read (%s: %s): its events are malformed", schema_id,
                        type(exc).__name__, exc)
            self.forget_id(schema_id)

    def forget_id(self, schema_id: int) -> None:
        """The registry definitively does not know this id (bounded, so garbage cannot grow it forever)."""
        if len(self._unknown_ids) > 10_000:
            self._unknown_ids.clear()
        self._unknown_ids.add(schema_id)


class RegistryUnavailable(Exception):
    """A transient registry failure (retried): connection, timeout, 5xx, unexpected answer."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class SchemaResolver:
    """Fetches unseen writer schemas by id asynchronously (aiohttp, bounded concurrency) and teaches them to
    the wire. `resolve` returns when every id is known or definitively unknown; transient failures are
    retried with capped exponential backoff (and jitter) for as long as `keep_trying()` says, counted per
    reason. The event loop stays free meanwhile: other agents, the web server and queries go on."""

    def __init__(self, wire: ContractWire, url: str, *, basic_auth: str | None = None, concurrency: int = 16,
                 timeout_s: float = 5.0, backoff_initial_s: float = 0.2, backoff_max_s: float = 10.0) -> None:
        self.wire = wire
        self.url = url.rstrip("/")
        user, _, password = (basic_auth or "").partition(":")
        self.auth = aiohttp.BasicAuth(user, password) if basic_auth else None
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[int, asyncio.Future[None]] = {}  # one lookup per id, shared by the agents

    async def resolve(self, ids: set[int], keep_trying: Callable[[], bool], stream: str) -> bool:
        """True when every id is resolved; False when keep_trying() turned false first (stopping,
        rebalancing): the caller must then leave the events unprocessed (and uncommitted)."""
        delay = self.backoff_initial_s
        pending = set(ids)
        while True:
            failures = await self._fetch_round(pending)
            if not failures:
                return True
            pending = set(failures)
            reasons = {exc.reason for exc in failures.values()}
            for reason in reasons:
                metrics.REGISTRY_RETRIES.labels(stream, reason).inc()
            metrics.REGISTRY_WAITING.labels(stream).set(1)
            sample_id, sample = next(iter(failures.items()))
            log.warning("%s: registry lookup of %d schema id(s) failed (id %s: %s); their events wait, retrying in "
                        "%.1fs", stream, len(failures), sample_id, sample, delay)
            try:
                waited = 0.0
                while waited < delay:  # notice a stop or rebalance while waiting
                    if not keep_trying():
                        return False
                    step = min(0.1, delay - waited)
                    await asyncio.sleep(step)
                    waited += step
            finally:
                metrics.REGISTRY_WAITING.labels(stream).set(0)
            if not keep_trying():
                return False
            delay = min(self.backoff_max_s, delay * 2) * random.uniform(0.8, 1.2)

    async def _fetch_round(self, ids: set[int]) -> dict[int, RegistryUnavailable]:
        semaphore = asyncio.Semaphore(self.concurrency)
        failures: dict[int, RegistryUnavailable] = {}

        async def one(schema_id: int) -> None:
            future = self._inflight.get(schema_id)
            if future is None:  # nobody is fetching it: fetch, and share the result with other agents
                future = self._inflight[schema_id] = asyncio.get_running_loop().create_future()
                try:
                    async with semaphore:
                        await self._fetch(schema_id)
                except RegistryUnavailable as exc:
                    future.set_exception(exc)
                    future.exception()  # retrieved here; every waiter handles it below
                except BaseException:
                    future.cancel()
                    raise
                else:
                    future.set_result(None)
                finally:
                    del self._inflight[schema_id]
            try:
                await asyncio.shield(future)
            except RegistryUnavailable as exc:
                failures[schema_id] = exc

        await asyncio.gather(*(one(i) for i in ids))
        return failures

    async def _fetch(self, schema_id: int) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        try:
            async with self._session.get(f"{self.url}/schemas/ids/{schema_id}", auth=self.auth) as r:
                body = await r.read()
                status = r.status
        except TimeoutError as exc:
            raise RegistryUnavailable("timeout", f"no answer within {self.timeout_s}s") from exc
        except aiohttp.ClientError as exc:
            raise RegistryUnavailable("connection", f"{type(exc).__name__}: {exc}") from exc
        answer = _json_or_none(body)
        if status == 200 and isinstance(answer, dict) and isinstance(answer.get("schema"), str):
            self.wire.learn(schema_id, answer["schema"])
            return
        if status == 404 and isinstance(answer, dict) and answer.get("error_code") == 40403:
            log.warning("schema id %s is unknown to the registry: its events are malformed", schema_id)
            self.wire.forget_id(schema_id)
            return
        reason = "5xx" if status >= 500 else f"http_{status}"
        raise RegistryUnavailable(reason, f"HTTP {status}: {body[:200]!r}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def datum_reader(parsed_schema: Any, compiled: bool = True) -> Callable[[bytes, int], Any]:
    """Decoder of one Avro datum at data[offset:] for a writer schema: compiled (unless switched off), else
    fastavro's."""
    if compiled:
        try:
            return compile_reader(parsed_schema)
        except NotImplementedError as exc:
            log.info("schema %s decoded by fastavro: %s", parsed_schema.get("name"), exc)
    return lambda data, offset: schemaless_reader(io.BytesIO(memoryview(data)[offset:]), parsed_schema, None)

"""SchemaResolver against the real registry, behind a proxy that can answer for it: which answers mean
"unknown id" (the event is malformed) and which are transient (retried, counted, never skipped)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlparse

import fastavro
from confluent_kafka.schema_registry import Schema
from prometheus_client import REGISTRY

from processors.wire import ContractWire, SchemaResolver, UnresolvedSchema
from schemas import contracts
from schemas.registry import ContractRegistry
from schemas.serde import AvroFramer, FramingError
from tests.processors.harness import TcpProxy, now_us


def retries(stream: str, reason: str) -> float:
    return REGISTRY.get_sample_value("marketpipe_processor_registry_retries_total",
                                     {"stream": stream, "reason": reason}) or 0.0


def http_answer(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


async def test_transient_answers_are_retried_and_only_40403_is_unknown(
        registry: ContractRegistry, registry_url: str, unique: str) -> None:
    schema = json.loads(contracts.schema_text("trade"))
    schema["fields"].append({"name": f"extra_{unique}", "type": ["null", "long"], "default": None})
    text = json.dumps(schema)
    new_id = registry.client.register_schema(f"test-{unique}-trade-value", Schema(text, "AVRO"))
    framer = AvroFramer(new_id, fastavro.parse_schema(json.loads(text)))
    event = framer.encode({"event_id": "e1", "venue": "v", "market": "A-B", "venue_symbol": "AB", "exchange_ts": 1,
                           "receive_ts": now_us(), "trade_id": "1", "price": "1.5", "size": "2", "side": "BUY"})

    reg = urlparse(registry_url)
    proxy = await TcpProxy(reg.hostname or "127.0.0.1", reg.port or 80).start()
    wire = ContractWire(registry, register=False)
    resolver = SchemaResolver(wire, registry_url.replace(f"{reg.hostname}:{reg.port}", f"127.0.0.1:{proxy.port}"),
                              backoff_initial_s=0.05, backoff_max_s=0.2)
    stream = f"t{unique}"
    try:
        assert wire.unresolved_ids([event]) == {new_id}
        try:
            wire.decode(event)
            raise AssertionError("decode must not look an id up itself")
        except UnresolvedSchema:
            pass
        answers = [("5xx", http_answer("503 Service Unavailable", b'{"error_code":50301}')),
                   ("http_404", http_answer("404 Not Found", b"<html>default backend</html>", "text/html"))]
        for reason, answer in answers:
            proxy.answer = answer
            lookup = asyncio.ensure_future(resolver.resolve({new_id}, lambda: True, stream))
            while retries(stream, reason) < 2:
                assert not lookup.done(), lookup.result()
                await asyncio.sleep(0.05)
            assert wire.unresolved_ids([event]) == {new_id}  # still unresolved, not given up as unknown
            lookup.cancel()
        proxy.answer = None
        await proxy.cut()  # connection refused
        lookup = asyncio.ensure_future(resolver.resolve({new_id}, lambda: True, stream))
        while retries(stream, "connection") < 2:
            await asyncio.sleep(0.05)
        await proxy.start()
        assert await asyncio.wait_for(lookup, 30) is True
        assert wire.unresolved_ids([event]) == set()
        assert wire.decode(event)["price"] == "1.5"

        unknown = b"\x00" + (2_100_000_000 + int(unique[:6], 16) % 10_000_000).to_bytes(4, "big") + event[5:]
        (unknown_id,) = wire.unresolved_ids([unknown])
        assert await resolver.resolve({unknown_id}, lambda: True, stream) is True  # a definitive 404 (40403)
        assert wire.unresolved_ids([unknown]) == set()
        try:
            wire.decode(unknown)
            raise AssertionError("an unknown id is malformed")
        except FramingError:
            pass
    finally:
        await resolver.close()
        await proxy.cut()

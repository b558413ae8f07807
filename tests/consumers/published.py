"""Records of every topic published through marketpipe's own serde and publisher, and a field-by-field
comparison of what a foreign consumer decoded with what marketpipe's serde wrote."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema

from marketpipe.settings import PublisherSettings
from producers.publisher import KafkaPublisher
from schemas import contracts, topics
from schemas.registry import ContractRegistry
from schemas.serde import AvroFramer
from tests.foundation.samples import samples


@dataclass(frozen=True)
class Written:
    topic: str
    key: str
    raw: bytes  # the Confluent-framed bytes marketpipe's serde wrote
    record: dict[str, Any]  # marketpipe's serde decoding those bytes


@dataclass(frozen=True)
class Batch:
    since_ms: int  # record timestamps of the batch are at or after this
    by_event_id: dict[str, Written]
    older_writer_ids: list[int]  # registry ids of the released older schema versions written with


def record_key(spec: topics.TopicSpec, record: dict[str, Any]) -> bytes:
    if spec.key is topics.KeyKind.ACCOUNT:
        return topics.account_key(record["venue"], record["account"])
    return topics.market_key(record["venue"], record["market"])


def older_writers(registry: ContractRegistry, run: str) -> list[tuple[str, int, AvroFramer]]:
    """Framers for every released schema version older than the working tree's (a producer not yet rolled).

    Registered under subjects of their own, so the topics' subjects are left as they are: consumers find a
    writer schema by the framed id alone, whatever subject holds it.
    """
    out = []
    for name in contracts.schema_names():
        for version, schema in contracts.released_versions(name):
            if schema == contracts.schema_json(name):
                continue
            subject = f"consumer-proof-{run}-{name}-v{version}-value"
            text = json.dumps(schema, separators=(",", ":"), sort_keys=True)
            schema_id = registry.client.register_schema(subject, Schema(text, "AVRO"))
            out.append((name, schema_id, AvroFramer(schema_id, fastavro.parse_schema(schema))))
    return out


def as_older(record: dict[str, Any], framer: AvroFramer) -> dict[str, Any] | None:
    """The record as an older writer wrote it: without the fields its schema lacks (None when it could not
    have written it, e.g. a gap marker before gap markers existed)."""
    names = {f["name"] for f in framer.parsed["fields"]}
    if any(v not in (None, False) for k, v in record.items() if k not in names):
        return None
    return {k: v for k, v in record.items() if k in names}


async def publish_every_contract(settings: PublisherSettings, registry: ContractRegistry) -> Batch:
    """Every sample of every contract (all account kinds, gap markers, book kinds), with run-unique event ids,
    written with the current schemas and, where a released older version exists, with that one too."""
    run = uuid.uuid4().hex[:10]
    since_ms = int(time.time() * 1000)  # the batch is stamped by this process, on this clock, after this moment
    written: dict[str, Written] = {}
    older = older_writers(registry, run)
    publisher = KafkaPublisher(settings, client_id=f"consumer-proof-{run}")
    await publisher.start()

    async def publish(spec: topics.TopicSpec, framer: AvroFramer, record: dict[str, Any]) -> None:
        raw = framer.encode(record)
        decoded = registry.decode(raw)  # marketpipe's serde, writer schema fetched by the framed id
        assert decoded == record, f"marketpipe's own serde does not round-trip {spec.schema} id {framer.schema_id}"
        key = record_key(spec, record)
        await publisher.publish(spec, key, raw)
        written[record["event_id"]] = Written(spec.name, key.decode(), raw, decoded)

    try:
        for schema, records in samples().items():
            spec = topics.BY_SCHEMA[schema]
            for sample in records:
                await publish(spec, registry.framer(schema), {**sample, "event_id": f"proof-{run}:{sample['event_id']}"})
                for name, schema_id, framer in older:
                    old = as_older(sample, framer) if name == schema else None
                    if old is not None:
                        await publish(spec, framer, {**old, "event_id": f"proof-{run}:{sample['event_id']}:id{schema_id}"})
    finally:
        await publisher.stop(timeout=60)
    assert {w.topic for w in written.values()} == {t.name for t in topics.ALL_TOPICS}
    assert older, "no released older schema version to write with"
    return Batch(since_ms, written, [schema_id for _, schema_id, _ in older])


def field_diffs(wrote: Any, decoded: Any, path: str) -> list[str]:
    """Every difference, by field path; values must match in type too (a price is str, never a float)."""
    if isinstance(wrote, dict):
        if not isinstance(decoded, dict):
            return [f"{path}: wrote a record, decoded {decoded!r}"]
        diffs = [f"{path}.{k}: missing" for k in wrote if k not in decoded]
        diffs += [f"{path}.{k}: not in the contract" for k in decoded if k not in wrote]
        for k in wrote:
            if k in decoded:
                diffs += field_diffs(wrote[k], decoded[k], f"{path}.{k}")
        return diffs
    if isinstance(wrote, list):
        if not isinstance(decoded, list) or len(decoded) != len(wrote):
            return [f"{path}: wrote {wrote!r}, decoded {decoded!r}"]
        return [d for i, (w, g) in enumerate(zip(wrote, decoded, strict=True)) for d in field_diffs(w, g, f"{path}[{i}]")]
    if type(wrote) is not type(decoded) or wrote != decoded:
        return [f"{path}: wrote {wrote!r} ({type(wrote).__name__}), decoded {decoded!r} ({type(decoded).__name__})"]
    return []


def compare_json_lines(batch: Batch, stdout: str) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Parse a consumer's JSON lines; return this batch's lines by event id and every field difference."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        event_id = row["value"]["event_id"]
        if event_id in batch.by_event_id:
            seen.setdefault(event_id, []).append(row)
    diffs: list[str] = []
    for event_id, w in batch.by_event_id.items():
        rows = seen.get(event_id, [])
        if len(rows) != 1:
            diffs.append(f"{event_id}: decoded {len(rows)} times, expected once")
            continue
        row = rows[0]
        if row["topic"] != w.topic or row["key"] != w.key:
            diffs.append(f"{event_id}: on {row['topic']} key {row['key']!r}, written to {w.topic} key {w.key!r}")
        diffs += field_diffs(w.record, row["value"], f"{w.topic}[{event_id}]")
    return seen, diffs

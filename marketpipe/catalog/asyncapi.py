"""The AsyncAPI 3 document of marketpipe's topics, derived from `schemas/topics.py` and `schemas/avro`.

One channel per topic (address = topic name) with its Kafka channel binding (partitions, cleanup policy,
retention), one `receive` operation per channel (what a consumer does), one message per contract with its
key (Kafka message binding), Confluent framing (schema id in the payload, TopicNameStrategy subject),
compatibility mode and the Avro schema inline as a multi-format schema object
(`application/vnd.apache.avro;version=1.9.0`) under `components.schemas`. Deterministic: the same tree
always gives the same bytes, so CI can compare the committed copy with a fresh one.
"""

from __future__ import annotations

import json
from typing import Any

from marketpipe.catalog.topics_prose import DEDUP_RULE, ORDERING_RULE, prose
from schemas import contracts
from schemas.registry import COMPATIBILITY
from schemas.topics import ALL_TOPICS, KeyKind, TopicSpec

AVRO_FORMAT = "application/vnd.apache.avro;version=1.9.0"
KAFKA_BINDING_VERSION = "0.5.0"
CONTENT_TYPE = "application/vnd.confluent.avro"  # magic byte 0, 4-byte big-endian schema id, Avro binary

KEY_PATTERN = {KeyKind.MARKET: "^[a-z0-9_.-]+:[A-Z0-9]+-[A-Z0-9]+(-PERP)?$", KeyKind.ACCOUNT: "^[a-z0-9_.-]+:.+$"}
KEY_EXAMPLE = {KeyKind.MARKET: "drift:SOL-PERP", KeyKind.ACCOUNT: "rabbitx:13"}

FRAMING = ("Values are Confluent-framed Avro: byte 0 is the magic byte 0, bytes 1-4 the registry schema id "
           "(big-endian), then the Avro binary datum. Read the writer schema by id from the registry "
           "(Confluent API; Apicurio serves it at `/apis/ccompat/v7`) and resolve it against the reader "
           "schema you compiled against: every version reads every other version's data.")


def channel_id(spec: TopicSpec) -> str:
    """A stable identifier for a topic: `marketpipe.derived.book-top.v1` -> `derivedBookTopV1`."""
    parts = spec.name.removeprefix("marketpipe.").replace("-", ".").split(".")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def message_id(spec: TopicSpec) -> str:
    return str(contracts.schema_json(spec.schema)["name"])


def key_description(spec: TopicSpec) -> str:
    what = "market" if spec.key is KeyKind.MARKET else "account"
    return (f"UTF-8 text `<venue>:<{what}>` (not Avro), e.g. `{KEY_EXAMPLE[spec.key]}`. Kafka's default "
            f"murmur2 partitioner maps it to one of {spec.partitions} partitions: every event of a {what} is "
            f"in one partition, in publication order.")


def ordering(spec: TopicSpec) -> str:
    what = "market" if spec.key is KeyKind.MARKET else "account"
    return f"per {what} (per key): total order within the key's partition; none across keys"


def _channel(spec: TopicSpec) -> dict[str, Any]:
    p = prose(spec)
    topic_config: dict[str, Any] = {"cleanup.policy": [spec.cleanup_policy]}
    if spec.retention_ms is not None:
        topic_config["retention.ms"] = spec.retention_ms
    description = "\n\n".join((p.summary, f"Published by {p.producer}.", *p.rules))
    return {
        "address": spec.name,
        "title": p.title,
        "summary": p.summary,
        "description": description,
        "messages": {message_id(spec): {"$ref": f"#/components/messages/{message_id(spec)}"}},
        "bindings": {"kafka": {"topic": spec.name, "partitions": spec.partitions,
                               "topicConfiguration": topic_config, "bindingVersion": KAFKA_BINDING_VERSION}},
        "x-marketpipe-key": {"kind": spec.key.value, "format": key_description(spec)},
        "x-marketpipe-ordering": ordering(spec),
        "x-marketpipe-subject": spec.subject,
        "x-marketpipe-compatibility": COMPATIBILITY,
        "x-marketpipe-derived": spec.derived,
    }


def _message(spec: TopicSpec) -> dict[str, Any]:
    schema = contracts.schema_json(spec.schema)
    released = [v for v, _ in contracts.released_versions(spec.schema)]
    return {
        "name": message_id(spec),
        "title": f"{schema['name']} ({spec.schema}.avsc)",
        "summary": schema.get("doc", ""),
        "description": "\n\n".join((
            f"Avro contract `schemas/avro/{spec.schema}.avsc`, registry subject `{spec.subject}` "
            f"(TopicNameStrategy), compatibility {COMPATIBILITY}; released versions kept in "
            f"`schemas/released/{spec.schema}/`: {', '.join(f'v{v}' for v in released)}.",
            FRAMING, DEDUP_RULE)),
        "contentType": CONTENT_TYPE,
        "payload": {"$ref": f"#/components/schemas/{message_id(spec)}"},
        "bindings": {"kafka": {
            "key": {"type": "string", "description": key_description(spec), "pattern": KEY_PATTERN[spec.key],
                    "examples": [KEY_EXAMPLE[spec.key]]},
            "schemaIdLocation": "payload",
            "schemaIdPayloadEncoding": "confluent",
            "schemaLookupStrategy": "TopicNameStrategy",
            "bindingVersion": KAFKA_BINDING_VERSION,
        }},
        "x-marketpipe-subject": spec.subject,
        "x-marketpipe-compatibility": COMPATIBILITY,
        "x-marketpipe-released-versions": released,
        "x-marketpipe-dedup-key": "event_id",
    }


def document(version: str) -> dict[str, Any]:
    """The whole AsyncAPI 3.0 document (a plain dict, JSON-serializable)."""
    channels, operations, messages, schemas = {}, {}, {}, {}
    for spec in ALL_TOPICS:
        cid, mid = channel_id(spec), message_id(spec)
        channels[cid] = _channel(spec)
        operations[f"consume{cid[:1].upper()}{cid[1:]}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"Consume {spec.name}",
            "description": f"Decode with the registry ({spec.subject}), drop duplicates by `event_id`, and "
                           "keep per-key order (one partition per key).",
            "messages": [{"$ref": f"#/channels/{cid}/messages/{mid}"}],
        }
        messages[mid] = _message(spec)
        schemas[mid] = {"schemaFormat": AVRO_FORMAT, "schema": contracts.schema_json(spec.schema)}
    return {
        "asyncapi": "3.1.0",
        "id": "urn:marketpipe:topics",
        "info": {
            "title": "marketpipe topics",
            "version": version,
            "description": "\n\n".join((
                "Normalized crypto market data and account events from venue WebSocket feeds, as Avro on "
                "Kafka, plus the processors' derived topics. Generated by `marketpipe schemas asyncapi` from "
                "`schemas/topics.py` and `schemas/avro/*.avsc`; do not edit by hand.",
                "**All timestamps are microseconds since the Unix epoch (UTC).** Prices and sizes are exact "
                "decimal text, never binary floats.",
                ORDERING_RULE, FRAMING, DEDUP_RULE,
                "Python consumers: `marketpipe.consumer` (events, book follower, dedup, resume by group id); "
                "see `docs/topics.md`.")),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "`marketpipe infra up` (the port it prints; set MARKETPIPE_KAFKA_BOOTSTRAP).",
                "bindings": {"kafka": {"schemaRegistryUrl": "http://127.0.0.1:8080/apis/ccompat/v7",
                                       "schemaRegistryVendor": "apicurio",
                                       "bindingVersion": KAFKA_BINDING_VERSION}},
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

"""Schema registration and lookup against a Confluent-compatible registry (Apicurio, Confluent, Redpanda).

Compatibility policy: every subject is FULL_TRANSITIVE. Downstream teams read our topics with whatever
schema version they compiled against, producers roll one pod at a time (old and new writers coexist),
and consumers replay topics from the beginning: so every version must read data of every other version,
in both directions. In practice: only add or remove fields that have a default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import contracts
from schemas.serde import AvroFramer
from schemas.topics import ALL_TOPICS, BY_SCHEMA, TopicSpec

log = logging.getLogger(__name__)

COMPATIBILITY = "FULL_TRANSITIVE"


class IncompatibleSchema(RuntimeError):
    pass


@dataclass
class Registration:
    subject: str
    schema_id: int
    compatibility: str


class ContractRegistry:
    """A cached view of the registry for marketpipe's contracts: schema ids and framers."""

    def __init__(self, url: str, *, basic_auth: str | None = None) -> None:
        conf: dict[str, str] = {"url": url}
        if basic_auth:
            conf["basic.auth.user.info"] = basic_auth
        self.url = url
        self.client = SchemaRegistryClient(conf)
        self._framers: dict[str, AvroFramer] = {}
        self._by_id: dict[int, AvroFramer] = {}

    def register(self, spec: TopicSpec) -> Registration:
        """Set the subject's compatibility, then register (idempotent: same schema -> same id)."""
        self.client.set_compatibility(subject_name=spec.subject, level=COMPATIBILITY)
        schema = Schema(contracts.schema_text(spec.schema), "AVRO")
        try:
            schema_id = self.client.register_schema(spec.subject, schema)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                raise IncompatibleSchema(
                    f"registry refused {spec.subject}: incompatible with a registered version "
                    f"under {COMPATIBILITY}: {exc.error_message}"
                ) from exc
            raise
        self._remember(spec, schema_id)
        return Registration(spec.subject, schema_id, COMPATIBILITY)

    def register_all(self, specs: tuple[TopicSpec, ...] = ALL_TOPICS) -> list[Registration]:
        return [self.register(s) for s in specs]

    def _remember(self, spec: TopicSpec, schema_id: int) -> AvroFramer:
        framer = AvroFramer(schema_id, contracts.parsed(spec.schema))
        self._framers[spec.schema] = framer
        self._by_id[schema_id] = framer
        return framer

    def framer(self, schema: str) -> AvroFramer:
        """Framer for the working tree's schema; looked up (not registered) on first use."""
        framer = self._framers.get(schema)
        if framer is None:
            spec = BY_SCHEMA[schema]
            found = self.client.lookup_schema(spec.subject, Schema(contracts.schema_text(schema), "AVRO"))
            if found.schema_id is None:
                raise SchemaRegistryError(404, 40403, f"no schema id for {spec.subject} in the lookup answer")
            framer = self._remember(spec, found.schema_id)
        return framer

    def decode(self, data: bytes) -> dict:
        """Decode any marketpipe message; the writer schema comes from the registry by id."""
        from schemas.serde import read_schema_id

        schema_id = read_schema_id(data)
        framer = self._by_id.get(schema_id)
        if framer is None:
            import json

            import fastavro

            text = self.client.get_schema(schema_id).schema_str
            if text is None:
                raise SchemaRegistryError(404, 40403, f"schema id {schema_id} has no schema text")
            framer = AvroFramer(schema_id, fastavro.parse_schema(json.loads(text)))
            self._by_id[schema_id] = framer
        return framer.decode(data)

    def subject_compatibility(self, subject: str) -> str:
        cfg = self.client.get_config(subject)
        level = cfg.compatibility_level or cfg.compatibility
        return level.value if level is not None else ""

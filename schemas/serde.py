"""Confluent wire framing around fastavro: magic byte 0, 4-byte big-endian schema id, Avro binary."""

from __future__ import annotations

import io
import struct
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import validate

MAGIC = 0
_HEADER = struct.Struct(">bI")


class SchemaViolation(ValueError):
    """A value does not match its Avro contract; the message names the field."""


class FramingError(ValueError):
    """Bytes are not a Confluent-framed Avro message."""


class DecodeError(FramingError):
    """The Avro body of a message is malformed (truncated, trailing bytes, index out of range, bad UTF-8, ...)."""


def _violation(record: dict[str, Any], parsed_schema: Any) -> SchemaViolation:
    try:
        validate(record, parsed_schema, raise_errors=True)
    except Exception as exc:  # fastavro.validation.ValidationError names the field path
        detail = getattr(exc, "errors", None) or [str(exc)]
        return SchemaViolation(f"{parsed_schema.get('name')}: " + "; ".join(str(d) for d in detail))
    return SchemaViolation(f"{parsed_schema.get('name')}: value not serializable")


class AvroFramer:
    """Encodes/decodes one schema with a known registry id. Cheap; build one per (schema, id)."""

    __slots__ = ("schema_id", "parsed", "_header")

    def __init__(self, schema_id: int, parsed_schema: Any) -> None:
        self.schema_id = schema_id
        self.parsed = parsed_schema
        self._header = _HEADER.pack(MAGIC, schema_id)

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        try:
            schemaless_writer(buf, self.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise _violation(record, self.parsed) from exc
        return buf.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        schema_id = read_schema_id(data)
        if schema_id != self.schema_id:
            raise FramingError(f"schema id {schema_id} != expected {self.schema_id}")
        record = schemaless_reader(io.BytesIO(data[5:]), self.parsed, self.parsed)
        if not isinstance(record, dict):
            raise FramingError(f"schema id {schema_id} is not a record schema")
        return record


def read_schema_id(data: bytes) -> int:
    if len(data) < 5:
        raise FramingError(f"message of {len(data)} bytes is shorter than the 5-byte Confluent header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FramingError(f"magic byte {magic} != 0: not Confluent-framed Avro")
    return schema_id

"""Offline FULL_TRANSITIVE check of the working tree's schemas against every released version.

Uses Apache Avro's own schema-resolution checker (the `avro` package), so the rules are the
specification's, not ours. A problem names the schema, the released version, the direction
(BACKWARD: new reader / old data; FORWARD: old reader / new data), the field path and the rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas import contracts


@dataclass
class CompatProblem:
    schema: str
    released_version: int
    direction: str
    location: str
    rule: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.schema}.avsc vs released v{self.released_version}: {self.direction} broken at "
            f"{self.location}: {self.rule}: {self.message} (policy FULL_TRANSITIVE)"
        )


def _parse(doc: dict[str, Any]) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(doc))


def field_path(location: str, doc: Any) -> str:
    """Turn a JSON-pointer location such as /fields/11/type into a field path such as 'fee.type'."""
    names: list[str] = []
    node = doc
    parts = [p for p in location.split("/") if p]
    for i, part in enumerate(parts):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            names.append(part)
            continue
        if isinstance(node, dict) and "name" in node and i > 0 and parts[i - 1] == "fields":
            names.append(str(node["name"]))
    return "field '" + ".".join(names) + "'" if names else "the record"


def check_pair(name: str, version: int, current: dict[str, Any], released: dict[str, Any]) -> list[CompatProblem]:
    new, old = _parse(current), _parse(released)
    problems: list[CompatProblem] = []
    checker = ReaderWriterCompatibilityChecker()
    docs = {"BACKWARD": current, "FORWARD": released}
    for direction, reader, writer in (("BACKWARD", new, old), ("FORWARD", old, new)):
        result = checker.get_compatibility(reader, writer)
        if result.compatibility is SchemaCompatibilityType.compatible:
            continue
        # the avro checker reports locations and messages as sets; keep the deepest paths
        locations = sorted((loc for loc in result.locations if loc != "/"), key=len, reverse=True) or ["/"]
        where = ", ".join(f"{field_path(loc, docs[direction])} ({loc})" for loc in locations[:3])
        rules = ", ".join(sorted({k.name for k in result.incompatibilities})) or "incompatible"
        message = "; ".join(sorted(result.messages))
        problems.append(CompatProblem(name, version, direction, where, rules, message))
    return problems


def check_all(schema_dir: Path = contracts.SCHEMA_DIR, released_dir: Path = contracts.RELEASED_DIR) -> list[CompatProblem]:
    problems: list[CompatProblem] = []
    for name, current in contracts.load_dir(schema_dir).items():
        for version, released in contracts.released_versions(name, released_dir):
            problems.extend(check_pair(name, version, current, released))
    return problems


def unreleased(schema_dir: Path = contracts.SCHEMA_DIR, released_dir: Path = contracts.RELEASED_DIR) -> list[str]:
    """Schemas whose working-tree text differs from their newest released version."""
    out = []
    for name, current in contracts.load_dir(schema_dir).items():
        versions = contracts.released_versions(name, released_dir)
        if not versions or versions[-1][1] != current:
            out.append(name)
    return out

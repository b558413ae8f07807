"""Loads the Avro contracts of the working tree and the released versions kept in the repo."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_DIR = Path(__file__).parent / "avro"
RELEASED_DIR = Path(__file__).parent / "released"


def schema_names() -> list[str]:
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))


@cache
def schema_json(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())


def schema_text(name: str) -> str:
    """Canonical-ish text registered in the registry (stable key order, no whitespace)."""
    return json.dumps(schema_json(name), separators=(",", ":"), sort_keys=True)


@cache
def parsed(name: str) -> Any:
    return fastavro.parse_schema(schema_json(name))


def load_dir(folder: Path) -> dict[str, dict[str, Any]]:
    """Every schema of a folder of .avsc files, by file stem."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.avsc"))}


def released_versions(name: str, released_dir: Path = RELEASED_DIR) -> list[tuple[int, dict[str, Any]]]:
    """Released versions of a schema: schemas/released/<name>/v<N>.avsc, oldest first."""
    folder = released_dir / name
    out = []
    for p in folder.glob("v*.avsc"):
        out.append((int(p.stem[1:]), json.loads(p.read_text())))
    return sorted(out, key=lambda t: t[0])

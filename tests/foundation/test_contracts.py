"""Contracts against the real schema registry: round trips, violations, idempotent registration,
compatibility enforcement by the registry and by `marketpipe schemas check`."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import contracts
from schemas.registry import COMPATIBILITY, ContractRegistry
from schemas.serde import FramingError, SchemaViolation, read_schema_id
from schemas.topics import ALL_TOPICS, BY_SCHEMA
from tests.foundation.samples import samples


def test_every_schema_has_a_topic_and_a_release() -> None:
    assert set(contracts.schema_names()) == {t.schema for t in ALL_TOPICS}
    for name in contracts.schema_names():
        assert contracts.released_versions(name), f"{name} has no released version in schemas/released"


def test_no_float_or_double_anywhere_in_the_contracts() -> None:
    def walk(node: object) -> None:
        if isinstance(node, str):
            assert node not in ("float", "double"), "prices and sizes must be exact"
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for name in contracts.schema_names():
        walk(contracts.schema_json(name))


@pytest.mark.parametrize("name", sorted(samples()))
def test_round_trip_through_registry_framing(registry: ContractRegistry, name: str) -> None:
    framer = registry.framer(name)
    fresh = ContractRegistry(registry.url)  # decodes by the id in the frame, fetching the writer schema
    for record in samples()[name]:
        data = framer.encode(record)
        assert data[0] == 0 and read_schema_id(data) == framer.schema_id
        assert framer.decode(data) == record
        assert fresh.decode(data) == record


def test_violation_names_the_field(registry: ContractRegistry) -> None:
    record = dict(samples()["trade"][0])
    record["price"] = 65289.2  # a float where exact decimal text is required
    with pytest.raises(SchemaViolation, match=r"price"):
        registry.framer("trade").encode(record)
    missing = dict(samples()["book"][0])
    del missing["kind"]
    with pytest.raises(SchemaViolation, match=r"kind"):
        registry.framer("book").encode(missing)


def test_unframed_bytes_are_refused(registry: ContractRegistry) -> None:
    with pytest.raises(FramingError, match="magic"):
        registry.decode(b"\x01\x00\x00\x00\x01abc")
    with pytest.raises(FramingError, match="shorter"):
        registry.decode(b"\x00\x00")


def test_registering_twice_is_idempotent(registry_url: str) -> None:
    reg = ContractRegistry(registry_url)
    first = {r.subject: r.schema_id for r in reg.register_all()}
    second = {r.subject: r.schema_id for r in ContractRegistry(registry_url).register_all()}
    assert first == second
    for spec in ALL_TOPICS:
        assert reg.subject_compatibility(spec.subject) == COMPATIBILITY
        versions = reg.client.get_versions(spec.subject)
        assert len(versions) == 1, f"{spec.subject} got a new version on re-registration: {versions}"


def test_real_registry_refuses_an_incompatible_change(registry_url: str, unique: str) -> None:
    reg = ContractRegistry(registry_url)
    subject = f"test-{unique}-value"
    reg.client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
    v1 = contracts.schema_json("trade")
    reg.client.register_schema(subject, Schema(json.dumps(v1), "AVRO"))
    ok = copy.deepcopy(v1)
    ok["fields"].append({"name": "fee", "type": ["null", "string"], "default": None})
    reg.client.register_schema(subject, Schema(json.dumps(ok), "AVRO"))  # optional field: allowed
    bad = copy.deepcopy(ok)
    bad["fields"].append({"name": "venue_fee", "type": "string"})  # no default: breaks old data readers
    with pytest.raises(SchemaRegistryError) as err:
        reg.client.register_schema(subject, Schema(json.dumps(bad), "AVRO"))
    assert err.value.http_status_code == 409
    assert len(reg.client.get_versions(subject)) == 2


def _check(schema_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "marketpipe.cli", "schemas", "check", "--schema-dir", str(schema_dir)],
                          capture_output=True, text=True, timeout=120)


def test_schemas_check_passes_on_the_working_tree() -> None:
    res = _check(contracts.SCHEMA_DIR)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "compatible with all released versions" in res.stdout


def test_schemas_check_names_field_and_rule(tmp_path: Path) -> None:
    work = tmp_path / "avro"
    shutil.copytree(contracts.SCHEMA_DIR, work)
    trade = json.loads((work / "trade.avsc").read_text())
    trade["fields"].append({"name": "venue_fee", "type": "string"})
    (work / "trade.avsc").write_text(json.dumps(trade))
    book = json.loads((work / "book.avsc").read_text())
    book["fields"] = [f for f in book["fields"] if f["name"] != "venue_symbol"]  # removing a required field
    (work / "book.avsc").write_text(json.dumps(book))
    res = _check(work)
    assert res.returncode == 1
    assert "trade.avsc vs released v1: BACKWARD broken at field 'venue_fee'" in res.stdout
    assert "reader_field_missing_default_value" in res.stdout
    assert "book.avsc vs released v1: FORWARD broken at field 'venue_symbol'" in res.stdout


def test_topics_are_keyed_and_subjects_follow_topic_names() -> None:
    from schemas.topics import account_key, market_key, parse_key

    assert market_key("rabbitx", "BTC-USD") == b"rabbitx:BTC-USD"
    assert account_key("econia", "0x1:0") == b"econia:0x1:0"
    assert parse_key(b"econia:0x1:0") == ("econia", "0x1:0")
    assert BY_SCHEMA["book"].subject == "marketpipe.book.v1-value"
    assert len({t.name for t in ALL_TOPICS}) == len(ALL_TOPICS)

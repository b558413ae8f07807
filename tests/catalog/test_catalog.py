"""The topic catalog (docs/asyncapi.json + docs/topics.md) is generated from the code and never stale."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from marketpipe import catalog
from marketpipe.catalog import asyncapi
from schemas import contracts
from schemas.topics import ALL_TOPICS, BOOK, OHLCV, TRADES

REPO = Path(__file__).resolve().parents[2]


def _fields_without_doc(t: Any, path: str, out: list[str]) -> None:
    if isinstance(t, list):
        for x in t:
            _fields_without_doc(x, path, out)
    elif isinstance(t, dict):
        if t.get("type") == "record":
            for f in t["fields"]:
                if not str(f.get("doc", "")).strip():
                    out.append(f"{path}.{f['name']}")
                _fields_without_doc(f["type"], f"{path}.{f['name']}", out)
        elif t.get("type") == "array":
            _fields_without_doc(t["items"], path, out)


def test_every_field_of_every_contract_has_a_doc() -> None:
    missing: list[str] = []
    for name in contracts.schema_names():
        _fields_without_doc(contracts.schema_json(name), name, missing)
    assert missing == []


def test_committed_catalog_equals_a_fresh_generation() -> None:
    assert catalog.stale() == [], "run `marketpipe schemas asyncapi` and commit docs/"


def test_document_states_every_topic_fact_from_topics_py() -> None:
    doc = asyncapi.document("1.2.3")
    assert doc["asyncapi"].startswith("3.") and doc["info"]["version"] == "1.2.3"
    by_address = {c["address"]: (cid, c) for cid, c in doc["channels"].items()}
    assert set(by_address) == {t.name for t in ALL_TOPICS}
    for spec in ALL_TOPICS:
        cid, channel = by_address[spec.name]
        assert channel["bindings"]["kafka"]["partitions"] == spec.partitions
        assert channel["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] == [spec.cleanup_policy]
        assert channel["x-marketpipe-subject"] == spec.subject
        assert channel["x-marketpipe-compatibility"] == "FULL_TRANSITIVE"
        assert f"<venue>:<{spec.key.value}>" in channel["x-marketpipe-key"]["format"]
        (mid,) = channel["messages"]
        message = doc["components"]["messages"][mid]
        assert message["bindings"]["kafka"]["schemaIdLocation"] == "payload"
        assert message["x-marketpipe-dedup-key"] == "event_id" and "event_id" in message["description"]
        assert message["x-marketpipe-released-versions"] == [v for v, _ in contracts.released_versions(spec.schema)]
        schema = doc["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert schema["schemaFormat"] == "application/vnd.apache.avro;version=1.9.0"
        assert schema["schema"] == contracts.schema_json(spec.schema)
        ops = [o for o in doc["operations"].values() if o["channel"]["$ref"] == f"#/channels/{cid}"]
        assert len(ops) == 1 and ops[0]["action"] == "receive"
    book = by_address[BOOK.name][1]["description"]
    for word in ("SNAPSHOT", "DELTA", "RESET", "prev_sequence", "in sync"):
        assert word in book
    assert "gap" in by_address[TRADES.name][1]["description"]
    assert "revision" in by_address[OHLCV.name][1]["description"]


def test_check_flag_fails_on_a_stale_copy_and_passes_after_regeneration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from marketpipe.cli import main

    args = ["schemas", "asyncapi", "--out", str(tmp_path)]
    assert main([*args, "--check"]) == 1  # nothing written yet
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
    md = tmp_path / "topics.md"
    md.write_text(md.read_text().replace("murmur2", "round-robin"))
    capsys.readouterr()
    assert main([*args, "--check"]) == 1
    out = capsys.readouterr().out
    assert "STALE" in out and "topics.md" in out and "asyncapi.json" not in out


def _parser_dir() -> Path:
    """The pinned parser: .ci/install-asyncapi-parser (a no-op when already installed, ~25 s cold)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the AsyncAPI parser (an npm package) cannot run")
    res = subprocess.run([str(REPO / ".ci" / "install-asyncapi-parser")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return Path(res.stdout.strip())


def _validate(parser_dir: Path, document: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", str(REPO / ".ci" / "validate-asyncapi.mjs"), str(parser_dir), str(document)],
                          capture_output=True, text=True, timeout=120)


def test_asyncapi_parser_accepts_the_generated_document_and_rejects_a_broken_avro_schema(tmp_path: Path) -> None:
    parser_dir = _parser_dir()
    good = tmp_path / "asyncapi.json"
    doc = asyncapi.document("1.0.0")
    good.write_text(asyncapi.render_json(doc))
    res = _validate(parser_dir, good)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(ALL_TOPICS)} channels" in res.stdout and f"{len(ALL_TOPICS)} Avro schemas valid" in res.stdout

    broken = json.loads(good.read_text())
    broken["components"]["schemas"]["BookUpdate"]["schema"]["fields"][0]["type"] = "strng"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    res = _validate(parser_dir, bad)
    assert res.returncode == 1 and "strng" in res.stdout, res.stdout + res.stderr

"""confluent-kafka's own AvroDeserializer reads every marketpipe topic exactly as marketpipe's serde wrote it
(exact decimal text for prices and sizes), through the registry's Confluent API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas.topics import ALL_TOPICS
from tests.consumers.published import Batch, compare_json_lines, field_diffs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "confluent_consumer.py"


def test_avro_deserializer_decodes_each_record_like_marketpipe_serde(every_contract: Batch, registry_url: str) -> None:
    # TOPIC strategy as in examples/confluent_consumer.py (the default, ASSOCIATED, asks a Confluent-only API);
    # a request timeout so a registry that stops answering fails the test, not pytest's timeout
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url, "timeout": 30}),
                                    conf={"subject.name.strategy.type": "TOPIC"})
    diffs: list[str] = []
    for event_id, w in every_contract.by_event_id.items():
        decoded = deserializer(w.raw, SerializationContext(w.topic, MessageField.VALUE))
        diffs += field_diffs(w.record, decoded, f"{w.topic}[{event_id}]")
    assert not diffs, "\n".join(diffs)


def test_confluent_consumer_example_reads_every_topic(every_contract: Batch, consumer_env: dict[str, str]) -> None:
    res = subprocess.run([sys.executable, str(EXAMPLE), "--from-timestamp", str(every_contract.since_ms),
                          "--timeout", "180"], env=consumer_env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stderr.strip().splitlines()[-1])["summary"]
    assert summary["reached_end"] and summary["undecodable"] == 0, summary
    assert set(summary["topics"]) >= {t.name for t in ALL_TOPICS}
    seen, diffs = compare_json_lines(every_contract, res.stdout)
    assert not diffs, "\n".join(diffs)
    assert {rows[0]["topic"] for rows in seen.values()} == {t.name for t in ALL_TOPICS}

"""Read marketpipe's topics with nothing but confluent-kafka: `DeserializingConsumer` + `AvroDeserializer`
against the registry's Confluent API (Apicurio: `http://host:port/apis/ccompat/v7`).

This is what a downstream Python team writes without marketpipe installed: the records are Confluent-framed
Avro (magic byte 0, 4-byte schema id, Avro binary), so Confluent's own deserializer fetches the writer schema
by id and decodes them. Prices and sizes are Avro strings: their exact decimal text comes out as `str`.

Each record is printed as one JSON line on stdout:
`{"topic", "partition", "offset", "key", "value"}`. By default every partition of every
`marketpipe.*` topic is read from the beginning (or from `--from-timestamp` milliseconds) up to the end
offsets seen at start; then a summary JSON line goes to stderr and the program exits. `--follow` keeps
reading with a consumer group instead.

    MARKETPIPE_KAFKA_BOOTSTRAP=127.0.0.1:9092 \
    MARKETPIPE_REGISTRY_URL=http://127.0.0.1:8080/apis/ccompat/v7 \
    python examples/confluent_consumer.py [--topics a,b] [--from-timestamp MS] [--follow --group ID]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid
from typing import Any

from confluent_kafka import DeserializingConsumer, TopicPartition
from confluent_kafka.error import ConsumeError, KeyDeserializationError, ValueDeserializationError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import StringDeserializer

MARKETPIPE_TOPICS = re.compile(r"marketpipe\..*")


def consumer_config(group: str, follow: bool) -> dict[str, Any]:
    registry = SchemaRegistryClient({"url": os.environ["MARKETPIPE_REGISTRY_URL"]})
    return {
        "bootstrap.servers": os.environ["MARKETPIPE_KAFKA_BOOTSTRAP"],
        "group.id": group,
        "enable.auto.commit": follow,
        "auto.offset.reset": "earliest",
        "key.deserializer": StringDeserializer("utf_8"),  # "<venue>:<market>" or "<venue>:<account>"
        # the writer schema is fetched by the id in each record; the subject strategy is named because
        # confluent-kafka 2.16 defaults to ASSOCIATED, which first asks an associations API that only
        # Confluent's registry has (Apicurio answers 404, and once, under load, not at all)
        "value.deserializer": AvroDeserializer(registry, conf={"subject.name.strategy.type": "TOPIC"}),
    }


def as_line(msg: Any) -> str:
    return json.dumps({"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(), "key": msg.key(),
                       "value": msg.value()})


def read_to_end(consumer: DeserializingConsumer, topics: list[str] | None, from_ts_ms: int | None,
                timeout_s: float) -> int:
    metadata = consumer.list_topics(timeout=30)
    names = sorted(t for t in metadata.topics if (t in topics if topics else MARKETPIPE_TOPICS.fullmatch(t)))
    partitions = [TopicPartition(t, p) for t in names for p in sorted(metadata.topics[t].partitions)]
    end = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions}
    if from_ts_ms is not None:
        found = consumer.offsets_for_times([TopicPartition(tp.topic, tp.partition, from_ts_ms) for tp in partitions],
                                           timeout=30)
        # offset -1: no record at or after the timestamp -> start at the end
        start = [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else end[(tp.topic, tp.partition)])
                 for tp in found]
    else:
        start = [TopicPartition(tp.topic, tp.partition, consumer.get_watermark_offsets(tp, timeout=30)[0])
                 for tp in partitions]
    consumer.assign(start)
    position = {(tp.topic, tp.partition): tp.offset for tp in start}
    decoded = undecodable = 0
    deadline = time.monotonic() + timeout_s
    while any(position[k] < end[k] for k in end):
        if time.monotonic() > deadline:
            print(f"timed out after {timeout_s}s before reaching the end offsets", file=sys.stderr)
            return 4
        try:
            msg: Any = consumer.poll(0.5)
        except (KeyDeserializationError, ValueDeserializationError) as exc:  # counted, logged, skipped
            bad: Any = exc.kafka_message
            undecodable += 1
            if bad is not None:
                position[(bad.topic(), bad.partition())] = bad.offset() + 1
                print(f"undecodable record {bad.topic()}-{bad.partition()}@{bad.offset()}: {exc}", file=sys.stderr)
            else:
                print(f"undecodable record: {exc}", file=sys.stderr)
            continue
        if msg is None:
            continue
        print(as_line(msg))
        decoded += 1
        position[(msg.topic(), msg.partition())] = msg.offset() + 1
    print(json.dumps({"summary": {"topics": names, "decoded": decoded, "undecodable": undecodable,
                                  "reached_end": True}}), file=sys.stderr)
    return 0


def follow(consumer: DeserializingConsumer, topics: list[str] | None) -> int:
    consumer.subscribe(topics or ["^marketpipe\\..*"])
    try:
        while True:
            try:
                msg = consumer.poll(1.0)
            except (KeyDeserializationError, ValueDeserializationError, ConsumeError) as exc:
                print(f"undecodable record: {exc}", file=sys.stderr)
                continue
            if msg is not None:
                print(as_line(msg), flush=True)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--topics", help="comma-separated topic names (default: every marketpipe.* topic)")
    parser.add_argument("--from-timestamp", type=int, help="start at this record time (ms since the epoch)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to reach the end offsets")
    parser.add_argument("--follow", action="store_true", help="subscribe with a consumer group and keep reading")
    parser.add_argument("--group", default=None, help="consumer group id (with --follow)")
    args = parser.parse_args(argv)
    topics = args.topics.split(",") if args.topics else None
    group = args.group or f"marketpipe-confluent-consumer-{uuid.uuid4().hex[:8]}"
    consumer = DeserializingConsumer(consumer_config(group, args.follow))
    try:
        if args.follow:
            return follow(consumer, topics)
        return read_to_end(consumer, topics, args.from_timestamp, args.timeout)
    finally:
        consumer.close()


if __name__ == "__main__":
    sys.exit(main())

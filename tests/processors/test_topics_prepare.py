"""prepare_topics against the real broker: creates what is missing (concurrent creators welcome), waits for
topics owned elsewhere, and refuses a partition count that breaks co-partitioning."""

from __future__ import annotations

import threading
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from marketpipe.infra.stack import Cluster
from processors.topics import NeededTopic, TopicsNotReady, prepare_topics
from tests.processors.harness import delete_topics


def test_concurrent_creators_then_every_partition_is_there(cluster: Cluster) -> None:
    prefix = f"testprep{uuid.uuid4().hex[:8]}."
    needed = [NeededTopic(f"{prefix}a-changelog", 6, {"cleanup.policy": "compact"}),
              NeededTopic(f"{prefix}b", 3)]
    conf = {"bootstrap.servers": cluster.bootstrap}
    errors: list[BaseException] = []
    created: list[list[str]] = []

    def run() -> None:
        try:
            created.append(prepare_topics(conf, needed, replication=1, timeout_s=60))
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert not errors, errors
        assert sorted(n for c in created for n in c) == sorted(t.name for t in needed)  # each created once
        topics = AdminClient(conf).list_topics(timeout=10).topics
        assert len(topics[f"{prefix}a-changelog"].partitions) == 6 and len(topics[f"{prefix}b"].partitions) == 3
    finally:
        delete_topics(cluster.bootstrap, (prefix,))


def test_wrong_partition_count_and_missing_owned_topic_refuse_to_start(cluster: Cluster) -> None:
    prefix = f"testprep{uuid.uuid4().hex[:8]}."
    conf = {"bootstrap.servers": cluster.bootstrap}
    admin = AdminClient(conf)
    for fut in admin.create_topics([NewTopic(f"{prefix}src", num_partitions=2, replication_factor=1)]).values():
        fut.result()
    try:
        with pytest.raises(TopicsNotReady, match=f"{prefix}src has 2 partitions, needs 6"):
            prepare_topics(conf, [NeededTopic(f"{prefix}src", 6)], replication=1, timeout_s=30)
        with pytest.raises(TopicsNotReady, match=f"{prefix}owned"):
            prepare_topics(conf, [NeededTopic(f"{prefix}owned", 6, create=False)], replication=1, timeout_s=2)
    finally:
        delete_topics(cluster.bootstrap, (prefix,))

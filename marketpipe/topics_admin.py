"""Creates marketpipe's topics from schemas.topics (the single source of truth).

Replication: topics are created with replication factor 3 and ``min.insync.replicas`` 2 by default
(settings ``MARKETPIPE_TOPIC_REPLICATION`` / ``MARKETPIPE_TOPIC_MIN_INSYNC_REPLICAS``; the Helm chart's
``topics.replication`` / ``topics.minInsyncReplicas`` have the same defaults), so an acks=all producer
keeps writing while one broker is down and an acknowledged event is on two brokers at least. On a
single-broker cluster (the local development default) both become 1, said in the log; any other cluster
with fewer brokers than asked for refuses the creation (Kafka's INVALID_REPLICATION_FACTOR), loudly.
"""

from __future__ import annotations

import logging

from confluent_kafka.admin import AdminClient, NewTopic

from schemas.topics import ALL_TOPICS, TopicSpec

log = logging.getLogger(__name__)

DEFAULT_REPLICATION = 3
DEFAULT_MIN_INSYNC_REPLICAS = 2


def effective_replication(brokers: int, replication: int, min_insync: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) to create topics with on a cluster of ``brokers``."""
    if brokers == 1 and replication > 1:
        return 1, 1
    return replication, min(min_insync, replication)


def ensure_topics(bootstrap: str, specs: tuple[TopicSpec, ...] = ALL_TOPICS, *,
                  replication: int = DEFAULT_REPLICATION, min_insync: int = DEFAULT_MIN_INSYNC_REPLICAS,
                  extra_conf: dict[str, str] | None = None, partitions: int | None = None) -> list[str]:
    """Create the topics that are missing; returns the names created."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **(extra_conf or {})})
    metadata = admin.list_topics(timeout=15)
    existing = set(metadata.topics)
    missing = [spec for spec in specs if spec.name not in existing]
    if not missing:
        return []
    rf, isr = effective_replication(len(metadata.brokers), replication, min_insync)
    if (rf, isr) != (replication, min(min_insync, replication)):
        log.info("single-broker cluster: topics created with replication factor 1 (asked for %d)", replication)
    new = []
    for spec in missing:
        config = {"cleanup.policy": spec.cleanup_policy, "min.insync.replicas": str(isr)}
        if spec.retention_ms is not None:
            config["retention.ms"] = str(spec.retention_ms)
        new.append(NewTopic(spec.name, num_partitions=partitions or spec.partitions,
                            replication_factor=rf, config=config))
    for name, fut in admin.create_topics(new, operation_timeout=30).items():
        try:
            fut.result()
            log.info("created topic %s (replication factor %d, min.insync.replicas %d)", name, rf, isr)
        except Exception as exc:  # TOPIC_ALREADY_EXISTS from a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return [t.topic for t in new]

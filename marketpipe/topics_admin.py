"""Creates marketpipe's topics from schemas.topics (the single source of truth)."""

from __future__ import annotations

import logging

from confluent_kafka.admin import AdminClient, NewTopic

from schemas.topics import ALL_TOPICS, TopicSpec

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, specs: tuple[TopicSpec, ...] = ALL_TOPICS, *,
                  replication: int = 1, extra_conf: dict[str, str] | None = None,
                  partitions: int | None = None) -> list[str]:
    """Create the topics that are missing; returns the names created."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **(extra_conf or {})})
    existing = set(admin.list_topics(timeout=15).topics)
    new = []
    for spec in specs:
        if spec.name in existing:
            continue
        config = {"cleanup.policy": spec.cleanup_policy}
        if spec.retention_ms is not None:
            config["retention.ms"] = str(spec.retention_ms)
        new.append(NewTopic(spec.name, num_partitions=partitions or spec.partitions,
                            replication_factor=replication, config=config))
    if not new:
        return []
    for name, fut in admin.create_topics(new, operation_timeout=30).items():
        try:
            fut.result()
            log.info("created topic %s", name)
        except Exception as exc:  # TOPIC_ALREADY_EXISTS from a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return [t.topic for t in new]

"""Every topic a worker needs, created and verified before faust starts (so a first start cannot race).

faust declares its internal topics (table changelogs) itself, from each worker, while the worker is already
joining the group. With a fresh app id, the first assignment could read a changelog's metadata while its
creation was still in flight: `PartitionsMismatch ... changelog topic '<app>-accounts-changelog' has 0
partitions`, and the worker crashed a few seconds after it said ready (two workers started together: 4/4).

So before faust starts, the worker:
- lists the topics it needs: the source and derived topics (created here only with `create_topics`, else a
  platform team or the chart's schemas Job owns them and the worker waits for them), and the app's internal
  topics: the tick topic and every table's changelog, with the partition count of its source topics and the
  cleanup policy faust would give it (`Table.changelog_topic`, faust's own topic object);
- creates the missing ones in one admin request, tolerating TopicAlreadyExists from a worker doing the same;
- waits until the broker's metadata shows every one with its full partition count, each with a leader;
- refuses to start when an existing topic has a different partition count (tables are co-partitioned with
  their source topics: faust would crash later with the same mismatch).

faust's leader topic is switched off in the app (`topic_disable_leader`): it only serves `on_leader`
timers, which the processors do not use. No agent repartitions (`group_by`), so there are no other
internal topics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic
from mode.utils.times import want_seconds

log = logging.getLogger(__name__)


class TopicsNotReady(RuntimeError):
    """A needed topic is missing or has the wrong partition count (the message says which and why)."""


@dataclass(frozen=True)
class NeededTopic:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    create: bool = True  # False: owned elsewhere (platform team, schemas Job); only waited for


def from_faust_topic(topic: Any) -> NeededTopic:
    """A faust TopicT (changelog or internal topic) as faust itself would declare it."""
    config: dict[str, str] = {str(k): str(v) for k, v in (topic.config or {}).items()}
    flags = [flag for flag, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
    if flags:
        config.setdefault("cleanup.policy", ",".join(flags))
    if topic.retention:
        config.setdefault("retention.ms", str(int(want_seconds(topic.retention) * 1000)))
    (name,) = topic.topics
    return NeededTopic(name, int(topic.partitions), config)


def replication_for(admin_conf: dict[str, str], replication: int, min_insync: int,
                    timeout_s: float = 60.0) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for the topics this worker creates: the settings, or 1 and 1
    on a single-broker cluster (marketpipe.topics_admin.effective_replication)."""
    from marketpipe.topics_admin import effective_replication

    conf: dict[str, str | int | float | bool] = dict(admin_conf)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            brokers = len(AdminClient(conf).list_topics(timeout=min(timeout_s, 15.0)).brokers)
            return effective_replication(brokers, replication, min_insync)
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


def prepare_topics(admin_conf: dict[str, str], needed: list[NeededTopic], *, replication: int,
                   min_insync: int | None = None, timeout_s: float = 60.0, poll_s: float = 0.25) -> list[str]:
    """Create what is missing (idempotent, concurrent creators welcome), then wait until the metadata shows
    every topic with its partition count and a leader per partition. Returns the names this call created."""
    conf: dict[str, str | int | float | bool] = dict(admin_conf)
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout_s
    existing = _partitions(admin, timeout_s)
    _check_counts(needed, existing)
    missing = [t for t in needed if t.name not in existing]
    owned_elsewhere = [t.name for t in missing if not t.create]
    isr = {"min.insync.replicas": str(min_insync)} if min_insync else {}
    to_create = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=replication,
                          config={**isr, **t.config}) for t in missing if t.create]
    created: list[str] = []
    if to_create:
        for name, fut in admin.create_topics(to_create, operation_timeout=30).items():
            try:
                fut.result()
                created.append(name)
                log.info("created topic %s", name)
            except Exception as exc:  # another worker (or the schemas Job) created it first: fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    if owned_elsewhere:
        log.info("waiting for topics created elsewhere (create_topics is off): %s", ", ".join(owned_elsewhere))
    while True:
        existing = _partitions(admin, max(1.0, deadline - time.monotonic()))
        _check_counts(needed, existing)
        waiting = [t.name for t in needed if existing.get(t.name, (0, False))[1] is False]
        if not waiting:
            return created
        if time.monotonic() >= deadline:
            raise TopicsNotReady(f"topics not ready after {timeout_s:.0f}s (missing, or partitions without a "
                                 f"leader): {', '.join(waiting)}")
        time.sleep(poll_s)


def _partitions(admin: AdminClient, timeout_s: float) -> dict[str, tuple[int, bool]]:
    """name -> (partition count, every partition has a leader and no error)."""
    out: dict[str, tuple[int, bool]] = {}
    for name, meta in admin.list_topics(timeout=min(timeout_s, 15.0)).topics.items():
        if meta.error is not None:
            continue  # e.g. UNKNOWN_TOPIC_OR_PART while a creation propagates
        parts = meta.partitions
        out[name] = (len(parts), bool(parts) and all(p.leader >= 0 and p.error is None for p in parts.values()))
    return out


def _check_counts(needed: list[NeededTopic], existing: dict[str, tuple[int, bool]]) -> None:
    wrong = [f"{t.name} has {existing[t.name][0]} partitions, needs {t.partitions}" for t in needed
             if t.name in existing and existing[t.name][0] not in (0, t.partitions)]
    if wrong:
        raise TopicsNotReady("partition counts do not match the processors' co-partitioning "
                             f"(MARKETPIPE_PROCESSOR_TOPIC_PARTITIONS): {'; '.join(wrong)}")

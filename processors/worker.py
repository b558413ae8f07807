"""Run a processor worker: `python -m processors` / `marketpipe process` (settings from MARKETPIPE_*)."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
from typing import TYPE_CHECKING

from marketpipe.fencing import UnpinnedLibraryError
from processors.settings import ProcessorSettings
from processors.topics import NeededTopic, from_faust_topic, prepare_topics, replication_for

if TYPE_CHECKING:
    from processors.app import ProcessorApp

log = logging.getLogger(__name__)


def needed_topics(settings: ProcessorSettings, proc: ProcessorApp) -> list[NeededTopic]:
    """Source and derived topics (created here only with create_topics), the tick topic and every table's
    changelog, as faust declares them (partitions = the source topics' count)."""
    from processors.wire import INPUTS, OUTPUTS, prefixed

    n = settings.processor_topic_partitions
    contract = [NeededTopic(spec.name, n, {"cleanup.policy": spec.cleanup_policy,
                                           **({"retention.ms": str(spec.retention_ms)} if spec.retention_ms else {})},
                            create=settings.create_topics)
                for spec in prefixed(INPUTS + OUTPUTS, settings.processor_topic_prefix)]
    internal = [from_faust_topic(proc.ticks)]
    internal += [from_faust_topic(table.changelog_topic)
                 for table in proc.app.tables.values()]
    return contract + internal


def build(settings: ProcessorSettings) -> ProcessorApp:
    """The faust app (not started), with every topic it needs present and complete on the broker."""
    from processors.app import ProcessorApp
    from processors.wire import ContractWire
    from schemas.registry import ContractRegistry

    registry = ContractRegistry(settings.registry_url, basic_auth=settings.registry_auth())
    wire = ContractWire(registry, register=settings.register_schemas, compiled=settings.processor_compiled_readers)
    admin_conf = {"bootstrap.servers": settings.kafka_bootstrap, **settings.librdkafka_security()}
    started = time.monotonic()
    replication, min_insync = replication_for(
        admin_conf, settings.processor_topic_replication or settings.topic_replication,
        settings.topic_min_insync_replicas, timeout_s=settings.processor_topics_timeout_s)
    settings = settings.model_copy(update={"processor_topic_replication": replication})
    proc = ProcessorApp(settings, wire)
    needed = needed_topics(settings, proc)
    created = prepare_topics(admin_conf, needed, replication=replication, min_insync=min_insync,
                             timeout_s=settings.processor_topics_timeout_s)
    log.info("processor %s: %d topics present (%d created here) after %.1fs", settings.processor_app_id,
             len(needed), len(created), time.monotonic() - started)
    return proc


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, faust, aiohttp, schemas: ~90k objects) into the
    collector's permanent generation, so a full collection later scans only state and in-flight events:
    full collections were the longest stalls behind the event -> queryable p99 (see benchmarks/)."""
    from processors import metrics  # not at module import: the fences' version checks run first (run())

    gc.collect()
    gc.freeze()
    if not any(isinstance(cb, metrics.GcPauses) for cb in gc.callbacks):
        gc.callbacks.append(metrics.GcPauses())


def check_fenced_libraries() -> None:
    """The fences (processors/faust_fence.py, marketpipe/prometheus_fence.py) refuse library versions they
    were not written for: raises UnpinnedLibraryError saying which, before the worker touches Kafka."""
    from marketpipe import prometheus_fence
    from processors import faust_fence

    faust_fence.require_pinned_versions()
    prometheus_fence.require_pinned_version()


def run(settings: ProcessorSettings) -> int:
    try:
        check_fenced_libraries()
    except UnpinnedLibraryError as exc:
        print(f"marketpipe process: {exc}", file=sys.stderr)
        return 2
    import faust

    proc = build(settings)
    log.info("processor %s: store %s, %s, web %s, intervals %s", settings.processor_app_id,
             settings.processor_store_url, settings.processor_processing_guarantee, settings.canonical_url,
             ",".join(settings.processor_candle_intervals))
    worker = faust.Worker(proc.app, loglevel=settings.log_level.lower(), quiet=True,
                          redirect_stdouts=False)
    freeze_startup_heap()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="marketpipe process", description=__doc__)
    parser.add_argument("--web-port", type=int, help="override MARKETPIPE_PROCESSOR_WEB_PORT")
    parser.add_argument("--app-id", help="override MARKETPIPE_PROCESSOR_APP_ID")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"processor_web_port": args.web_port, "processor_app_id": args.app_id}.items()
                 if v is not None}
    settings = ProcessorSettings(**overrides)
    for noisy in ("aiokafka", "kafka", "faust.transport", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run(settings)

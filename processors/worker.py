"""Run a processor worker: `python -m processors` / `marketpipe process` (settings from MARKETPIPE_*)."""

from __future__ import annotations

import argparse
import gc
import logging
import sys

from marketpipe.fencing import UnpinnedLibraryError
from processors.settings import ProcessorSettings

log = logging.getLogger(__name__)


def ensure_ticks_topic(settings: ProcessorSettings) -> None:
    """Create the app's internal tick topic before the consumer subscribes to it."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, **settings.librdkafka_security()})
    name = f"{settings.processor_app_id}-candle-ticks"
    if name in admin.list_topics(timeout=15).topics:
        return
    topic = NewTopic(name, num_partitions=settings.processor_topic_partitions,
                     replication_factor=settings.processor_topic_replication,
                     config={"retention.ms": str(3_600_000)})
    for fut in admin.create_topics([topic], operation_timeout=30).values():
        try:
            fut.result()
        except Exception as exc:  # a second worker may have created it first
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def build(settings: ProcessorSettings):  # type: ignore[no-untyped-def]
    """Topics, schemas and the faust app (not started)."""
    from marketpipe.topics_admin import ensure_topics
    from processors.app import ProcessorApp
    from processors.wire import INPUTS, OUTPUTS, ContractWire, prefixed
    from schemas.registry import ContractRegistry

    if settings.create_topics:
        ensure_topics(settings.kafka_bootstrap, prefixed(INPUTS + OUTPUTS, settings.processor_topic_prefix),
                      replication=settings.processor_topic_replication, extra_conf=settings.librdkafka_security())
    ensure_ticks_topic(settings)
    registry = ContractRegistry(settings.registry_url, basic_auth=settings.registry_auth())
    wire = ContractWire(registry, register=settings.register_schemas)
    return ProcessorApp(settings, wire)


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, faust, aiohttp, schemas: ~90k objects) into the
    collector's permanent generation, so a full collection later scans only state and in-flight events:
    full collections were the longest stalls behind the event -> queryable p99 (see benchmarks/)."""
    gc.collect()
    gc.freeze()


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

"""ProcessorApp: the faust app (topics, tables, agents, timers, web pages) of marketpipe's processors."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import faust
from aiokafka import AIOKafkaProducer
from faust.tables.manager import TableManager
from faust.types import TP

from processors import metrics
from processors.account_stage import AccountStage
from processors.batches import take_batches
from processors.book_stage import BookStage
from processors.candle_stage import CandleStage
from processors.context import key_partition
from processors.faust_fence import ProcessorFaustApp, read_position
from processors.schema_gate import SchemaGate
from processors.settings import ProcessorSettings
from processors.transport import RawBytesSchema
from processors.views import FAUST_PAGES_OFF, QuerySurface, register_views
from processors.wire import ContractWire, SchemaResolver, topic_name
from schemas.topics import ACCOUNT, BOOK, BOOK_TOP, OHLCV, TRADES

if TYPE_CHECKING:
    import ssl

log = logging.getLogger(__name__)
RAW: dict[str, Any] = {"schema": RawBytesSchema()}


def faust_security(settings: ProcessorSettings) -> dict[str, Any]:
    """broker_credentials for faust from the shared Kafka security settings."""
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return {}
    kw = settings.aiokafka_security()
    ssl_context = cast("ssl.SSLContext | None", kw.get("ssl_context"))
    if proto.startswith("SASL"):
        mech = settings.kafka_sasl_mechanism or "PLAIN"
        cred = faust.SASLCredentials(username=settings.kafka_sasl_username or "",
                                     password=str(kw.get("sasl_plain_password") or ""),
                                     mechanism=mech, ssl_context=ssl_context)
        return {"broker_credentials": cred}
    return {"broker_credentials": faust.SSLCredentials(ssl_context)}


class TickSender:
    """Sends the timer's ticks with a plain (non-transactional) producer: ticks only wake the agents up,
    which then write state and derived events in their own transactions under exactly_once."""

    def __init__(self, settings: ProcessorSettings, topic: str, partitions: int) -> None:
        self.settings, self.topic, self.partitions = settings, topic, partitions
        self.producer: AIOKafkaProducer | None = None

    async def tick(self) -> None:
        if self.producer is None:
            self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, linger_ms=1,
                                             **self.settings.aiokafka_security())
            await self.producer.start()
        for p in range(self.partitions):
            await self.producer.send(self.topic, value=b"", partition=p)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None


class GateReleaser(faust.Sensor):
    """At the start of a rebalance (before faust waits for in-flight messages), lets the events parked for
    a schema lookup go, uncommitted (schema_gate.py)."""

    def __init__(self, gates: dict[str, SchemaGate]) -> None:
        super().__init__()
        self.gates = gates

    def on_rebalance_start(self, app: Any) -> dict[Any, Any]:
        for gate in self.gates.values():
            gate.release_all()
        return {}


class StateFlusher(faust.Sensor):
    """Flushes the stages' changed state into their tables when faust starts an offset commit: the
    changelog writes enter the producer buffer, which faust flushes (or commits in the transaction) before
    it commits the offsets. So a committed offset's effect is always in the changelog, and each key is
    written once per commit interval instead of once per event."""

    def __init__(self, stages: tuple[Any, ...]) -> None:
        super().__init__()
        self.stages = stages

    def on_commit_initiated(self, consumer: Any) -> Any:
        for stage in self.stages:
            started = time.perf_counter()
            if stage.flush():
                metrics.FLUSH_SECONDS.labels(stage.stream).observe(time.perf_counter() - started)
        return None


class ProcessorApp:
    def __init__(self, settings: ProcessorSettings, wire: ContractWire) -> None:
        s = self.settings = settings
        n = s.processor_topic_partitions
        token = s.processor_query_token
        self.surface = QuerySurface(token.get_secret_value() if token is not None else None)
        self.app = ProcessorFaustApp(
            s.processor_app_id,
            broker=f"kafka://{s.kafka_bootstrap}",
            store=s.processor_store_url,
            datadir=s.processor_data_dir,
            processing_guarantee=s.processor_processing_guarantee,
            topic_partitions=n,
            topic_replication_factor=s.processor_topic_replication,
            table_standby_replicas=s.processor_standby_replicas,
            consumer_auto_offset_reset=s.processor_offset_reset,
            broker_commit_interval=s.processor_commit_interval_s,
            broker_session_timeout=s.processor_session_timeout_s,
            stream_processing_timeout=s.processor_stream_processing_timeout_s,
            fetch_max_wait_ms=s.processor_fetch_max_wait_ms,
            broker_heartbeat_interval=s.processor_heartbeat_interval_s,
            consumer_group_instance_id=s.processor_group_instance_id,
            stream_recovery_delay=0.0,
            producer_linger=s.processor_producer_linger_ms / 1000,
            web_host=s.processor_web_host,
            web_bind=s.processor_web_bind,
            web_port=s.processor_web_port,
            canonical_url=s.canonical_url,
            # only the query API on the port (views.py): faust's pages off, everything else 404, optional token
            **FAUST_PAGES_OFF,
            web_application_options={"middlewares": [self.surface.middleware]},
            key_serializer="raw",
            value_serializer="raw",
            autodiscover=False,
            # no on_leader timers here: no leader topic (one internal topic less to race on, see topics.py)
            topic_disable_leader=True,
            **faust_security(s),
        )
        app = self.app
        self.latency = metrics.LatencyWindow()
        self.ticks_name = f"{s.processor_app_id}-candle-ticks"
        pre = s.processor_topic_prefix
        self.trades_topic = topic_name(TRADES, pre)
        book_in = app.topic(topic_name(BOOK, pre), self.ticks_name, **RAW)
        candle_in = app.topic(self.trades_topic, self.ticks_name, **RAW)
        self.ticks = app.topic(self.ticks_name, partitions=n, internal=True, retention=timedelta(hours=1), **RAW)
        # ticks wake the accounts agent too: a partition parked for a schema lookup is released on a tick
        account_in = app.topic(topic_name(ACCOUNT, pre), self.ticks_name, **RAW)
        book_top_out = app.topic(topic_name(BOOK_TOP, pre), **RAW)
        ohlcv_out = app.topic(topic_name(OHLCV, pre), **RAW)
        # raw bytes keys and values (app-wide serializers): keys hash like the producers' keys
        table_opts: dict[str, Any] = {"partitions": n, "key_type": bytes, "value_type": bytes}
        self.books = BookStage(app.Table("books", **table_opts), wire, self.latency, book_top_out,
                               depth=s.processor_book_depth, min_interval_s=s.processor_book_top_min_interval_ms / 1e3,
                               ticks_topic=self.ticks_name, partitions=n)
        self.candles = CandleStage(app.Table("candles", **table_opts), app.Table("candle_history", **table_opts),
                                   wire, self.latency, ohlcv_out,
                                   ticks_topic=self.ticks_name, intervals=s.processor_candle_intervals,
                                   grace_ms=s.processor_candle_grace_ms,
                                   close_delay_ms=s.processor_candle_close_delay_ms,
                                   history=s.processor_candle_history, dedup_window=s.processor_dedup_window,
                                   partitions=n, highwater=self.highwater, read_position=self.read_position,
                                   trades_topic=self.trades_topic)
        self.accounts = AccountStage(app.Table("accounts", **table_opts), wire, self.latency,
                                     fills_window=s.processor_fills_window, ticks_topic=self.ticks_name)
        self.stages = (self.books, self.candles, self.accounts)
        app.sensors.add(StateFlusher(self.stages))
        batch, within = s.processor_batch_max, s.processor_batch_within_s
        parked_max = s.processor_parked_max

        self.gates: dict[str, SchemaGate] = {}
        app.sensors.add(GateReleaser(self.gates))
        self.resolver = resolver = SchemaResolver(wire, s.registry_url, basic_auth=s.registry_auth(),
                                                  backoff_max_s=s.processor_registry_backoff_max_s)

        def run_stage(stage: Any) -> Any:
            seconds, sizes = metrics.BATCH_SECONDS.labels(stage.stream), metrics.BATCH_EVENTS.labels(stage.stream)

            gate = self.gates[stage.stream] = SchemaGate(app, wire, resolver, stage.stream)

            def fold(taken: list[Any]) -> None:
                events, released = gate.admit(taken)  # partitions waiting for a schema are held back
                if events:
                    started = time.perf_counter()
                    stage.process(events)
                    seconds.observe(time.perf_counter() - started)
                    sizes.observe(len(events))
                if released:
                    gate.ack(released)

            async def agent(stream: faust.StreamT) -> None:
                async for taken in take_batches(stream, batch, within):
                    fold(taken)
                    while gate.backlog() > parked_max and not app.should_stop:  # bounded memory: wait
                        await asyncio.sleep(0.1)
                        fold([])
            agent.__name__ = f"{stage.stream}_agent"
            return agent

        app.agent(book_in, name="books")(run_stage(self.books))
        app.agent(candle_in, name="candles")(run_stage(self.candles))
        app.agent(account_in, name="accounts")(run_stage(self.accounts))

        self.tick_sender = TickSender(s, self.ticks_name, n)

        @app.timer(interval=s.processor_timer_interval_s)
        async def tick() -> None:
            """One tick per partition; the worker owning the partition closes due candles and publishes
            book tops held back by the rate limit, inside its agents (and their transactions)."""
            if not app.rebalancing:
                await self.tick_sender.tick()

        @app.task
        async def quiet_logs() -> None:
            """faust logs every produced message at DEBUG; keep that off the hot path."""
            for name in ("faust.topics", "faust.transport", "aiokafka"):
                logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().getEffectiveLevel()))

        async def stop_ticks(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
            await self.tick_sender.stop()
            await self.resolver.close()

        # mode types handlers with mypy_extensions' NamedArg('BaseSignalT', 'signal'), a forward reference mypy
        # cannot match against any real signature (mode passes signal=self to every receiver)
        app.on_before_shutdown.connect(stop_ticks)  # type: ignore[arg-type]

        async def forget(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
            for stage in self.stages:
                stage.forget()

        app.on_partitions_revoked.connect(forget)  # type: ignore[arg-type]

        register_views(self)

    # -- introspection used by views and metrics ---------------------------------------------------------
    def highwater(self, topic: str, partition: int) -> int | None:
        try:
            return self.app.consumer.highwater(TP(topic, partition))
        except Exception:  # not assigned here / consumer not started
            return None

    def read_position(self, topic: str, partition: int) -> int | None:
        try:
            return read_position(self.app.consumer, TP(topic, partition))
        except Exception:  # consumer not started
            return None

    def owned(self, key: bytes) -> bool:
        part = key_partition(key, self.settings.processor_topic_partitions)
        return any(tp.partition == part for tp in self.app.assignor.assigned_actives())

    def ready(self) -> bool:
        app = self.app
        return (not app.rebalancing and not app.should_stop and not app.crashed
                and cast(TableManager, app.tables).recovery.completed.is_set()
                and bool(app.assignor.assigned_actives()))

    def refresh_gauges(self) -> None:
        out_of_sync = crossed = 0
        for key in list(self.books.table.keys()):
            if not self.owned(key):
                continue
            book = self.books.peek(key)
            if book is None:
                continue
            out_of_sync += not book.in_sync
            crossed += book.crossed
        metrics.BOOKS_OUT_OF_SYNC.set(out_of_sync)
        metrics.BOOKS_CROSSED.set(crossed)
        consumer = self.app.consumer
        for stage in self.stages:
            for (topic, partition), offset in list(stage.last_offsets.items()):
                tp = TP(topic, partition)
                try:
                    high = consumer.highwater(tp)
                except Exception:  # partition no longer assigned here
                    continue
                if high is not None:
                    metrics.LAG.labels(topic, str(partition)).set(max(0, high - offset - 1))

"""ProcessorSettings: everything the faust workers read from the environment (MARKETPIPE_*)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from marketpipe.settings import EnvList, KafkaClientSettings, Port
from processors.candles import interval_us


class ProcessorSettings(KafkaClientSettings):
    processor_app_id: str = "marketpipe-processors"  # faust app id = consumer group = changelog prefix
    processor_store_url: str = "rocksdb://"  # memory:// for tests; rocksdb:// (rocksdict) in production
    processor_data_dir: str = "/var/lib/marketpipe/processors"  # RocksDB files (faust datadir)
    processor_web_host: str = "127.0.0.1"  # host other workers use to reach this one (pod IP in k8s)
    # the address the query port listens on: loopback unless told otherwise (the chart binds the pod IP);
    # 0.0.0.0 exposes the port on every interface
    processor_web_bind: str = "127.0.0.1"
    processor_web_port: Port = 6066
    # optional bearer token for the query API (views.py): queries without `Authorization: Bearer <token>`
    # get 401. /metrics, /processor/ready and /processor/live stay open for scrapes and probes.
    processor_query_token: SecretStr | None = None
    # the web view on the same port (webui.py): /ui/ (static page), /ui/api/overview, /ui/stream/... (same
    # bind address and token as the queries); false: those paths answer 404 like any unknown path
    processor_web_ui: bool = True
    # Default at_least_once: every table update is idempotent (source offsets already folded in are
    # skipped, derived events carry deterministic event_ids) so replays after a crash change nothing, and
    # it avoids one transactional producer per partition plus commit-interval latency on derived topics.
    # exactly_once is supported (Kafka >= 0.11 with the transaction log) for consumers that need it.
    processor_processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    processor_topic_partitions: int = Field(6, gt=0)  # must equal the source topics' partition count (co-partitioning)
    # changelog and derived topics created here: None = the topic_replication setting (3; 1 on a
    # single-broker cluster), with topic_min_insync_replicas
    processor_topic_replication: int | None = Field(None, gt=0)
    # start-up waits this long for every needed topic (created here, or by the schemas Job) to be complete
    processor_topics_timeout_s: float = Field(120.0, gt=0)
    # a transient registry failure pauses the stream and retries, backing off up to this long between tries
    processor_registry_backoff_max_s: float = Field(10.0, gt=0)
    # events a stream may hold back for schema lookups before it takes no new batch (schema_gate.py)
    processor_parked_max: int = Field(50_000, gt=0)
    processor_standby_replicas: int = Field(1, ge=0)
    processor_offset_reset: Literal["earliest", "latest"] = "earliest"  # a new app id builds state from history
    processor_commit_interval_s: float = Field(2.0, gt=0)
    # faust logs an error when a partition has data but its stream took no event for this long (a stuck agent)
    processor_stream_processing_timeout_s: float = 300.0
    processor_session_timeout_s: float = Field(30.0, gt=0)  # a dead worker's partitions move after this long
    processor_heartbeat_interval_s: float = Field(3.0, gt=0)
    # static group membership (e.g. the StatefulSet pod name): a restarted worker gets its partitions back
    # at once, without a rebalance, if it returns within the session timeout
    processor_group_instance_id: str | None = None
    processor_batch_max: int = Field(2000, gt=0)  # events taken from a stream at once
    # the consumer's fetch long-poll (faust: 1500 ms); short, so a backlog is fetched again at once (faust_fence.py)
    processor_fetch_max_wait_ms: int = Field(20, ge=0)
    # longest wait for a batch to fill: 0 = fold in whatever is queued (a wait idles a worker that is behind,
    # and adds to event -> queryable; batches still grow with the backlog)
    processor_batch_within_s: float = Field(0.0, ge=0)
    # decode with readers compiled from each writer schema (schemas/compiled_reader.py); false: fastavro's
    # schemaless_reader (bench_processors.py runs both to show what the compiled readers buy end to end)
    processor_compiled_readers: bool = True
    processor_producer_linger_ms: int = Field(5, ge=0)  # batches changelog and derived-topic writes into fewer requests
    # isolated runs only (benchmarks): prefix for every input/output topic name; schemas stay the same
    processor_topic_prefix: str = ""
    processor_book_depth: int = Field(10, gt=0)  # levels per side in BookTop events
    processor_book_top_min_interval_ms: int = Field(100, ge=0)  # rate limit per market; the last state is always published
    # comma-separated in the environment: MARKETPIPE_PROCESSOR_CANDLE_INTERVALS=1s,1m,5m,1h
    processor_candle_intervals: EnvList = ["1s", "1m", "5m", "1h"]
    processor_candle_grace_ms: int = Field(5_000, ge=0)
    processor_candle_close_delay_ms: int = Field(250, ge=0)
    processor_candle_history: int = Field(500, gt=0)  # published candles kept per market and interval for queries
    processor_timer_interval_s: float = Field(0.25, gt=0)
    processor_dedup_window: int = Field(256, gt=0)
    processor_fills_window: int = Field(500, gt=0)
    processor_max_query_depth: int = Field(5_000, gt=0)

    @field_validator("processor_candle_intervals")
    @classmethod
    def _check_intervals(cls, v: list[str]) -> list[str]:
        for name in v:
            interval_us(name)
        if len(set(v)) != len(v) or not v:
            raise ValueError(f"candle intervals must be distinct and non-empty: {v}")
        return v

    @field_validator("processor_query_token")
    @classmethod
    def _check_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and (not v.get_secret_value() or v.get_secret_value() != v.get_secret_value().strip()):
            raise ValueError("processor_query_token must be non-empty without surrounding whitespace")
        return v

    @property
    def canonical_url(self) -> str:
        return f"http://{self.processor_web_host}:{self.processor_web_port}"

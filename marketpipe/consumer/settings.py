"""Settings of a marketpipe consumer: the shared Kafka/registry settings plus the consumer's own."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from marketpipe.settings import KafkaClientSettings


class ConsumerSettings(KafkaClientSettings):
    """Read from the environment (``MARKETPIPE_KAFKA_BOOTSTRAP``, ``MARKETPIPE_REGISTRY_URL``,
    ``MARKETPIPE_CONSUMER_GROUP_ID``, ...) or passed as keyword arguments."""

    consumer_group_id: str | None = None  # committed offsets: a restart resumes where the group stopped
    consumer_auto_offset_reset: Literal["earliest", "latest"] = "earliest"  # a group without committed offsets
    consumer_topic_prefix: str = ""  # read private copies of the topics (tests); "" in production
    consumer_dedup_window: int = Field(default=200_000, gt=0)  # recent event_ids remembered per stream
    consumer_max_poll_records: int = Field(default=2_000, gt=0)

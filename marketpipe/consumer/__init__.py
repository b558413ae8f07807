"""A small library for Python consumers of marketpipe topics (see docs/topics.md for the contract).

- `EventStream`: decoded events of one topic through the schema registry (any writer version), filtered by
  venue/market, duplicates dropped by `event_id`, resuming from a consumer group's committed offsets.
- `BookFollower` / `Book`: order books per market with the SNAPSHOT / DELTA / RESET rules (`in_sync`,
  best bid/ask, depth).
- `ConsumerSettings`: where Kafka and the registry are (MARKETPIPE_* environment or keyword arguments).

It depends on `schemas/` (topics, registry client, Confluent framing) only; it is an implementation of the
published contract independent of the processors. Runnable examples: `examples/`.
"""

from marketpipe.consumer.book import Book, BookFollower
from marketpipe.consumer.dedup import Deduplicator
from marketpipe.consumer.settings import ConsumerSettings
from marketpipe.consumer.stream import EventStream, Record

__all__ = ["Book", "BookFollower", "ConsumerSettings", "Deduplicator", "EventStream", "Record"]
